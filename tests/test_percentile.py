"""Scores that mean something: each hit's percentile among the scores of random catalog pairs,
sampled once at build time into the manifest; older indexes without it still open."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from galaxy_retrieval.cli import app
from galaxy_retrieval.index import read_manifest
from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards
from galaxy_retrieval.index.candidates import IndexSpec
from galaxy_retrieval.index.reference import REFERENCE_KEY, ScoreReference, pair_scores, sample_reference
from galaxy_retrieval.score import ScoreWeights, score_numpy
from galaxy_retrieval.search.searcher import GalaxySearcher

from .test_index import _clustered, _write_shards

runner = CliRunner()
N = 300


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    tmp = tmp_path_factory.mktemp("pct")
    x = _clustered(N, 16, seed=2)
    return build_index_from_shards(
        _write_shards(tmp / "shards", x, per=100), tmp / "index", BuildConfig(index=IndexSpec(kind="flat"))
    ).path, x


def test_pair_scores_are_the_reference_score() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    w = ScoreWeights(cos=0.5, l2=0.3, l3=0.2)
    ref = [score_numpy(a[i], b[i : i + 1], w)[0] for i in range(5)]
    np.testing.assert_allclose(pair_scores(a, b, w), ref, rtol=1e-6)


def test_manifest_records_the_distribution_and_hits_get_percentiles(built: tuple[Path, np.ndarray]) -> None:
    path, x = built
    m = read_manifest(path)
    ref = ScoreReference.from_manifest(m.extra)
    assert ref is not None and ref.pairs == 100_000 and (np.diff(ref.quantiles) >= 0).all()
    s = GalaxySearcher.open(path)
    hits = s.query(object_id="obj-0005", k=20)
    pct = [h.percentile for h in hits]
    assert all(p is not None and 0 <= p <= 100 for p in pct)
    assert pct == sorted(pct, reverse=True)  # follows the score
    # against every pair of the catalog: the percentile is the share of pairs scoring below
    allpairs = np.concatenate([score_numpy(x[i], x[i + 1 :]) for i in range(N - 1)])
    for h in hits[::5]:
        truth = 100.0 * (allpairs < h.score).mean()
        assert h.percentile == pytest.approx(truth, abs=1.0)
    assert hits[0].percentile > 95  # a near neighbour in a clustered catalog
    far = s.query(object_id="obj-0005", k=5, order="least")
    assert far[0].percentile < 5
    # several examples combine scores: no pair's percentile
    assert all(h.percentile is None for h in s.query_examples(["obj-0005", "obj-0006"], k=3))


def test_exports_and_cli_show_the_percentile(built: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, _ = built
    r = runner.invoke(
        app,
        [
            "query",
            "--index",
            str(path),
            "--object-id",
            "obj-0005",
            "--k",
            "3",
            "--output",
            str(tmp_path / "h.json"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "pct" in r.output
    rows = json.loads((tmp_path / "h.json").read_text())
    assert all(0 <= row["percentile"] <= 100 for row in rows)
    hits = GalaxySearcher.open(path).query(object_id="obj-0005", k=3)
    assert f"{hits[0].percentile:.2f}" in r.output
    t = hits.to_table()
    assert str(t["percentile"].unit) == "%"
    r = runner.invoke(app, ["info", str(path)])
    assert r.exit_code == 0 and "100,000 scored: median" in r.output


def test_an_index_without_the_reference_still_opens(built: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(built[0], old)
    m = read_manifest(old)
    extra = {k: v for k, v in m.extra.items() if k != REFERENCE_KEY}
    dataclasses.replace(m, extra=extra).write(old)
    s = GalaxySearcher.open(old)
    assert s.reference is None
    hits = s.query(object_id="obj-0005", k=3)
    assert all(h.percentile is None for h in hits)
    assert hits.to_table()["percentile"].mask.all()
    r = runner.invoke(app, ["query", "--index", str(old), "--object-id", "obj-0005", "--k", "3"])
    assert r.exit_code == 0 and "—" in r.output
    r = runner.invoke(app, ["info", str(old)])
    assert r.exit_code == 0 and "not recorded" in r.output


def test_tiny_catalogs() -> None:
    assert sample_reference(np.zeros((1, 4), np.float32), ScoreWeights()) is None
    ref = sample_reference(np.eye(2, dtype=np.float32), ScoreWeights(), pairs=50)
    assert ref is not None and ref.percentile([2.0])[0] == 100.0 and ref.percentile([-1.0])[0] == 0.0
