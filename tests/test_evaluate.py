"""Ranking metrics on hand-made rankings, loose accuracy, exact retrieval and evaluate()."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
import torch

from galaxy_retrieval.catalog.hdf5 import HDF5Catalog
from galaxy_retrieval.errors import ConfigError
from galaxy_retrieval.evaluate import evaluate, pixel_features
from galaxy_retrieval.evaluate.retrieval import _retrieval_scores
from galaxy_retrieval.metrics import (
    average_precision_at_k,
    loose_accuracy,
    macro_average,
    ndcg_at_k,
    precision_at_k,
)
from galaxy_retrieval.model import Embedder, build_model, preset
from galaxy_retrieval.score import ScoreWeights, score_numpy
from galaxy_retrieval.search.exact import exact_knn
from galaxy_retrieval.train import TrainConfig, train

# rank:         1  2  3  4  5
REL = np.array(
    [
        [1, 0, 1, 0, 0],  # 3 relevant in the database
        [0, 0, 0, 0, 0],  # 2 relevant, none found
        [1, 1, 1, 1, 1],
    ],  # 10 relevant
    dtype=bool,
)
N_REL = np.array([3, 2, 10])


def test_precision_at_k_by_hand():
    np.testing.assert_allclose(precision_at_k(REL, 1), [1, 0, 1])
    np.testing.assert_allclose(precision_at_k(REL, 3), [2 / 3, 0, 1])
    np.testing.assert_allclose(precision_at_k(REL, 5), [2 / 5, 0, 1])
    with pytest.raises(ValueError, match="k=6"):
        precision_at_k(REL, 6)


def test_average_precision_by_hand():
    # row 0: hits at ranks 1 and 3 → (1/1 + 2/3) / min(5, 3)
    np.testing.assert_allclose(average_precision_at_k(REL, 5, N_REL), [(1 + 2 / 3) / 3, 0, 1])
    np.testing.assert_allclose(average_precision_at_k(REL, 1, N_REL), [1, 0, 1])
    # a relevant item the ranking missed lowers AP: hit at rank 2 only, 1 relevant → 1/2
    np.testing.assert_allclose(average_precision_at_k(np.array([[0, 1, 0]]), 3, [1]), [0.5])
    # without n_relevant, R is counted within the ranking: row 0 → (1 + 2/3) / 2
    np.testing.assert_allclose(average_precision_at_k(REL[:1], 5), [(1 + 2 / 3) / 2])


def test_ndcg_by_hand():
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    np.testing.assert_allclose(ndcg_at_k(REL, 5, N_REL), [dcg / idcg, 0, 1])
    np.testing.assert_allclose(ndcg_at_k(np.array([[0, 1, 0]]), 3, [1]), [1 / math.log2(3)])


def test_macro_average_weights_classes_equally():
    macro, per = macro_average(np.array([1.0, 1.0, 1.0, 0.0]), np.array([0, 0, 0, 1]))
    assert per == {0: 1.0, 1: 0.0} and macro == 0.5  # the micro average would be 0.75


def test_retrieval_scores_by_hand():
    db_labels = np.array([0, 0, 1, 1, 1])
    queries = np.array([0, 2])  # rows 0 (class 0) and 2 (class 1); results exclude themselves
    I = np.array([[1, 2, 3], [3, 0, 4]])
    r = _retrieval_scores(I, db_labels[queries], db_labels, ks=(1, 3))
    assert r.per_class[0]["precision@1"] == 1.0 and r.per_class[0]["precision@3"] == pytest.approx(1 / 3)
    assert r.per_class[0]["map@3"] == 1.0  # its single relevant item is first
    assert r.per_class[1]["map@3"] == pytest.approx((1 + 2 / 3) / 2)
    assert r.macro["precision@3"] == pytest.approx((1 / 3 + 2 / 3) / 2)


def test_loose_accuracy_by_hand():
    a = np.eye(8, dtype=np.float32) * 2
    assert loose_accuracy(a, a.copy(), 4) == (1.0, 8)
    assert loose_accuracy(a, -a, 4)[0] == 0.0
    p = a.copy()
    p[7] = a[6]  # image 7's "positive" is image 6 itself: a tie with a batch-mate is a miss
    assert loose_accuracy(a, p, 4) == (7 / 8, 8)
    assert loose_accuracy(a, p, 8) == (7 / 8, 8)
    acc, n = loose_accuracy(a, p, 16)
    assert math.isnan(acc) and n == 0
    acc, n = loose_accuracy(a[:7], p[:7], 4)  # the incomplete last batch is dropped
    assert n == 4 and acc == 1.0


def test_exact_knn_excludes_self():
    rng = np.random.default_rng(0)
    xb = rng.normal(size=(50, 12)).astype(np.float32)
    xq = xb[:5] + rng.normal(scale=0.1, size=(5, 12)).astype(np.float32)
    w = ScoreWeights(0.5, 0.3, 0.2)
    D, I = exact_knn(xq, xb, 4, w)
    assert I[:, 0].tolist() == [0, 1, 2, 3, 4]  # its unperturbed self comes first
    for i in range(5):  # the reference formula agrees on the scores and the order
        ref = score_numpy(xq[i], xb, w)
        np.testing.assert_allclose(D[i], ref[I[i]], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(I[i], np.argsort(-ref, kind="stable")[:4])
    D2, I2 = exact_knn(xq, xb, 4, w, exclude=np.arange(5))
    assert not np.any(np.arange(5)[:, None] == I2)
    np.testing.assert_array_equal(I2[:, :3], I[:, 1:])


def test_pixel_features():
    x = torch.zeros(2, 3, 64, 64)
    x[1, :, :32] = 1.0
    f = pixel_features(x)
    assert f.shape == (2, 768) and f.dtype == np.float32
    assert f[0].max() == 0 and f[1].mean() == pytest.approx(0.5)


def _blob_catalog(path, n=80, labels=True):
    """Four blob shapes (round, elongated, ring, double) with random tilt, tint and noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:40].astype(np.float32) / 40 - 0.5
    lab = np.arange(n) % 4
    ims = np.zeros((n, 40, 40, 3), np.uint8)
    for i, c in enumerate(lab):
        th = rng.uniform(0, np.pi)
        x, y = xx * np.cos(th) + yy * np.sin(th), -xx * np.sin(th) + yy * np.cos(th)
        s = rng.uniform(0.08, 0.14)
        f = [
            np.exp(-(x**2 + y**2) / (2 * s**2)),
            np.exp(-(x**2 / (2 * (2.5 * s) ** 2) + y**2 / (2 * (0.5 * s) ** 2))),
            np.exp(-((np.hypot(x, y) - 1.5 * s) ** 2) / (2 * (0.3 * s) ** 2)),
            sum(np.exp(-((x - d) ** 2 + y**2) / (2 * (0.6 * s) ** 2)) for d in (s, -s)),
        ][c]
        img = f[..., None] * rng.uniform(0.6, 1.0, 3) + rng.normal(0, 0.03, (40, 40, 3))
        ims[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    with h5py.File(path, "w") as f:
        f["images"] = ims
        if labels:
            f["ans"] = lab.astype(np.uint8)
    return HDF5Catalog(path)


def test_evaluate_report(tmp_path):
    cat = _blob_catalog(tmp_path / "b.h5")
    emb = Embedder.from_model(build_model(preset("tiny"), seed=0), device="cpu")
    rep = evaluate(emb, cat, ks=(1, 5), batch_sizes=(4, 8), seed=0)
    assert rep.n_queries == 8 and rep.n_database == 80 and rep.split == "test"
    every = {"model", "untrained", "pixels", "polar", "morphology"}
    assert set(rep.loose_accuracy) == every and set(rep.retrieval) == every
    # the "untrained" baseline is the same init as this untrained model: identical numbers
    assert rep.retrieval["model"].macro == rep.retrieval["untrained"].macro
    for m, r in rep.retrieval.items():
        assert set(r.macro) == {"precision@1", "precision@5", "map@1", "map@5", "ndcg@1", "ndcg@5"}
        assert all(0.0 <= v <= 1.0 for v in r.macro.values()), m
        assert set(r.per_class) <= {0, 1, 2, 3}
    assert rep.retrieval["pixels"].macro["precision@5"] > 0.25  # better than chance on blobs
    # the four shapes are rotated at random: the rotation-invariant descriptors find them
    for m in ("polar", "morphology"):
        assert rep.retrieval[m].macro["precision@5"] > 0.5, m
    best = max((r.macro["precision@5"], m) for m, r in rep.retrieval.items() if m != "model")[1]
    assert rep.best_baseline("precision@5") == best
    assert rep.label_names is None  # the file names no classes, and four are not Galaxy10's ten
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["loose_accuracy"]["model"]["4"] is not None and d["query_class_counts"]
    # same inputs, same report
    again = evaluate(emb, cat, ks=(1, 5), batch_sizes=(4, 8), seed=0)
    assert again.loose_accuracy == rep.loose_accuracy


def test_evaluate_checkpoint_uses_its_split_and_handles_no_labels(tmp_path):
    cat = _blob_catalog(tmp_path / "b.h5")
    cfg = TrainConfig(preset="tiny", epochs=1, batch_size=16, seed=5, loose_batch_sizes=(4,))
    train(cfg, cat, tmp_path / "run")
    rep = evaluate(tmp_path / "run", cat, ks=(1,), batch_sizes=(4,), baselines=False)
    assert rep.split_seed == 5 and set(rep.loose_accuracy) == {"model"}
    unl = _blob_catalog(tmp_path / "u.h5", labels=False)
    rep = evaluate(tmp_path / "run", unl, split="val", batch_sizes=(4,))
    assert rep.retrieval is None and rep.n_queries == 8
    with pytest.raises(ConfigError, match="split='dev'"):
        evaluate(tmp_path / "run", cat, split="dev")


def test_evaluate_gives_ranked_neighbours_outside_the_json(tmp_path):
    cat = _blob_catalog(tmp_path / "b.h5")
    emb = Embedder.from_model(build_model(preset("tiny"), seed=0), device="cpu")
    rep = evaluate(emb, cat, ks=(1, 5), batch_sizes=(4,), seed=0)
    q = rep.query_rows
    assert len(q) == rep.n_queries == 8 and np.all(np.diff(q) > 0)
    assert set(rep.neighbours) == {"model", "untrained", "pixels", "polar", "morphology"}
    labels = cat.labels()
    for m, nb in rep.neighbours.items():
        assert nb.shape == (8, 5) and nb.dtype == np.int64
        assert not np.any(nb == q[:, None]), m  # the query itself is excluded
        assert all(len(set(r)) == 5 for r in nb)
        # the metrics are computed from exactly these rankings
        hit1 = (labels[nb[:, 0]] == labels[q]).mean()
        assert rep.retrieval[m].micro["precision@1"] == pytest.approx(hit1)
    # best first, by the exact score of the report's weights: the pixels ranking by hand
    from galaxy_retrieval.model.preprocess import images_to_float

    feats = pixel_features(images_to_float(cat.get_batch(np.arange(80)).images, 32))
    w = ScoreWeights.from_dict(rep.score_weights)
    for i, qi in enumerate(q):  # checked against the reference formula, not the search engine
        ref = score_numpy(feats[qi], feats, w)
        ref[qi] = -np.inf
        got = ref[rep.neighbours["pixels"][i]]
        assert np.all(np.diff(got) <= 1e-6)  # best first
        assert got[-1] >= np.sort(ref)[-5] - 1e-6  # and no better row was left out
    d = rep.to_dict()
    assert "neighbours" not in d and "query_rows" not in d and d["suppress_sources"] is None
    json.dumps(d)
    unl = evaluate(
        emb, _blob_catalog(tmp_path / "u.h5", labels=False), split="val", batch_sizes=(4,), baselines=False
    )
    assert len(unl.query_rows) == 8 and unl.neighbours == {}


def test_evaluate_uses_the_embedders_score_weights():
    # (the learned weights of a trained checkpoint: tests/test_train.py)
    w = ScoreWeights(0.6, 0.3, 0.1)
    model = build_model(preset("tiny"), seed=0)
    emb = Embedder.from_model(model, device="cpu", meta={"score_weights": w.to_dict()})
    assert emb.score_weights == w
    assert Embedder.from_model(
        model, device="cpu", meta={"train": {"score_weights": ScoreWeights(1, 1, 2).to_dict()}}
    ).score_weights == ScoreWeights(1, 1, 2)


def test_evaluate_suppresses_the_images_of_every_method(tmp_path):
    from galaxy_retrieval.suppress import SuppressConfig

    from .test_train import star_image

    ims = np.stack([star_image(i % 2 == 0, size=48, seed=i) for i in range(30)])
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["images"] = ims
        f["ans"] = (np.arange(30) % 2).astype(np.uint8)
    cat = HDF5Catalog(tmp_path / "s.h5")
    model = build_model(preset("tiny"), seed=0)
    plain = evaluate(Embedder.from_model(model, device="cpu"), cat, ks=(1,), batch_sizes=(2,), split="all")
    sup = evaluate(
        Embedder.from_model(model, device="cpu", suppress=SuppressConfig()),
        cat,
        ks=(1,),
        batch_sizes=(2,),
        split="all",
    )
    assert plain.suppress_sources is None and sup.suppress_sources == SuppressConfig().to_dict()
    # with the stars there, the pixels find the star images' class (label = has a star)
    # perfectly; suppressed, the two classes look alike and the pixels lose that cue too
    assert all(plain.retrieval[m].micro["precision@1"] == 1.0 for m in ("model", "untrained", "pixels"))
    assert all(sup.retrieval[m].micro["precision@1"] < 0.9 for m in ("model", "untrained", "pixels"))
    # an explicit override of evaluate() wins over the embedder's
    off = evaluate(
        Embedder.from_model(model, device="cpu", suppress=SuppressConfig()),
        cat,
        ks=(1,),
        batch_sizes=(2,),
        split="all",
        baselines=False,
        suppress=None,
    )
    assert off.suppress_sources is None
    assert off.retrieval["model"].micro == plain.retrieval["model"].micro
