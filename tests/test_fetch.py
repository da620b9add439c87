"""Survey cutouts by RA/Dec against a real HTTP server on 127.0.0.1 (tests/localhttp.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from galaxy_retrieval.catalog import open_catalog, read_image
from galaxy_retrieval.cli import app
from galaxy_retrieval.errors import CatalogError, ConfigError, FetchError
from galaxy_retrieval.fetch import (
    CutoutSpec,
    FetchCutoutsConfig,
    HttpConfig,
    cutout_url,
    fetch_cutout,
    fetch_cutouts,
)

from .localhttp import LocalServer

# fast retries: the behaviour under test is the same, the waits are not
FAST = HttpConfig(concurrency=3, timeout_s=5.0, retries=2, backoff_s=0.01)


def _galaxy_jpeg(path: Path, seed: int, size: int = 32) -> Path:
    """A smooth elliptical blob, so JPEG round trips stay close to the original."""
    y, x = np.mgrid[:size, :size] - size / 2
    rng = np.random.default_rng(seed)
    q, th = rng.uniform(0.4, 1), rng.uniform(0, np.pi)
    u, v = x * np.cos(th) + y * np.sin(th), -x * np.sin(th) + y * np.cos(th)
    im = np.exp(-np.hypot(u, v / q) / rng.uniform(2, 6))
    rgb = (np.stack([im, im * 0.8, im * 0.6], -1) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(path, quality=95)
    return path


RAS = ["10.000000", "20.000000", "30.000000", "40.000000", "50.000000", "60.000000"]


@pytest.fixture
def server(tmp_path: Path):
    root = tmp_path / "served"
    root.mkdir()
    with LocalServer(root) as s:
        for i, ra in enumerate(RAS):
            s.by_ra[ra] = _galaxy_jpeg(root / f"g{i}.jpg", i).name
        yield s


def test_cutout_urls() -> None:
    assert cutout_url(CutoutSpec(), 150.1, 2.2) == (
        "https://www.legacysurvey.org/viewer/cutout.jpg?ra=150.100000&dec=2.200000&layer=ls-dr10&pixscale=0.262&size=256"
    )
    assert cutout_url(CutoutSpec(format="fits", bands="gr", size=64), 1, -2) == (
        "https://www.legacysurvey.org/viewer/cutout.fits?ra=1.000000&dec=-2.000000&layer=ls-dr10&pixscale=0.262&size=64&bands=gr"
    )
    assert cutout_url(CutoutSpec(survey="sdss", base_url="http://127.0.0.1:9/sdss/"), 0, 0) == (
        "http://127.0.0.1:9/sdss/getjpeg?ra=0.000000&dec=0.000000&scale=0.396&width=256&height=256"
    )
    with pytest.raises(ConfigError, match="serves jpeg cutouts, not 'fits'"):
        CutoutSpec(survey="sdss", format="fits")
    with pytest.raises(ConfigError, match="Dec 91 out of range"):
        cutout_url(CutoutSpec(), 10, 91)
    with pytest.raises(ConfigError, match="unknown survey 'hst'"):
        CutoutSpec(survey="hst")


def test_fetch_writes_a_catalog_and_a_rerun_fetches_nothing(server: LocalServer, tmp_path: Path) -> None:
    targets = tmp_path / "targets.csv"
    targets.write_text("objID,RA,DEC,class\n1237,10,1.5,spiral\n1238,20,-2,round\nJ 03/x,30,3,spiral\n")
    out = tmp_path / "cutouts"
    cfg = FetchCutoutsConfig(targets, out, CutoutSpec(size=32, base_url=server.url + "/viewer"), FAST)
    res = fetch_cutouts(cfg)
    assert (res.fetched, res.cached, res.problems, res.total) == (3, 0, [], 3)
    assert all("/viewer/cutout.jpg?ra=" in path and "size=32" in path for path, _ in server.requests)
    cat = open_catalog(out)
    assert cat.object_ids() == ["1237", "1238", "J 03/x"]
    assert cat[2].metadata == {"ra": 30, "dec": 3, "survey": "legacy", "pixscale": 0.262, "label": "spiral"}
    assert cat.label_names == {0: "round", 1: "spiral"}
    # the file of each row is the image served for its RA, byte for byte
    assert (out / "J_03_x.jpg").read_bytes() == (server.root / "g2.jpg").read_bytes()
    np.testing.assert_array_equal(cat[0].image, read_image(server.root / "g0.jpg"))

    n = len(server.requests)
    again = fetch_cutouts(cfg)
    assert (again.fetched, again.cached) == (0, 3) and len(server.requests) == n


def test_bad_rows_and_server_trouble_become_one_line_each(server: LocalServer, tmp_path: Path) -> None:
    targets = tmp_path / "targets.csv"
    targets.write_text(
        "id,ra,dec\n"
        "a,10,0\n"  # 429 first, then served: retried
        "b,20,0\n"  # 503 every time
        "c,30,0\n"  # an HTML page sent with 200
        "d,40,0\n"  # body cut off every time
        "e,50,95\n"  # off the sky
        "f,abc,0\n"  # not a number
        "g,70,0\n"  # 404: no such cutout
        "h,60,0\n"  # cut off once, then served
        "i,60.5,\n"  # no Dec
    )
    server.script = {
        "ra=10.0": [("status", 429)],
        "ra=20.0": [("status", 503)] * 3,
        "ra=30.0": ["html"],
        "ra=40.0": ["truncate"] * 3,
        "ra=60.0": ["truncate"],
    }
    out = tmp_path / "out"
    res = fetch_cutouts(FetchCutoutsConfig(targets, out, CutoutSpec(size=32, base_url=server.url), FAST))
    assert res.fetched == 2 and res.total == 9
    lines = [str(p) for p in res.problems]
    assert lines[0] == "line 3 (b): HTTP 503 Service Unavailable (gave up after 3 attempts)"
    assert lines[1].startswith("line 4 (c): the server sent an HTML page (text/html")
    assert (
        lines[2].startswith("line 5 (d): the transfer from 127.0.0.1:")
        and "cut short" in lines[2]
        and "after 3 attempts" in lines[2]
    )
    assert lines[3] == "line 6 (e): Dec 95 out of range: expected degrees in [-90, 90]"
    assert lines[4] == "line 7 (f): RA 'abc' is not a number"
    assert lines[5] == "line 8 (g): HTTP 404 Not Found"
    assert lines[6] == "line 10 (i): no Dec"
    # only complete, checked files exist; no temporary leftovers
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "h.jpg", "metadata.csv"]
    assert open_catalog(out).object_ids() == ["a", "h"]


def test_truncated_image_with_honest_length_and_timeouts(server: LocalServer, tmp_path: Path) -> None:
    data = (server.root / "g0.jpg").read_bytes()
    (server.root / "g0.jpg").write_bytes(data[: len(data) * 2 // 3])  # a short JPEG, Content-Length matching
    spec = CutoutSpec(size=32, base_url=server.url)
    with pytest.raises(FetchError, match="truncated or corrupt image"):
        fetch_cutout(10, 0, spec, tmp_path / "cache", FAST)
    server.script = {"ra=20.0": [("sleep", 1.0)]}
    with pytest.raises(
        FetchError, match=r"no data from 127.0.0.1:\d+ within 0.2 s \(gave up after 1 attempt\)"
    ):
        fetch_cutout(20, 0, spec, tmp_path / "cache", HttpConfig(timeout_s=0.2, retries=0))
    assert not any((tmp_path / "cache").rglob("*.jpg"))
    p = fetch_cutout(30, 0, spec, tmp_path / "cache", FAST)
    n = len(server.requests)
    assert fetch_cutout(30, 0, spec, tmp_path / "cache", FAST) == p and len(server.requests) == n  # cached


def test_on_error_fail_and_targets_without_coordinates(server: LocalServer, tmp_path: Path) -> None:
    targets = tmp_path / "t.csv"
    targets.write_text("name,ra,dec\nx,10,0\ny,20,0\n")
    server.script = {"ra=20.0": [("status", 500)] * 3}
    cfg = FetchCutoutsConfig(
        targets,
        tmp_path / "o",
        CutoutSpec(size=32, base_url=server.url),
        HttpConfig(concurrency=1, retries=2, backoff_s=0.01),
        on_error="fail",
    )
    with pytest.raises(
        FetchError,
        match=r"t.csv: line 3 \(20.00000\+0.00000\): HTTP 500 Internal Server Error .*1 cutouts kept",
    ):
        fetch_cutouts(cfg)
    assert (tmp_path / "o" / "10.00000+0.00000.jpg").is_file()
    targets.write_text("name,alpha,delta\nx,10,0\n")
    with pytest.raises(CatalogError, match="no RA and Dec column"):
        fetch_cutouts(cfg)
    res = fetch_cutouts(
        FetchCutoutsConfig(targets, tmp_path / "o2", cfg.spec, FAST, columns={"alpha": "ra", "delta": "dec"})
    )
    assert res.fetched == 1


def test_cli_fetch_cutouts(server: LocalServer, tmp_path: Path) -> None:
    runner = CliRunner()
    targets = tmp_path / "targets.csv"
    targets.write_text("RA,DEC\n10,0\n20,0\n30,100\n")
    args = ["fetch-cutouts", "--targets", str(targets), "--survey", "sdss", "--size", "32", "--retries", "0"]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "c"), "--base-url", server.url])
    assert r.exit_code == 0, r.output
    assert "line 4: Dec 100 out of range" in r.output
    assert "2 fetched, 0 already there, 1 failed of 3 rows" in r.output
    assert all("/getjpeg?" in p and "scale=0.396" in p for p, _ in server.requests)

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "d"), "--base-url", dead])
    assert r.exit_code == 2, r.output
    assert "line 2 (10.00000+0.00000): cannot reach 127.0.0.1" in r.output
    assert "error: no cutouts: 0 fetched, 0 already there, 3 failed of 3 rows" in r.output
    assert "Traceback" not in r.output


def test_fits_cutouts(server: LocalServer, tmp_path: Path) -> None:
    fits = pytest.importorskip("astropy.io.fits")
    cube = np.random.default_rng(0).normal(0, 1, (3, 16, 16)).astype(np.float32)
    fits.PrimaryHDU(cube, header=fits.Header({"BAND0": "g", "BAND1": "r", "BAND2": "z"})).writeto(
        server.root / "cutout.fits"
    )
    data = (server.root / "cutout.fits").read_bytes()
    (server.root / "short.fits").write_bytes(data[: len(data) - 2000])
    server.by_ra["25.000000"] = "short.fits"
    targets = tmp_path / "t.csv"
    targets.write_text("ra,dec\n15,0\n25,0\n")
    spec = CutoutSpec(size=16, format="fits", bands="grz", base_url=server.url)
    res = fetch_cutouts(FetchCutoutsConfig(targets, tmp_path / "f", spec, FAST))
    assert res.fetched == 1 and "truncated or corrupt FITS" in str(res.problems[0])
    assert "bands=grz" in server.requests[0][0]
    cat = open_catalog(tmp_path / "f")
    assert cat[0].image.shape == (16, 16, 3) and "FITS HDU 0 cube" in cat.info().extra["pixel_stretch"]


def test_concurrency_is_bounded(server: LocalServer, tmp_path: Path) -> None:
    targets = tmp_path / "t.csv"
    targets.write_text("ra,dec\n" + "".join(f"{ra},0\n" for ra in RAS))
    server.delay = 0.1
    res = fetch_cutouts(
        FetchCutoutsConfig(
            targets, tmp_path / "o", CutoutSpec(size=32, base_url=server.url), HttpConfig(concurrency=2)
        )
    )
    assert res.fetched == 6 and server.max_in_flight == 2


def test_unresolvable_host_fails_fast_and_leaves_no_empty_folder(tmp_path: Path) -> None:
    import time

    targets = tmp_path / "t.csv"
    targets.write_text("ra,dec\n10,0\n20,0\n")
    slow = HttpConfig(concurrency=2, retries=4, backoff_s=2.0)
    t0 = time.perf_counter()
    res = fetch_cutouts(
        FetchCutoutsConfig(
            targets, tmp_path / "cut" / "outs", CutoutSpec(size=32, base_url="http://gr-test.invalid"), slow
        )
    )
    assert time.perf_counter() - t0 < 10 and res.fetched == 0
    assert all("cannot resolve the host gr-test.invalid" in p.reason for p in res.problems)
    assert not (tmp_path / "cut").exists()
