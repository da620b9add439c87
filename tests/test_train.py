"""Label-free training: splits, augmentations, pairs, loss, the loop, checkpoints, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from galaxy_retrieval.catalog.hdf5 import HDF5Catalog
from galaxy_retrieval.errors import CatalogError, CheckpointError, ConfigError
from galaxy_retrieval.model import load_checkpoint, preset
from galaxy_retrieval.score import ScoreWeights, score_torch
from galaxy_retrieval.train import AugmentConfig, PairAugmenter, TrainConfig, split_indices, train
from galaxy_retrieval.train.losses import contrastive_loss
from galaxy_retrieval.train.pairs import make_pair_batch, other_positions, pair_loss


def blob_images(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four kinds of synthetic "galaxy": round, elongated, ring, double; random tilt and tint."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    labels = np.arange(n) % 4
    ims = np.zeros((n, size, size, 3), np.uint8)
    for i, c in enumerate(labels):
        th = rng.uniform(0, np.pi)
        x = xx * np.cos(th) + yy * np.sin(th)
        y = -xx * np.sin(th) + yy * np.cos(th)
        s = rng.uniform(0.08, 0.14)
        if c == 0:
            f = np.exp(-(x**2 + y**2) / (2 * s**2))
        elif c == 1:
            f = np.exp(-(x**2 / (2 * (2.5 * s) ** 2) + y**2 / (2 * (0.5 * s) ** 2)))
        elif c == 2:
            f = np.exp(-((np.hypot(x, y) - 1.5 * s) ** 2) / (2 * (0.3 * s) ** 2))
        else:
            f = sum(np.exp(-((x - d) ** 2 + y**2) / (2 * (0.6 * s) ** 2)) for d in (s, -s))
        img = f[..., None] * rng.uniform(0.6, 1.0, 3) + rng.normal(0, 0.03, (size, size, 3))
        ims[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return ims, labels


def write_blob_catalog(path: Path, n: int = 64, size: int = 40, seed: int = 0, labels: bool = True) -> Path:
    ims, lab = blob_images(n, size, seed)
    with h5py.File(path, "w") as f:
        f["images"] = ims
        if labels:
            f["ans"] = lab.astype(np.uint8)
    return path


@pytest.fixture
def blobs(tmp_path: Path) -> HDF5Catalog:
    return HDF5Catalog(write_blob_catalog(tmp_path / "blobs.h5"))


def tiny_cfg(**kw) -> TrainConfig:
    return TrainConfig(
        **{**dict(preset="tiny", epochs=3, batch_size=16, seed=0, loose_batch_sizes=(4,)), **kw}
    )


# ---- score and loss against the formulas ---------------------------------------------------


def _reference_score(a: list[float], b: list[float], w=(1 / 3, 1 / 3, 1 / 3)) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    l2 = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    l3 = sum(abs(x - y) ** 3 for x, y in zip(a, b)) ** (1 / 3)
    return w[0] * dot / (na * nb) + w[1] / (1 + l2) + w[2] / (1 + l3)


def test_torch_score_matches_reference_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 9)), rng.normal(size=(6, 9))
    got = score_torch(torch.tensor(a), torch.tensor(b)).double().numpy()
    want = [_reference_score(list(x), list(y)) for x, y in zip(a, b)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    w = ScoreWeights(cos=0.5, l2=0.2, l3=0.3)
    got = score_torch(torch.tensor(a), torch.tensor(b), w).double().numpy()
    np.testing.assert_allclose(
        got, [_reference_score(list(x), list(y), (0.5, 0.2, 0.3)) for x, y in zip(a, b)], rtol=1e-5
    )
    # identical vectors score the maximum, 1 (up to the ε under the roots that keeps gradients finite)
    assert float(score_torch(torch.tensor(a[:1]), torch.tensor(a[:1]))) == pytest.approx(1.0, abs=1e-4)


def test_contrastive_loss_hand_made():
    s = torch.tensor([0.9, 0.2, 0.4, 1.2])
    y = torch.tensor([1, 1, 0, 0])
    # positives: (1 - s)^2 clipped at 0 → 0.01, 0.64; negatives: s^2 → 0.16, 1.44
    assert float(contrastive_loss(s, y, margin=1.0)) == pytest.approx((0.01 + 0.64 + 0.16 + 1.44) / 4)
    assert float(contrastive_loss(torch.tensor([1.5]), torch.tensor([1]))) == 0.0  # past the margin


# ---- split, augmentation, pairs ------------------------------------------------------------


def test_split_is_fixed_disjoint_and_covering():
    tr, va, te = split_indices(1000, seed=3)
    assert (len(tr), len(va), len(te)) == (800, 100, 100)
    assert len(np.intersect1d(tr, va)) == len(np.intersect1d(tr, te)) == len(np.intersect1d(va, te)) == 0
    assert np.array_equal(np.sort(np.concatenate([tr, va, te])), np.arange(1000))
    again = split_indices(1000, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip((tr, va, te), again))
    assert not np.array_equal(split_indices(1000, seed=4)[1], va)
    with pytest.raises(CatalogError, match="2 objects"):
        split_indices(2, 0)


def test_augmentations_per_sample_reproducible_and_in_range():
    x = torch.rand(16, 3, 32, 32)
    aug = PairAugmenter(AugmentConfig(num_positive=3, num_negative=3))
    p1 = aug.positive(x, torch.Generator().manual_seed(0))
    p2 = aug.positive(x, torch.Generator().manual_seed(0))
    n1 = aug.negative(x, torch.Generator().manual_seed(0))
    assert torch.equal(p1, p2)
    assert p1.shape == n1.shape == x.shape
    assert float(p1.min()) >= 0.0 and float(p1.max()) <= 1.0
    # each sample gets its own transform: the same image in every slot comes out differently
    same = aug.positive(x[:1].repeat(8, 1, 1, 1), torch.Generator().manual_seed(1))
    assert len({round(float(v), 4) for v in same.sum(dim=(1, 2, 3))}) > 4
    # no transform drawn: the image is unchanged
    ident = PairAugmenter(AugmentConfig(num_positive=0, num_negative=0))
    assert torch.equal(ident.positive(x, torch.Generator()), x)
    with pytest.raises(ConfigError, match="num_positive=10"):
        AugmentConfig(num_positive=10)
    with pytest.raises(ConfigError, match="twirl"):
        AugmentConfig(positive_set=("hflip", "twirl"))
    # only the chosen transforms are drawn: flips alone keep the pixel values
    flips = PairAugmenter(AugmentConfig(num_positive=2, positive_set=("hflip", "vflip")))
    out = flips.positive(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.flip(-1).flip(-2), x, atol=1e-5, rtol=0)


def test_geometric_positive_transforms_are_exact_on_pixel_grid():
    # flips and 90° turns move pixel centres onto pixel centres: no interpolation blur
    from galaxy_retrieval.train.augment import _rot90, _warp

    x = torch.rand(1, 3, 8, 8)
    out = _warp(x, _rot90(torch.tensor([1])))
    assert any(torch.allclose(out, torch.rot90(x, k, dims=(2, 3)), atol=1e-5) for k in (1, 3))


def test_pair_batches_one_model_call_and_different_negatives():
    g = torch.Generator().manual_seed(0)
    pos = torch.arange(10)
    other = other_positions(pos, 10, g)
    assert not torch.any(other == pos)
    aug = PairAugmenter()
    a, o = torch.rand(6, 3, 32, 32), torch.rand(6, 3, 32, 32)
    pb = make_pair_batch(a, o, aug, g, "paper")
    assert pb.images.shape[0] == 18 and pb.n_pairs == 12
    assert pb.y.tolist() == [1] * 6 + [0] * 6 and torch.equal(pb.images[:6], a)
    half = make_pair_batch(a, o, aug, g, "paper", save_computations=True)
    assert half.images.shape[0] == 12 and half.n_pairs == 6
    inb = make_pair_batch(a, None, aug, g, "in_batch")
    assert inb.images.shape[0] == 12 and inb.n_pairs == 36
    emb = torch.randn(12, 5, requires_grad=True)
    loss, acc = pair_loss(emb, inb, ScoreWeights(), 1.0)
    loss.backward()
    assert loss.item() > 0 and 0 <= acc <= 1 and emb.grad is not None


def test_train_config_validation_and_round_trip():
    cfg = TrainConfig(preset="tiny", pair_mode="in_batch", score_weights=ScoreWeights(0.5, 0.25, 0.25))
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="pair_mode='pairs'"):
        TrainConfig(pair_mode="pairs")
    with pytest.raises(ConfigError, match="lr=-1"):
        TrainConfig(lr=-1)
    with pytest.raises(ConfigError, match="unknown model preset"):
        TrainConfig(preset="huge")
    with pytest.raises(ConfigError, match="save_computations"):
        TrainConfig(save_computations=True)  # default pair_mode is in_batch
    paper = TrainConfig.paper_faithful(epochs=3)
    assert paper.pair_mode == "paper" and not paper.augment_anchors and paper.epochs == 3
    assert TrainConfig().lr == 1e-3 and TrainConfig().weight_decay == 5e-4 and TrainConfig().margin == 1.0


# ---- the loop ------------------------------------------------------------------------------


def test_tiny_training_lowers_the_loss_and_writes_a_run(blobs, tmp_path):
    run = tmp_path / "run"
    res = train(tiny_cfg(epochs=4), blobs, run)
    h = res.history
    assert len(h) == res.epochs_completed == 4
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    assert min(r["val_loss"] for r in h) < h[0]["val_loss"] or res.best_epoch == 1
    for name in (
        "model.safetensors",
        "checkpoint.json",
        "history.json",
        "history.png",
        "last/model.safetensors",
        "last/state.safetensors",
        "last/state.json",
    ):
        assert (run / name).is_file(), name
    assert (run / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["format_version"] == 1 and meta["epoch"] == res.best_epoch
    assert meta["model"]["name"] == "tiny" and meta["train"]["epochs"] == 4
    assert len(meta["history"]) == 4 and "val_loose_acc@4" in meta["history"][0]
    emb = load_checkpoint(run, device="cpu")
    assert emb.sha256 == res.weights_sha256
    assert emb.manifest_info()["training"]["best_epoch"] == res.best_epoch
    assert not list(run.rglob("*.tmp"))


def test_training_is_deterministic_on_cpu(blobs, tmp_path):
    a = train(tiny_cfg(epochs=1), blobs, tmp_path / "a")
    b = train(tiny_cfg(epochs=1), blobs, tmp_path / "b")
    assert a.weights_sha256 == b.weights_sha256
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]


def test_resume_continues(blobs, tmp_path):
    run = tmp_path / "run"
    first = train(tiny_cfg(epochs=2), blobs, run)
    with pytest.raises(CheckpointError, match="already holds a training run"):
        train(tiny_cfg(epochs=2), blobs, run)
    with pytest.raises(CheckpointError, match="seed 0"):
        train(tiny_cfg(epochs=3, seed=1), blobs, run, resume=True)
    more = train(tiny_cfg(epochs=3), blobs, run, resume=True)
    assert more.resumed_from_epoch == 2 and more.epochs_completed == 3
    assert more.history[:2] == first.history and more.history[2]["epoch"] == 3
    # the resumed run matches one trained for 3 epochs straight (weights and RNG were restored)
    straight = train(tiny_cfg(epochs=3), blobs, tmp_path / "straight")
    assert more.history[2]["train_loss"] == pytest.approx(straight.history[2]["train_loss"], rel=1e-5)
    assert json.loads((run / "history.json").read_text())[-1]["epoch"] == 3
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(tiny_cfg(), blobs, tmp_path / "fresh", resume=True)


def test_resume_with_another_model_fails_clearly(blobs, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg(epochs=1), blobs, run)
    other = tiny_cfg(epochs=2, preset="tiny", model=preset("tiny", out_dim=8))
    with pytest.raises(CheckpointError, match="out 16.*out 8"):
        train(other, blobs, run, resume=True)


def test_other_modes_train(blobs, tmp_path):
    modes = (
        dict(pair_mode="paper", augment_anchors=False),
        dict(pair_mode="paper", save_computations=True),
        dict(lr_schedule="cosine", warmup_epochs=0.5),
    )
    for i, kw in enumerate(modes):
        res = train(tiny_cfg(epochs=1, **kw), blobs, tmp_path / f"r{i}")
        assert math.isfinite(res.history[0]["train_loss"])


def test_streaming_when_the_set_does_not_fit(blobs, tmp_path):
    res = train(tiny_cfg(epochs=1, preload_max_bytes=0), blobs, tmp_path / "s")
    assert res.epochs_completed == 1


def test_time_budget_stops_between_epochs(blobs, tmp_path):
    res = train(tiny_cfg(epochs=50, time_budget_s=0.01), blobs, tmp_path / "t")
    assert res.stopped == "time_budget" and res.epochs_completed == 1


def test_read_rows_dense_and_sparse_agree(tmp_path):
    from galaxy_retrieval.train.data import read_rows

    cat = HDF5Catalog(write_blob_catalog(tmp_path / "b.h5", n=200, size=8))
    for rows in (np.arange(3, 150, 2), np.array([5, 190]), np.array([], dtype=np.int64)):
        got = list(read_rows(cat, rows[::-1], chunk=16))  # any order in, increasing order out
        r = np.concatenate([g for g, _ in got]) if got else np.zeros(0, np.int64)
        assert np.array_equal(r, np.sort(rows))
        if len(rows):
            ims = np.concatenate([i for _, i in got])
            assert np.array_equal(ims, cat.get_batch(np.sort(rows)).images)


def test_bad_catalogs(tmp_path):
    with pytest.raises(CatalogError, match="no such file"):
        HDF5Catalog(tmp_path / "missing.h5")
    two = HDF5Catalog(write_blob_catalog(tmp_path / "two.h5", n=2))
    with pytest.raises(CatalogError, match="at least 3"):
        train(tiny_cfg(), two, tmp_path / "run")
    with h5py.File(tmp_path / "noimages.h5", "w") as f:
        f["ans"] = np.zeros(4)
    with pytest.raises(CatalogError, match="no 'images'"):
        HDF5Catalog(tmp_path / "noimages.h5")


# ---- learned score weights (§3.6 future work) ---------------------------------------------


def test_score_with_weight_tensor_matches_and_reaches_the_logits():
    from galaxy_retrieval.score import weight_logits, weights_from_logits

    rng = np.random.default_rng(0)
    a, b = torch.tensor(rng.normal(size=(5, 7))), torch.tensor(rng.normal(size=(5, 7)))
    w = ScoreWeights(2.0, 1.0, 1.0)  # not normalised: the logits start at the normalised weights
    theta = torch.nn.Parameter(weight_logits(w))
    assert weights_from_logits(theta).as_tuple() == pytest.approx((0.5, 0.25, 0.25))
    got = score_torch(a, b, torch.softmax(theta, 0))
    torch.testing.assert_close(got, score_torch(a, b, w.normalized()).to(got.dtype))
    got.sum().backward()
    assert theta.grad is not None and torch.all(theta.grad != 0)
    with pytest.raises(ConfigError, match="every weight must be > 0"):
        TrainConfig(learn_score_weights=True, score_weights=ScoreWeights(1.0, 0.0, 1.0))


def test_learned_score_weights_train_save_resume_and_reach_evaluation_and_index(blobs, tmp_path):
    from galaxy_retrieval.evaluate import evaluate
    from galaxy_retrieval.index.build import BuildConfig, build_index
    from galaxy_retrieval.index.candidates import IndexSpec

    cfg = tiny_cfg(epochs=1, learn_score_weights=True, lr=3e-3)
    run = tmp_path / "run"
    res = train(cfg, blobs, run)
    start = (1 / 3, 1 / 3, 1 / 3)
    for row in res.history:
        w = (row["w_cos"], row["w_l2"], row["w_l3"])
        assert sum(w) == pytest.approx(1.0) and min(w) > 0
        assert w != pytest.approx(start, abs=1e-4)  # they moved
    best = res.history[res.best_epoch - 1]
    assert res.score_weights == {"cos": best["w_cos"], "l2": best["w_l2"], "l3": best["w_l3"]}
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["score_weights"] == res.score_weights
    assert meta["train"]["score_weights"] == ScoreWeights().to_dict() and meta["train"]["learn_score_weights"]
    learned = ScoreWeights.from_dict(res.score_weights)
    assert load_checkpoint(run, device="cpu").score_weights == learned
    # the weights file alone carries them too
    alone = tmp_path / "alone" / "weights.safetensors"
    alone.parent.mkdir()
    alone.write_bytes((run / "model.safetensors").read_bytes())
    assert load_checkpoint(alone, device="cpu").score_weights == learned
    # downstream defaults: evaluation and the index manifest (hence the searcher)
    rep = evaluate(run, blobs, ks=(1,), batch_sizes=(4,), baselines=False)
    assert rep.score_weights == res.score_weights
    bres = build_index(run, blobs, tmp_path / "index", BuildConfig(index=IndexSpec(kind="flat")))
    assert bres.manifest.score_weights == res.score_weights
    # resume restores θ (and its Adam moments): epoch 2 equals a straight 2-epoch run's
    with pytest.raises(CheckpointError, match="learn_score_weights=True"):
        train(tiny_cfg(epochs=2), blobs, run, resume=True)
    more = train(cfg.replace(epochs=2), blobs, run, resume=True)
    straight = train(cfg.replace(epochs=2), blobs, tmp_path / "straight")
    assert more.history[:1] == res.history
    for key in ("w_cos", "w_l2", "w_l3", "train_loss"):
        assert more.history[1][key] == pytest.approx(straight.history[1][key], rel=1e-5), key


def test_fixed_score_weights_keep_the_checkpoint_format(blobs, tmp_path):
    cfg = tiny_cfg(epochs=1, score_weights=ScoreWeights(0.5, 0.25, 0.25))
    res = train(cfg, blobs, tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert "score_weights" not in meta and "w_cos" not in res.history[0] and res.score_weights is None
    # an old checkpoint (no meta["score_weights"]): its training config's weights, else the default
    assert load_checkpoint(tmp_path / "run", device="cpu").score_weights == ScoreWeights(0.5, 0.25, 0.25)
    from galaxy_retrieval.model import Embedder, build_model

    assert Embedder.from_model(build_model(preset("tiny")), device="cpu").score_weights == ScoreWeights()


# ---- source suppression (§5 future work) ---------------------------------------------------


def star_image(star: bool, size: int = 64, seed: int = 0) -> np.ndarray:
    """A round galaxy in the centre on noisy sky, optionally with a bright star off-centre."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2
    f = 120 * np.exp(-((yy - c) ** 2 + (xx - c) ** 2) / (2 * (size / 13) ** 2))
    if star:
        f = f + 250 * np.exp(-((yy - size * 0.19) ** 2 + (xx - size * 0.78) ** 2) / (2 * 1.5**2))
    im = f[..., None] * np.array([1.0, 0.9, 0.8]) + rng.normal(20, 3, (size, size, 3))
    return np.clip(im, 0, 255).astype(np.uint8)


