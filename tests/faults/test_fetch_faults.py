"""`gr fetch-cutouts` against hostile servers (issue 21, item 7): a redirect loop was a
traceback (`httpx.TooManyRedirects`) and no `metadata.csv` was written; a server dripping one
byte every 2 s kept it running for ever (the timeout is per read); a gzip bomb was decoded
to 1 GiB in memory. Each is now one row's problem, and the other rows are fetched."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.errors import FetchError
from galaxy_retrieval.fetch import CutoutSpec, FetchCutoutsConfig, HttpConfig, fetch_cutout, fetch_cutouts

from ..localhttp import LocalServer
from ..test_fetch import RAS, _galaxy_jpeg

CFG = HttpConfig(concurrency=3, timeout_s=5.0, retries=0, backoff_s=0.01, deadline_s=1.5, max_bytes=2 << 20)


@pytest.fixture
def server(tmp_path: Path):
    root = tmp_path / "served"
    root.mkdir()
    with LocalServer(root) as s:
        for i, ra in enumerate(RAS):
            s.by_ra[ra] = _galaxy_jpeg(root / f"g{i}.jpg", i).name
        yield s


def test_hostile_rows_are_problems_and_the_rest_is_fetched(server: LocalServer, tmp_path: Path) -> None:
    targets = tmp_path / "targets.csv"
    targets.write_text("id,ra,dec\na,10,0\nloop,20,0\ndrip,30,0\nbomb,40,0\ne,50,0\n")
    server.script = {
        "ra=20.0": ["redirect_loop"] * 50,
        "ra=30.0": [("drip", 0.2)],
        "ra=40.0": [("gzip_bomb", 64 << 20)],
    }
    out = tmp_path / "out"
    t0 = time.perf_counter()
    tracemalloc.start()
    try:
        res = fetch_cutouts(FetchCutoutsConfig(targets, out, CutoutSpec(size=32, base_url=server.url), CFG))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    took = time.perf_counter() - t0
    assert res.fetched == 2 and res.total == 5
    lines = {p.object_id: str(p) for p in res.problems}
    assert "redirected more than 10 times" in lines["loop"]
    assert "took longer than 1.5 s" in lines["drip"]
    assert "is over 2,097,152 bytes (decoded)" in lines["bomb"]
    assert took < 15, took  # the drip is cut at the deadline
    print(f"fetch with a 64 MiB gzip bomb: peak traced memory {peak / 2**20:.1f} MiB, {took:.1f} s")
    assert peak < 32 << 20, peak  # the 64 MiB bomb was never held
    assert open_catalog(out).object_ids() == ["a", "e"]  # metadata.csv written
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "e.jpg", "metadata.csv"]


def test_cli_redirect_loop_is_one_line(server: LocalServer, tmp_path: Path) -> None:
    server.script = {"ra=20.0": ["redirect_loop"] * 50}
    with pytest.raises(FetchError, match="redirect loop"):
        fetch_cutout(20, 0, CutoutSpec(size=32, base_url=server.url), tmp_path / "cache", CFG)
