"""The model shipped in the package: it loads, it is the default of build-index, it fine-tunes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.cli import app
from galaxy_retrieval.errors import CheckpointError
from galaxy_retrieval.model import load_checkpoint
from galaxy_retrieval.model.pretrained import PRETRAINED, install_pretrained, pretrained_info

from .conftest import write_galaxy10_h5

runner = CliRunner()


def test_the_shipped_model_loads_by_name_and_is_rotation_invariant() -> None:
    # float32: the architecture's invariance is exact up to float32 rounding; bf16 (auto on a
    # CPU with native bf16) rounds each activation to 8 bits, 1 ulp of which exceeds atol here
    emb = load_checkpoint("pretrained", device="cpu", precision="fp32")
    info = pretrained_info()
    # the network's 256 numbers beside the polar Fourier descriptor on 32 principal axes, as
    # gr train's recipe indexes (statistics from the pretraining images, label-free)
    assert emb.model_config.backbone == "polar" and emb.model_config.out_dim == 256
    assert emb.fusion is not None and emb.fusion.dim == 32 and emb.dim == 288
    assert (
        emb.sha256
        == info["weights_sha256"]
        == json.loads((PRETRAINED / "checkpoint.json").read_text())["weights_sha256"]
    )
    # provenance says what made it, and that gz2_spirals was held out of its training
    assert (
        "gz2_spirals" in info["held_out_catalogs"]
        and info["commit"]
        and info["command"].startswith("python pipelines/pretrain.py")
    )
    assert (PRETRAINED / "model.safetensors").stat().st_size < 10 << 20  # "a few MB"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96] / 96 - 0.5
    ims = np.stack(
        [
            np.clip(
                255
                * np.exp(-((xx / rng.uniform(0.05, 0.2)) ** 2 + (yy / 0.08) ** 2))[..., None]
                * np.array([1.0, 0.8, 0.6]),
                0,
                255,
            )
            for _ in range(3)
        ]
    ).astype(np.uint8)
    v = emb.embed(ims)
    assert np.isfinite(v).all() and v.shape == (3, 288)
    # framing off for an exact check: a box measured on a rotated image may move a pixel
    from galaxy_retrieval.framing import Framing

    emb.model.config = emb.model.config.with_preprocessing(framing=Framing(mode="none"))
    np.testing.assert_allclose(emb.embed(np.rot90(ims, 1, axes=(1, 2)).copy()), emb.embed(ims), atol=1e-3)
    half = load_checkpoint("pretrained", device="cpu", precision="bf16")
    half.model.config = emb.model.config
    a, b = half.embed(np.rot90(ims, 1, axes=(1, 2)).copy()), half.embed(ims)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.9999  # in bf16 too, to its rounding


def test_build_index_without_a_checkpoint_uses_the_shipped_model(tmp_path: Path) -> None:
    cat = write_galaxy10_h5(tmp_path / "g.h5", n=24, size=48)
    r = runner.invoke(app, ["build-index", "--catalog", str(cat), "--out", str(tmp_path / "idx")])
    assert r.exit_code == 0, r.output
    assert "shipped" in r.output and r.output.count("\n") >= 2
    m = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert m["model"]["sha256"] == pretrained_info()["weights_sha256"]
    r = runner.invoke(app, ["query", "--index", str(tmp_path / "idx"), "--object-id", "3", "--k", "5"])
    assert r.exit_code == 0, r.output
    from PIL import Image

    from galaxy_retrieval import GalaxySearcher

    img = open_catalog(cat)[5].image
    Image.fromarray(img).save(tmp_path / "q.png")
    r = runner.invoke(
        app, ["query", "--index", str(tmp_path / "idx"), "--image", str(tmp_path / "q.png"), "--k", "3"]
    )
    assert r.exit_code == 0, r.output
    hits = GalaxySearcher.open(tmp_path / "idx").query(image=img, k=3)
    assert len(hits) == 3 and hits[0].cos > 0.999  # the object's own image finds itself
    r = runner.invoke(app, ["info", "pretrained"])
    assert r.exit_code == 0 and "polar" in r.output and "sdss_gz2_6k" in r.output


def test_install_refuses_an_unfinished_run(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(CheckpointError, match="not a finished training run"):
        install_pretrained(tmp_path / "run", {}, dest=tmp_path / "dest")


def test_fine_tuning_from_the_shipped_model(tmp_path: Path) -> None:
    from galaxy_retrieval.train import TrainConfig, train

    cat = open_catalog(write_galaxy10_h5(tmp_path / "g.h5", n=40, size=48))
    res = train(
        TrainConfig(epochs=1, batch_size=16, init="pretrained", loose_batch_sizes=(4,), compile="off"),
        cat,
        tmp_path / "ft",
    )
    assert res.epochs_completed == 1
    assert load_checkpoint(tmp_path / "ft", device="cpu").sha256 != pretrained_info()["weights_sha256"]


def test_gr_train_starts_from_the_shipped_model_when_the_preset_matches() -> None:
    from galaxy_retrieval.model import preset
    from galaxy_retrieval.model.pretrained import resolve_init

    assert resolve_init("auto", preset("polar")) == "pretrained"
    assert resolve_init("auto", preset("polar", framing=None)) == "pretrained"  # framing is not shape
    assert (
        resolve_init("auto", preset("tiny")) is None
        and resolve_init("auto", preset("polar", out_dim=128)) is None
    )
    assert resolve_init("none", preset("polar")) is None and resolve_init(None, preset("polar")) is None
    assert resolve_init("runs/x", preset("tiny")) == "runs/x"