def test_suppress_config_round_trips_in_the_train_config():
    from galaxy_retrieval.suppress import SuppressConfig

    cfg = TrainConfig(
        preset="tiny", suppress_sources=SuppressConfig(thresh=2.0, keep_radius=0.2), learn_score_weights=True
    )
    back = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.suppress_sources.thresh == 2.0
    assert TrainConfig.from_dict(TrainConfig(preset="tiny").to_dict()).suppress_sources is None
    old = TrainConfig(preset="tiny").to_dict()
    del old["suppress_sources"], old["learn_score_weights"]  # a checkpoint from before these options
    assert TrainConfig.from_dict(old) == TrainConfig(preset="tiny")
    with pytest.raises(ConfigError, match="suppress_sources must be a SuppressConfig"):
        TrainConfig(suppress_sources={"thresh": 2.0})


def test_embedder_applies_its_checkpoints_suppression(tmp_path):
    from galaxy_retrieval.model import FORMAT_VERSION, build_model, save_weights
    from galaxy_retrieval.suppress import SuppressConfig

    run = tmp_path / "run"
    save_weights(run / "model.safetensors", build_model(preset("tiny"), seed=0))
    tcfg = TrainConfig(preset="tiny", suppress_sources=SuppressConfig())
    # as training writes it: the suppression is part of the model config's preprocessing
    meta = {"format_version": FORMAT_VERSION, "model": tcfg.model_config().to_dict(), "train": tcfg.to_dict()}
    (run / "checkpoint.json").write_text(json.dumps(meta))
    on = load_checkpoint(run, device="cpu")
    off = load_checkpoint(run, device="cpu", suppress=None)
    assert on.suppress == SuppressConfig() and off.suppress is None
    assert on.manifest_info()["suppress_sources"] == SuppressConfig().to_dict()
    ims = np.stack([star_image(True), star_image(False)])
    a, b = on.embed(ims), off.embed(ims)
    assert np.abs(a[0] - b[0]).max() > 1e-3  # the star is gone
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6, atol=1e-6)  # nothing to suppress
    np.testing.assert_allclose(on.embed(list(ims)), a, rtol=1e-6, atol=1e-6)
    assert "suppress" not in repr(off) and "suppress=on" in repr(on)


