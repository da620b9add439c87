"""`gr query --ra --dec --fetch`: with nothing in the catalog there, search the survey's cutout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.cli import app
from galaxy_retrieval.errors import QueryError
from galaxy_retrieval.fetch import CutoutSpec, HttpConfig
from galaxy_retrieval.index.build import BuildConfig, build_index
from galaxy_retrieval.index.candidates import IndexSpec
from galaxy_retrieval.model import build_model, preset, save_weights
from galaxy_retrieval.search.searcher import GalaxySearcher

from .localhttp import LocalServer


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("qf")
    rng = np.random.default_rng(3)
    cat = tmp / "cat"
    cat.mkdir()
    rows = ["filename,objid,RA,DEC"]
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(cat / f"g{i}.png")
        rows.append(f"g{i}.png,{1000 + i},{100 + i},{-5 + i}")
    (cat / "metadata.csv").write_text("\n".join(rows) + "\n")
    torch.manual_seed(0)
    save_weights(tmp / "ck" / "model.safetensors", build_model(preset("tiny")))
    with open_catalog(cat) as c:
        build_index(
            tmp / "ck",
            c,
            tmp / "index",
            BuildConfig(shard_rows=8, batch_size=4, index=IndexSpec(kind="flat")),
        )
    return tmp / "index"


def test_query_sky_uses_the_catalog_object_or_fetches_the_cutout(index: Path, tmp_path: Path) -> None:
    root = tmp_path / "served"
    root.mkdir()
    Image.fromarray(np.random.default_rng(9).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
        root / "cutout.jpg"
    )
    s = GalaxySearcher.open(index)
    near = s.query_sky(103.0, -2.0, k=3)
    assert near.object_id == "1003" and near.cutout is None and len(near.hits) == 3
    with pytest.raises(QueryError, match="no catalog object within 10 arcsec"):
        s.query_sky(200.0, 10.0, k=3)
    with LocalServer(root) as server:
        spec = CutoutSpec(size=32, base_url=server.url + "/viewer")
        far = s.query_sky(
            200.0, 10.0, k=3, fetch=spec, cache_dir=tmp_path / "cache", http=HttpConfig(retries=0)
        )
        assert server.requests[0][0].startswith(
            "/viewer/cutout.jpg?ra=200.000000&dec=10.000000&layer=ls-dr10"
        )
    assert (
        far.object_id is None
        and far.cutout is not None
        and far.cutout.parent == tmp_path / "cache" / "legacy"
    )
    assert "no catalog object within" in (far.why_fetched or "")
    assert [h.object_id for h in far.hits] == [h.object_id for h in s.query(image=far.cutout, k=3)]
    # cached: a second query needs no server
    again = s.query_sky(200.0, 10.0, k=3, fetch=spec, cache_dir=tmp_path / "cache")
    assert again.cutout == far.cutout
    with pytest.raises(QueryError, match="Dec 91 out of range"):
        s.query_sky(200.0, 91.0, fetch=spec, cache_dir=tmp_path / "cache")


def test_cli_query_fetch(index: Path, tmp_path: Path) -> None:
    root = tmp_path / "served"
    root.mkdir()
    Image.fromarray(np.random.default_rng(9).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
        root / "getjpeg", format="JPEG"
    )
    runner = CliRunner()
    base = ["query", "--index", str(index), "--ra", "250", "--dec", "1", "--k", "2"]
    r = runner.invoke(app, base)
    assert r.exit_code == 2 and "no catalog object within 10 arcsec" in r.output
    with LocalServer(root) as server:
        r = runner.invoke(
            app,
            [
                *base,
                "--fetch",
                "sdss",
                "--fetch-size",
                "32",
                "--base-url",
                server.url,
                "--cache-dir",
                str(tmp_path / "c"),
                "--mosaic",
                str(tmp_path / "m.png"),
            ],
        )
    assert r.exit_code == 0, r.output
    assert "searched with the sdss cutout" in r.output and "neighbours of cutout at RA 250, Dec 1" in r.output
    assert (tmp_path / "m.png").is_file()
    r = runner.invoke(app, ["query", "--index", str(index), "--object-id", "1001", "--fetch", "legacy"])
    assert (
        r.exit_code == 2
        and "a cutout fetch applies to a query by RA and Dec only (--fetch or --ra or --dec)" in r.output
    )
