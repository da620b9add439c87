"""`GalaxySearcher` shared by threads that ask for different ``nprobe`` (issue 12, item 3).

Before the fix, an ``nprobe=`` call changed the shared FAISS index while calls without it
searched unlocked: wrong answers (the other thread's nprobe) and out-of-bounds reads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards
from galaxy_retrieval.index.candidates import IndexSpec
from galaxy_retrieval.search.searcher import GalaxySearcher

from ..test_index import _clustered, _write_shards


@pytest.fixture(scope="module")
def ivf(tmp_path_factory: pytest.TempPathFactory) -> GalaxySearcher:
    tmp = tmp_path_factory.mktemp("ivf")
    x = _clustered(n=2000, d=32)
    build_index_from_shards(
        _write_shards(tmp / "shards", x, per=500),
        tmp / "index",
        BuildConfig(index=IndexSpec(kind="IVF16,Flat", nprobe=4)),
    )
    return GalaxySearcher.open(tmp / "index")


def _calls(s: GalaxySearcher) -> list[tuple[str, int | None, int]]:
    return [
        (kind, nprobe, i)
        for i in range(12)
        for kind in ("query", "search_vectors", "batch")
        for nprobe in (None, 1, 64)
    ]


def _run(s: GalaxySearcher, call: tuple[str, int | None, int]) -> list:
    kind, nprobe, i = call
    if kind == "query":
        return [
            (h.object_id, round(h.score, 6))
            for h in s.query(object_id=f"obj-{i * 37:04d}", k=10, refine=1, nprobe=nprobe)
        ]
    xq = np.asarray(s.vectors[[i * 37, i * 37 + 1]], np.float32)
    if kind == "search_vectors":
        sc, pos, _ = s.search_vectors(xq, k=10, refine=1, nprobe=nprobe)
        return [pos.tolist(), np.round(sc, 6).tolist()]
    # query_batch embeds images; its FAISS path is search_vectors with the same knobs, so the
    # batch case here runs three queries through one search call
    sc, pos, _ = s.search_vectors(
        np.asarray(s.vectors[[i, i + 100, i + 200]], np.float32), k=10, refine=1, nprobe=nprobe
    )
    return [pos.tolist()]


def test_per_call_nprobe_changes_the_answer_and_not_the_index(ivf: GalaxySearcher) -> None:
    stored = ivf.index.nprobe if hasattr(ivf.index, "nprobe") else None
    narrow = [_run(ivf, ("search_vectors", 1, i)) for i in range(12)]
    wide = [_run(ivf, ("search_vectors", 64, i)) for i in range(12)]
    assert narrow != wide  # the knob reaches FAISS (else the threaded test below proves nothing)
    assert (ivf.index.nprobe if hasattr(ivf.index, "nprobe") else None) == stored == 4


def test_eight_threads_mixing_nprobe_get_the_sequential_answers(ivf: GalaxySearcher) -> None:
    calls = _calls(ivf) * 3
    sequential = [_run(ivf, c) for c in calls]
    for _ in range(3):
        with ThreadPoolExecutor(8) as ex:
            parallel = list(ex.map(lambda c: _run(ivf, c), calls))
        assert parallel == sequential


def test_bad_per_call_knob_is_a_query_error(ivf: GalaxySearcher) -> None:
    from galaxy_retrieval.errors import QueryError

    with pytest.raises(QueryError, match="nprobe must be ≥ 1"):
        ivf.query(object_id="obj-0001", k=3, nprobe=0)


def test_image_queries_and_batches_in_threads_with_a_model(tiny: dict[str, Path], tmp_path: Path) -> None:
    """``query(image=)`` and ``query_batch`` embed with the index's model, then search with
    the call's nprobe: the same race, through the paths a server uses."""
    from galaxy_retrieval.catalog import open_catalog
    from galaxy_retrieval.index.build import build_index

    with open_catalog(tiny["catalog"]) as c:
        build_index(
            tiny["checkpoint"],
            c,
            tmp_path / "ivf",
            BuildConfig(shard_rows=8, batch_size=4, index=IndexSpec(kind="IVF4,Flat", nprobe=2)),
        )
        images = [c[i].image for i in range(6)]
    s = GalaxySearcher.open(tmp_path / "ivf")

    def work(call: tuple[str, int | None, int]) -> list:
        kind, nprobe, i = call
        if kind == "query":
            return [h.object_id for h in s.query(image=images[i], k=5, refine=1, nprobe=nprobe)]
        if kind == "batch":
            return [
                [h.object_id for h in hs]
                for hs in s.query_batch(images[i : i + 2], k=5, refine=1, nprobe=nprobe)
            ]
        return s.search_vectors(np.asarray(s.vectors[[i]], np.float32), k=5, refine=1, nprobe=nprobe)[
            1
        ].tolist()

    calls = [
        (kind, nprobe, i)
        for i in range(5)
        for kind in ("query", "batch", "vectors")
        for nprobe in (None, 1, 4)
    ] * 2
    sequential = [work(c) for c in calls]
    with ThreadPoolExecutor(8) as ex:
        assert list(ex.map(work, calls)) == sequential


