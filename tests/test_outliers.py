"""The catalog-wide outlier search: lowest score to the k-th neighbour, cached per index version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from galaxy_retrieval.cli import app
from galaxy_retrieval.errors import QueryError
from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards
from galaxy_retrieval.index.candidates import IndexSpec
from galaxy_retrieval.index.writes import delete_objects
from galaxy_retrieval.score import score_numpy
from galaxy_retrieval.search.kth_neighbour import cache_name
from galaxy_retrieval.search.searcher import GalaxySearcher

from .test_index import _clustered, _write_shards

runner = CliRunner()
N, D = 400, 16
ODD = [37, 150, 333]  # rows replaced by objects like nothing else


def _data() -> np.ndarray:
    x = _clustered(N, D, seed=4)
    rng = np.random.default_rng(9)
    for r in ODD:
        x[r] = rng.normal(size=D).astype(np.float32) * 4  # off every cluster
    return x


def _build(tmp: Path, kind: str = "flat") -> Path:
    return build_index_from_shards(
        _write_shards(tmp / "shards", _data(), per=150),
        tmp / "index",
        BuildConfig(index=IndexSpec(kind=kind)),
    ).path


def test_outliers_are_the_objects_unlike_any_other(tmp_path: Path) -> None:
    path = _build(tmp_path)
    s = GalaxySearcher.open(path)
    k = 10
    # with a shortlist of every object, the exact k-th neighbour score of the reference formula
    full = s.outlier_scores(k=k, refine=40, cache=False)
    x = _data()
    for r in (0, 37, 200):
        ref = score_numpy(x[r], x)
        ref[r] = -np.inf
        assert full[r] == pytest.approx(np.sort(ref)[::-1][k - 1], rel=1e-5)
    # the default shortlist of k (the L2-nearest): a subset, so never above the exact score, close to it
    scores = s.outlier_scores(k=k)
    assert (scores <= full + 1e-6).all() and (full - scores).max() < 0.02
    hits = s.outliers(n=3, k=k)
    assert sorted(h.row for h in hits) == ODD
    assert [h.rank for h in hits] == [1, 2, 3] and hits[0].score <= hits[1].score <= hits[2].score
    assert all(h.percentile is not None for h in hits)
    # cached beside the index for this version, and used again
    cache = path / cache_name(s.manifest.version, k, 1)
    assert cache.is_file() and not list(path.glob(".*.tmp"))
    np.testing.assert_array_equal(np.load(cache), scores)
    assert [h.row for h in GalaxySearcher.open(path).outliers(n=3, k=k)] == [h.row for h in hits]
    # a filter limits the answer, not the neighbours
    only = s.outliers(n=2, k=k, where="label = 0")
    assert all(h.metadata["label"] == 0 for h in only)


def test_a_write_makes_new_scores_and_deleted_rows_are_never_outliers(tmp_path: Path) -> None:
    path = _build(tmp_path)
    s = GalaxySearcher.open(path)
    first = s.outliers(n=3, k=5)
    old_cache = path / cache_name(s.manifest.version, 5, 1)
    assert old_cache.is_file()
    delete_objects(path, [first[0].object_id])
    assert not old_cache.exists()  # stale with the version it described
    s2 = GalaxySearcher.open(path)
    scores = s2.outlier_scores(k=5)
    assert np.isnan(scores[first[0].row]) and np.isfinite(np.delete(scores, first[0].row)).all()
    assert first[0].object_id not in [h.object_id for h in s2.outliers(n=5, k=5)]


def test_outliers_with_an_approximate_index(tmp_path: Path) -> None:
    s = GalaxySearcher.open(_build(tmp_path, kind="hnsw"))
    assert sorted(h.row for h in s.outliers(n=3, k=10, refine=2)) == ODD
    with pytest.raises(QueryError, match="k=400 needs at least 401 objects"):
        s.outliers(k=400)
    with pytest.raises(QueryError, match="n must be"):
        s.outliers(n=0)


def test_cli_outliers(tmp_path: Path) -> None:
    path = _build(tmp_path)
    r = runner.invoke(
        app,
        ["outliers", "--index", str(path), "--n", "3", "--k", "10", "--output", str(tmp_path / "odd.csv")],
    )
    assert r.exit_code == 0, r.output
    assert "least like any other" in r.output and "computed" in r.output
    assert all(f"obj-{i:04d}" in r.output for i in ODD)
    assert (tmp_path / "odd.csv").read_text().count("\n") == 4
    r = runner.invoke(app, ["outliers", "--index", str(path), "--n", "3", "--k", "10", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["cached"] is True
    r = runner.invoke(app, ["outliers", "--index", str(path), "--k", "0"])
    assert r.exit_code == 2 and "k must be" in r.output


def test_api_outliers_and_percentiles(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from galaxy_retrieval.serve import ServeConfig, create_app

    path = _build(tmp_path)
    with TestClient(create_app(ServeConfig(index=path))) as c:
        r = c.get("/api/outliers", params={"n": 3, "k": 10})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["query"]["kind"] == "outliers"
        assert sorted(h["row"] for h in body["hits"]) == ODD
        assert all(h["percentile"] is not None for h in body["hits"])
        assert c.get("/api/outliers", params={"k": 400}).status_code == 400
        hits = c.post("/api/search", json={"object_id": "obj-0001", "k": 3}).json()["hits"]
        assert all(0 <= h["percentile"] <= 100 for h in hits)