def test_training_images_are_suppressed_before_the_resize(tmp_path):
    from galaxy_retrieval.model import Preprocessing
    from galaxy_retrieval.suppress import SuppressConfig
    from galaxy_retrieval.train.data import ImageStore

    path = tmp_path / "stars.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.stack([star_image(i % 2 == 0, seed=i) for i in range(6)])
    cat = HDF5Catalog(path)
    rows = np.arange(6)
    plain = ImageStore(cat, rows, Preprocessing(image_size=32))
    sup = ImageStore(cat, rows, Preprocessing(image_size=32, suppress=SuppressConfig()))
    streamed = ImageStore(
        cat, rows, Preprocessing(image_size=32, suppress=SuppressConfig()), preload_max_bytes=0
    )
    diff = (plain.get(rows).int() - sup.get(rows).int()).abs().amax(dim=(1, 2, 3))
    assert all(diff[0::2] > 50) and all(diff[1::2] == 0)  # stars removed, plain galaxies untouched
    assert torch.equal(streamed.get(rows), sup.get(rows))


def test_info_nce_loss_by_hand():
    import math

    import torch

    from galaxy_retrieval.train.losses import info_nce_loss

    s = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
    t = 0.5
    # rows: −log softmax(s/τ)[i, i]; columns the same on sᵀ
    row = (
        -(
            math.log(math.exp(1.8) / (math.exp(1.8) + math.exp(0.2)))
            + math.log(math.exp(1.4) / (math.exp(0.6) + math.exp(1.4)))
        )
        / 2
    )
    col = (
        -(
            math.log(math.exp(1.8) / (math.exp(1.8) + math.exp(0.6)))
            + math.log(math.exp(1.4) / (math.exp(0.2) + math.exp(1.4)))
        )
        / 2
    )
    assert float(info_nce_loss(s, t)) == pytest.approx((row + col) / 2, rel=1e-6)


