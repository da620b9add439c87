"""Checkpoints written before the model config named its backbone still load and embed
identically.

``tests/old_checkpoints/`` holds a tiny polar run (auto framing, source suppression) and a
tiny ViT run (fixed framing) written by the code of commit a65732d, which stored one flat
``ViTConfig`` for both backbones and the suppression in the training config, with the
vectors they gave for fixed images then (``make.py`` is how).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from galaxy_retrieval.framing import Framing
from galaxy_retrieval.model import (
    ModelConfig,
    PolarSettings,
    ViTSettings,
    create_model,
    load_checkpoint,
    preset,
)
from galaxy_retrieval.model.pretrained import PRETRAINED, resolve_init
from galaxy_retrieval.suppress import SuppressConfig
from galaxy_retrieval.train import TrainConfig

OLD = Path(__file__).resolve().parent / "old_checkpoints"


@pytest.mark.parametrize("name", ["polar", "vit"])
@pytest.mark.parametrize("what", ["run directory", "weights file alone"])
def test_old_checkpoints_embed_as_they_did(name: str, what: str) -> None:
    path = OLD / name if what == "run directory" else OLD / name / "model.safetensors"
    # the vectors were made in float32; auto would embed the polar run in bf16 on a CPU with
    # native bf16 (tests/test_precision.py checks that path against float32)
    emb = load_checkpoint(path, device="cpu", precision="fp32")
    ims = np.load(OLD / "images.npy")
    np.testing.assert_allclose(emb.embed(ims), np.load(OLD / f"{name}_embeddings.npy"), rtol=1e-6, atol=1e-6)
    cfg = emb.model_config
    # the old flat fields land where they belong now
    if name == "polar":
        assert cfg.backbone == "polar" and cfg.settings == PolarSettings(width=8, depth=2, cell_size=8)
        assert cfg.framing == Framing(mode="auto") and cfg.suppress == SuppressConfig() == emb.suppress
    else:
        assert cfg.backbone == "vit" and cfg.settings == ViTSettings(
            patch_size=8, hidden=16, depth=1, num_heads=2, mlp_hidden=32
        )
        assert cfg.framing == Framing.parse("fixed:0.8") and cfg.suppress is None
    assert cfg.image_size == 32 and cfg.out_dim == 16
    # what the index manifest records of it is today's form, which reads back the same
    assert ModelConfig.from_dict(emb.manifest_info()["config"]) == cfg


def test_old_training_configs_read_back_and_old_checkpoints_are_the_same_architecture() -> None:
    meta = json.loads((OLD / "polar" / "checkpoint.json").read_text())
    tcfg = TrainConfig.from_dict(meta["train"])
    assert tcfg.model == preset("polar", image_size=32, width=8, depth=2, out_dim=16)
    assert tcfg.suppress_sources == SuppressConfig()
    # the model it trains is the model the checkpoint holds (preprocessing included)
    assert tcfg.model_config() == load_checkpoint(OLD / "polar", device="cpu").model_config
    # a run of today's config can start from the old weights (the same architecture)
    old = load_checkpoint(OLD / "polar", device="cpu").model.state_dict()
    create_model(tcfg.model_config()).load_state_dict(old)


def test_the_shipped_model_keeps_its_stored_form_and_loads() -> None:
    meta = json.loads((PRETRAINED / "checkpoint.json").read_text())
    # today's form (the flat form of older checkpoints is read through model.compat, above)
    assert "settings" in meta["model"]
    emb = load_checkpoint("pretrained", device="cpu")
    assert emb.model_config.settings == PolarSettings(width=32, depth=4, cell_size=8)
    assert emb.model_config.architecture_key() == preset("polar").architecture_key()
    assert resolve_init("auto", preset("polar")) == "pretrained"
