"""astropy in and out: SkyCoord queries (any form, any frame), the KD-tree sky match, hits as
an astropy Table with units, FITS and VOTable exports that Table.read reads back."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from typer.testing import CliRunner

from galaxy_retrieval.cli import app
from galaxy_retrieval.errors import OutputPathError, QueryError
from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards
from galaxy_retrieval.index.candidates import IndexSpec
from galaxy_retrieval.search.hits import hits_table, write_hits
from galaxy_retrieval.search.searcher import GalaxySearcher
from galaxy_retrieval.search.sky import angular_separation_arcsec, parse_sky

from .test_index import _clustered, _write_shards

runner = CliRunner()


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("astro")
    shards = _write_shards(tmp / "shards", _clustered(300, 16, seed=5), per=100)
    return build_index_from_shards(shards, tmp / "index", BuildConfig(index=IndexSpec(kind="flat"))).path


def _object(index: Path, i: int) -> dict:
    return pq.read_table(index / "embeddings", columns=["object_id", "ra", "dec"]).to_pylist()[i]


def test_parse_sky_reads_every_usual_form() -> None:
    want = SkyCoord("09h52m12s", "+02d09m15s", frame="icrs")
    for got in (
        parse_sky("09h52m12s +02d09m15s"),
        parse_sky("09:52:12 +02:09:15"),
        parse_sky("09 52 12 +02 09 15"),
        parse_sky("09:52:12", "+02:09:15"),
        parse_sky(148.05, 2.1541667),
        parse_sky("148.05", "2.1541667"),
        parse_sky("148.05 2.1541667"),
        parse_sky(want.galactic),  # another frame: transformed to ICRS
    ):
        assert got.separation(want).arcsec < 0.01
    assert parse_sky("09:52:12", "-02:09:15").dec.deg == pytest.approx(-2.154167, abs=1e-5)
    with pytest.raises(QueryError, match=r"cannot read 'nowhere' as a sky position .*sexagesimal"):
        parse_sky("nowhere")
    with pytest.raises(QueryError, match="RA 400 out of range"):
        parse_sky(400, 0)
    with pytest.raises(QueryError, match="Dec -91 out of range"):
        parse_sky("10 -91")
    with pytest.raises(QueryError, match="needs both RA and Dec"):
        parse_sky(10.0)


def test_sky_match_is_the_nearest_live_object(index: Path) -> None:
    s = GalaxySearcher.open(index)
    ra, dec = s.lookup.radec()
    rng = np.random.default_rng(0)
    for _ in range(50):  # the KD-tree agrees with a separation to every row
        r0, d0 = rng.uniform(0, 360), rng.uniform(-60, 60)
        sep = angular_separation_arcsec(r0, d0, ra, dec)
        pos, got = s.position_at(r0, d0, radius_arcsec=180 * 3600)
        assert pos == int(np.argmin(sep)) and got == pytest.approx(sep.min(), rel=1e-6, abs=1e-6)
    o = _object(index, 42)
    here = SkyCoord(o["ra"] * u.deg, o["dec"] * u.deg)
    found, seps = s.sky_matcher().around(here, 5.0)
    assert s.object_ids[int(found[0])] == o["object_id"] and seps[0] < 1e-6


def test_query_by_skycoord_string_or_degrees_agree(index: Path) -> None:
    s = GalaxySearcher.open(index)
    o = _object(index, 42)
    c = SkyCoord(o["ra"] * u.deg, o["dec"] * u.deg)
    text = c.to_string("hmsdms", sep=":", precision=4)  # e.g. "09:52:12.0000 +02:09:15.0000"
    by_deg = s.query(ra=o["ra"], dec=o["dec"], k=5)
    by_coord = s.query(coord=c.galactic, k=5)
    sky = s.query_sky(text, k=5)
    assert [h.object_id for h in by_coord] == [h.object_id for h in by_deg] == [h.object_id for h in sky.hits]
    assert sky.object_id == o["object_id"] and sky.separation_arcsec < 0.01
    with pytest.raises(QueryError, match="exactly one of"):
        s.query(coord=c, ra=1.0, dec=1.0)


def test_hits_to_table_has_units_and_the_same_rows(index: Path) -> None:
    s = GalaxySearcher.open(index)
    hits = s.query(object_id="obj-0007", k=6)
    t = hits.to_table()
    assert isinstance(t, Table) and len(t) == 6
    assert list(t["object_id"]) == [h.object_id for h in hits]
    assert t["ra"].unit == u.deg and t["dec"].unit == u.deg
    assert np.allclose(t["score"], [h.score for h in hits])
    assert t["ra"].quantity[0].to(u.arcmin).value == pytest.approx(hits[0].metadata["ra"] * 60)
    sky = s.query_sky(SkyCoord(_object(index, 7)["ra"] * u.deg, _object(index, 7)["dec"] * u.deg), k=6)
    assert list(sky.to_table()["object_id"]) == list(t["object_id"]) and "query_ra" in sky.to_table().meta


@pytest.mark.parametrize(
    "name, fmt", [("hits.fits", None), ("hits.vot", None), ("hits.xml", "votable"), ("h.out", "fits")]
)
def test_fits_and_votable_read_back_with_the_same_rows(
    index: Path, tmp_path: Path, name: str, fmt: str | None
) -> None:
    s = GalaxySearcher.open(index)
    hits = [s.query(object_id="obj-0003", k=4), s.query(object_id="obj-0010", k=4)]
    table = hits_table(["object obj-0003", "object obj-0010"], hits)
    p = write_hits(tmp_path / name, table, fmt)
    back = Table.read(p, format="fits" if (fmt or name.split(".")[-1]) == "fits" else "votable")
    assert len(back) == 8
    assert [str(x) for x in back["object_id"]] == [h.object_id for hs in hits for h in hs]
    assert [str(x) for x in back["query"]] == ["object obj-0003"] * 4 + ["object obj-0010"] * 4
    assert np.allclose(np.asarray(back["score"], float), [h.score for hs in hits for h in hs])
    assert np.allclose(np.asarray(back["ra"], float), [h.metadata["ra"] for hs in hits for h in hs])
    assert back["ra"].unit == u.deg
    assert not list(tmp_path.glob("*.tmp"))


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="unknown hits format '.txt'"):
        write_hits(tmp_path / "h.txt", hits_table([], []))
    with pytest.raises(OutputPathError, match="stdout .* needs a format"):
        write_hits("-", hits_table([], []))


def test_cli_sexagesimal_query_and_exports(index: Path, tmp_path: Path) -> None:
    o = _object(index, 42)
    c = SkyCoord(o["ra"] * u.deg, o["dec"] * u.deg)
    ra_s, dec_s = c.to_string("hmsdms", sep=":", precision=4).split()
    out = tmp_path / "hits.fits"
    r = runner.invoke(
        app, ["query", "--index", str(index), "--ra", ra_s, "--dec", dec_s, "--k", "3", "--output", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert f"object {o['object_id']}" in r.output
    back = Table.read(out)
    assert len(back) == 3 and o["object_id"] not in [str(x) for x in back["object_id"]]
    # both coordinates in one string, and the VOTable on stdout
    r = runner.invoke(
        app,
        [
            "query",
            "--index",
            str(index),
            "--ra",
            c.to_string("hmsdms"),
            "--k",
            "3",
            "--format",
            "votable",
            "--output",
            "-",
        ],
    )
    assert r.exit_code == 0, r.output
    vot = Table.read(io.BytesIO(r.stdout_bytes), format="votable")
    assert [str(x) for x in vot["object_id"]] == [str(x) for x in back["object_id"]]
    r = runner.invoke(app, ["query", "--index", str(index), "--ra", "25:99:00", "--dec", "0"])
    assert r.exit_code == 2 and "cannot read RA '25:99:00'" in r.output and "Traceback" not in r.output


def test_batch_targets_skip_bad_rows_and_read_sexagesimal(index: Path, tmp_path: Path) -> None:
    o = _object(index, 42)
    c = SkyCoord(o["ra"] * u.deg, o["dec"] * u.deg)
    ra_s, dec_s = c.to_string("hmsdms", sep=":", precision=4).split()
    (tmp_path / "sky.csv").write_text(f"RAJ2000,DEJ2000\n{ra_s},{dec_s}\n00:00:00,-89:59:00\n")
    (tmp_path / "ids.csv").write_text("objid\nobj-0007\nno-such-object\nobj-0100\n")
    r = runner.invoke(
        app, ["query", "--index", str(index), "--targets", str(tmp_path / "ids.csv"), "--k", "2"]
    )
    assert r.exit_code == 0, r.output
    assert "skipped no-such-object: object id 'no-such-object' is not in the index" in r.output.replace(
        "\n", " "
    )
    assert "neighbours of object obj-0007" in r.output and "neighbours of object obj-0100" in r.output
    r = runner.invoke(
        app, ["query", "--index", str(index), "--targets", str(tmp_path / "sky.csv"), "--k", "2"]
    )
    assert r.exit_code == 0, r.output
    assert f"object {o['object_id']}" in r.output and "skipped 0 -89" in r.output
    (tmp_path / "none.csv").write_text("objid\nnope\n")
    r = runner.invoke(app, ["query", "--index", str(index), "--targets", str(tmp_path / "none.csv")])
    assert r.exit_code == 2 and "none of the 1 targets could be searched" in r.output


def test_a_short_hit_list_says_why(index: Path) -> None:
    r = runner.invoke(
        app, ["query", "--index", str(index), "--object-id", "obj-0001", "--k", "5", "--where", "label = 9"]
    )
    assert r.exit_code == 0, r.output
    assert "0 of 5 hits (only that many match --where)" in r.output


def test_fits_export_of_non_ascii_text(tmp_path: Path) -> None:
    from galaxy_retrieval.search.hits import Hit

    hits = [Hit(1, "galaxie-é", 0, 0.9, 0.9, 0.5, 0.5, {"ra": 1.0, "dec": 2.0, "note": "café"})]
    back = Table.read(write_hits(tmp_path / "h.fits", hits_table(["requête"], [hits])))
    assert str(back["object_id"][0]) == "galaxie-\\xe9" and str(back["query"][0]) == "requ\\xeate"
    vot = Table.read(write_hits(tmp_path / "h.vot", hits_table(["requête"], [hits])))
    assert str(vot["object_id"][0]) == "galaxie-é"  # VOTable keeps unicode


def test_api_search_by_a_position_string(index: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from galaxy_retrieval.serve import ServeConfig, create_app

    o = _object(index, 42)
    text = SkyCoord(o["ra"] * u.deg, o["dec"] * u.deg).to_string("hmsdms", sep=":", precision=4)
    with TestClient(create_app(ServeConfig(index=index))) as c:
        by_text = c.post("/api/search", json={"position": text, "k": 4}).json()
        by_deg = c.post("/api/search", json={"ra": o["ra"], "dec": o["dec"], "k": 4}).json()
        assert by_text["query"]["object_id"] == o["object_id"] and by_text["query"]["ra"] == pytest.approx(
            o["ra"], abs=1e-5
        )
        assert [h["object_id"] for h in by_text["hits"]] == [h["object_id"] for h in by_deg["hits"]]
        r = c.post("/api/search", json={"position": "not a place", "k": 4})
        assert r.status_code == 400 and "cannot read 'not a place' as a sky position" in r.json()["detail"]


def test_cone_lists_the_objects_near_a_position(index: Path) -> None:
    s = GalaxySearcher.open(index)
    ra, dec = s.lookup.radec()
    o = _object(index, 42)
    t = s.cone(SkyCoord(o["ra"] * u.deg, o["dec"] * u.deg), radius_arcsec=20 * 3600)
    sep = angular_separation_arcsec(o["ra"], o["dec"], ra, dec)
    assert list(t["row"]) == [int(i) for i in np.argsort(sep, kind="stable")[: (sep <= 20 * 3600).sum()]]
    assert str(t["object_id"][0]) == o["object_id"] and t["separation_arcsec"][0] < 1e-6
    assert (
        t["separation_arcsec"].unit == u.arcsec and t["ra"].unit == u.deg and t.meta["radius_arcsec"] == 72000
    )
    assert len(s.cone(0.0, -89.9, radius_arcsec=1)) == 0