def test_info_nce_needs_in_batch_pairs():
    with pytest.raises(ConfigError, match="in_batch"):
        TrainConfig(loss="info_nce", pair_mode="paper")
    with pytest.raises(ConfigError, match="temperature"):
        TrainConfig(loss="info_nce", temperature=0.0)
    with pytest.raises(ConfigError, match="choices"):
        TrainConfig(loss="triplet")


def test_info_nce_training_lowers_its_loss(blobs, tmp_path):
    res = train(tiny_cfg(epochs=3, loss="info_nce", temperature=0.2), blobs, tmp_path / "run")
    h = res.history
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    # val_loss is the InfoNCE of the validation pairs: positive, and after training below
    # log(batch), its value when the positive is no better than chance
    assert all(r["val_loss"] > 0 for r in h)
    assert h[-1]["val_loss"] < math.log(16)
    meta = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert meta["train"]["loss"] == "info_nce" and meta["train"]["temperature"] == 0.2


def test_loss_defaults_follow_the_pairing_and_old_runs_read_as_contrastive():
    assert TrainConfig().loss == "info_nce"
    assert TrainConfig(pair_mode="paper").loss == "contrastive"
    assert TrainConfig.paper_faithful().loss == "contrastive"
    d = TrainConfig(loss="contrastive").to_dict()
    assert TrainConfig.from_dict(d).loss == "contrastive"
    del d["loss"], d["temperature"]  # a checkpoint written before the option existed
    assert TrainConfig.from_dict(d).loss == "contrastive"
    assert TrainConfig.from_dict(TrainConfig().to_dict()).loss == "info_nce"