def test_hnsw_ef_search_per_call_in_threads(tmp_path: Path) -> None:
    x = _clustered(n=2000, d=32, seed=2)
    build_index_from_shards(
        _write_shards(tmp_path / "shards", x, per=1000),
        tmp_path / "index",
        BuildConfig(index=IndexSpec(kind="HNSW8,Flat", ef_search=16)),
    )
    s = GalaxySearcher.open(tmp_path / "index")
    stored = s.index.hnsw.efSearch

    def work(call: tuple[int | None, int]) -> list:
        ef, i = call
        return s.search_vectors(
            np.asarray(s.vectors[[i, i + 500]], np.float32), k=20, refine=1, ef_search=ef
        )[1].tolist()

    calls = [(ef, i) for i in range(0, 60, 5) for ef in (None, 1, 256)] * 2
    sequential = [work(c) for c in calls]
    assert any(a != b for a, b in zip(sequential[1::3], sequential[2::3]))  # ef reaches FAISS
    with ThreadPoolExecutor(8) as ex:
        assert list(ex.map(work, calls)) == sequential
    assert s.index.hnsw.efSearch == stored == 16


def test_eight_threads_mixing_filters_and_deletions_get_the_sequential_answers(tmp_path: Path) -> None:
    """Filters are selected (DuckDB) and their FAISS selectors built lazily, under threads."""
    from galaxy_retrieval.index.writes import delete_objects

    x = _clustered(n=2000, d=32)
    build_index_from_shards(
        _write_shards(tmp_path / "shards", x, per=500),
        tmp_path / "index",
        BuildConfig(index=IndexSpec(kind="IVF16,Flat", nprobe=4)),
    )
    delete_objects(tmp_path / "index", [f"obj-{i:04d}" for i in range(0, 2000, 7)])
    wheres = (None, "label = 1", "label IN (2, 3) AND row < 1500", "row % 11 = 0")

    def run(s: GalaxySearcher, call: tuple[str | None, int | None, int]) -> list:
        where, nprobe, i = call
        return [
            (h.object_id, round(h.score, 6))
            for h in s.query(object_id=f"obj-{i * 70 + 1:04d}", k=10, refine=2, nprobe=nprobe, where=where)
        ]

    calls = [(w, n, i) for i in range(10) for w in wheres for n in (None, 1, 16)]
    s = GalaxySearcher.open(tmp_path / "index")
    s.exact_scan_elements = 0  # every filter through FAISS' selector
    sequential = [run(s, c) for c in calls]
    for _ in range(2):
        fresh = GalaxySearcher.open(tmp_path / "index")  # selections and selectors not built yet
        fresh.exact_scan_elements = 0
        with ThreadPoolExecutor(8) as ex:
            assert list(ex.map(lambda c: run(fresh, c), calls)) == sequential  # noqa: B023 (joined in the loop)