def test_galaxy_positive_transforms_each_do_what_they_say():
    import math

    from galaxy_retrieval.train.augment import GALAXY_AUGMENT, AugmentConfig, PairAugmenter

    g = torch.Generator().manual_seed(0)
    x = torch.zeros(8, 3, 32, 32)
    x[:, :, 12:20, 12:20] = 0.5  # a grey square in the middle

    def only(name, **kw):
        return PairAugmenter(AugmentConfig(num_positive=1, positive_set=(name,), **kw)).positive(x, g)

    # colour: each band scaled by its own gain within [1/1.25, 1.25]
    c = only("colour", pos_colour=0.25)[:, :, 16, 16] / 0.5
    assert c.min() >= 1 / 1.25 - 1e-5 and c.max() <= 1.25 + 1e-5 and (c.std(dim=1) > 0).all()
    # gamma: 0.5 ** γ with γ in [1/1.3, 1.3], the same in every band, black stays black
    gm = only("gamma", pos_gamma=0.3)
    gam = torch.log(gm[:, 0, 16, 16]) / math.log(0.5)
    assert gam.min() >= 1 / 1.3 - 1e-4 and gam.max() <= 1.3 + 1e-4 and gm[:, :, 0, 0].abs().max() < 0.02
    # shift: the square moves but keeps its size
    s = only("shift", pos_shift=0.25)
    cy = (s[:, 0].sum(dim=2) * torch.arange(32)).sum(dim=1) / s[:, 0].sum(dim=(1, 2))
    assert (cy - 15.5).abs().max() > 0.5 and (cy - 15.5).abs().max() <= 0.25 * 16 + 0.5
    # blur: the flux stays, the edge softens
    b = only("blur", pos_blur=(0.03, 0.05))
    assert torch.allclose(b.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)), rtol=1e-3)
    assert (b[:, 0, 16, 11] > 0.01).all()
    # the galaxy recipe applies all ten, deterministically for a seed
    a1 = PairAugmenter(GALAXY_AUGMENT).positive(x, torch.Generator().manual_seed(1))
    a2 = PairAugmenter(GALAXY_AUGMENT).positive(x, torch.Generator().manual_seed(1))
    assert torch.equal(a1, a2) and not torch.equal(a1, x)


def test_the_polar_backbone_trains_saves_and_is_rotation_invariant(blobs, tmp_path):
    """The rotation-invariant CNN (model/polar.py) goes through the same training, checkpoint
    and embedder paths as the ViT, and a loaded checkpoint gives the same vector for an
    image and its 90° rotations."""
    # framing off: a box measured on a rotated image may land a pixel away, which is not
    # what this test is about
    cfg = tiny_cfg(epochs=2, model=preset("polar", image_size=32, width=8, depth=3, out_dim=16), framing=None)
    res = train(cfg, blobs, tmp_path / "run")
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    emb = load_checkpoint(tmp_path / "run", device="cpu")
    assert emb.model_config.backbone == "polar" and emb.sha256 == res.weights_sha256
    ims = blobs.get_batch(np.arange(4)).images
    v = emb.embed(ims)
    for k in (1, 2, 3):
        np.testing.assert_allclose(emb.embed(np.rot90(ims, k, axes=(1, 2)).copy()), v, atol=1e-4)
    # a checkpoint of another backbone is a different model (not a silent mix-up)
    with pytest.raises(ConfigError, match="backbone"):
        preset("polar", backbone="resnet")


def test_mixed_precision_and_compile_settings_train_and_fp32_stays_reproducible(blobs, tmp_path):
    """bf16 autocast and torch.compile are speed settings: each trains, and float32 (the
    path of runs recorded before them) gives the same weights twice."""
    with pytest.raises(ConfigError, match="precision"):
        tiny_cfg(precision="fp16")
    with pytest.raises(ConfigError, match="compile"):
        tiny_cfg(compile="yes")
    a = train(tiny_cfg(epochs=1, precision="fp32", compile="off"), blobs, tmp_path / "a")
    b = train(tiny_cfg(epochs=1, precision="fp32", compile="off"), blobs, tmp_path / "b")
    assert a.weights_sha256 == b.weights_sha256
    c = train(tiny_cfg(epochs=2, precision="bf16", compile="off"), blobs, tmp_path / "c")
    assert c.history[-1]["train_loss"] < c.history[0]["train_loss"] and c.weights_sha256 != a.weights_sha256
    # a run recorded before the options existed reads back as float32, eager
    d = tiny_cfg().to_dict()
    del d["precision"], d["compile"]
    old = TrainConfig.from_dict(d)
    assert (old.precision, old.compile) == ("fp32", "off")


def test_descriptor_fusion_is_stored_in_the_weights_and_reaches_the_embedder(blobs, tmp_path):
    """With fusion_share the checkpoint's vectors are [network | polar Fourier descriptor],
    unit length, still rotation-invariant, and the statistics live in the weights file."""
    from galaxy_retrieval.model.checkpoint import read_weights
    from galaxy_retrieval.model.fusion import DescriptorFusion, fuse

    cfg = tiny_cfg(
        epochs=1,
        model=preset("polar", image_size=32, width=8, depth=3, out_dim=16),
        framing=None,
        fusion_share=0.5,
        fusion_components=None,
    )
    train(cfg, blobs, tmp_path / "run")
    _, file_meta = read_weights(tmp_path / "run" / "model.safetensors")
    f = DescriptorFusion.from_dict(file_meta["fusion"])
    assert f.share == 0.5 and f.dim == 432
    emb = load_checkpoint(tmp_path / "run", device="cpu")
    plain = load_checkpoint(tmp_path / "run", device="cpu", fusion=None)
    assert emb.dim == 16 + 432 and plain.dim == 16
    ims = blobs.get_batch(np.arange(4)).images
    v = emb.embed(ims)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # the network's part is its own vector, normalised; the rest the standardised descriptor
    z = plain.embed(ims)
    np.testing.assert_allclose(v[:, :16], fuse(z, np.ones((4, 3)), 0.5)[:, :16], atol=1e-5)
    np.testing.assert_allclose(emb.embed(np.rot90(ims, 2, axes=(1, 2)).copy()), v, atol=1e-4)
    assert emb.manifest_info()["fusion"] == {"descriptor": "polar_fourier", "share": 0.5, "dim": 432}
    with pytest.raises(ConfigError, match="fusion_share"):
        tiny_cfg(fusion_share=1.0)


def test_init_fine_tunes_from_trained_weights_and_refuses_another_shape(blobs, tmp_path):
    first = train(tiny_cfg(epochs=3, precision="fp32"), blobs, tmp_path / "first")
    scratch = train(tiny_cfg(epochs=1, precision="fp32", seed=1), blobs, tmp_path / "scratch")
    tuned = train(
        tiny_cfg(epochs=1, precision="fp32", seed=1, init=str(tmp_path / "first")), blobs, tmp_path / "tuned"
    )
    # the same data and seed, a trained start: the first epoch starts where the other run ended
    assert tuned.history[0]["train_loss"] < scratch.history[0]["train_loss"]
    assert tuned.history[0]["train_loss"] < first.history[0]["train_loss"]
    with pytest.raises(CheckpointError, match="expects|preset"):
        train(
            tiny_cfg(epochs=1, model=preset("tiny", out_dim=8), init=str(tmp_path / "first")),
            blobs,
            tmp_path / "other",
        )
    assert not (tmp_path / "other").exists()
