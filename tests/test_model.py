"""The backbones (the GalaxIDNet ViT, the polar CNN), their config and registry, checkpoints and the embedder."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from galaxy_retrieval.errors import CheckpointError, ConfigError
from galaxy_retrieval.model import (
    Embedder,
    ModelConfig,
    ViTSettings,
    build_model,
    count_parameters,
    load_checkpoint,
    parameter_breakdown,
    preset,
    save_weights,
)
from galaxy_retrieval.model.checkpoint import FORMAT_VERSION, sha256_file
from galaxy_retrieval.model.pos_embed import sincos_position_table

TINY = preset("tiny")


def test_paper_preset_has_the_papers_parameter_count():
    model = build_model(preset("paper"), seed=0)
    assert count_parameters(model) == 18_060_288
    # the count is trainable parameters plus the fixed 196 × 1024 position table
    assert sum(p.numel() for p in model.parameters()) == 18_060_288 - 196 * 1024
    parts = parameter_breakdown(model)
    assert sum(parts.values()) == 18_060_288
    assert parts["patch_embed"] == 768 * 1024 + 1024
    assert parts["head"] == 1024 * 2048 + 2048
    assert parts["block0"] == 2 * 2 * 1024 + 3 * 4 * (256 * 256 + 256) + (
        1024 * 2048 + 2048 + 2048 * 1024 + 1024
    )


def test_shapes_features_and_embedding():
    model = build_model(TINY, seed=0)
    x = torch.randn(5, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (5, TINY.num_patches, TINY.out_dim)
    emb = model.embed(x)
    assert emb.shape == (5, TINY.out_dim)
    torch.testing.assert_close(emb, feats.mean(dim=1))
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        model.embed(torch.randn(2, 3, 40, 40))


def test_attention_runs_per_image():
    # the published code attended over the first image only; each image must be independent
    model = build_model(TINY, seed=0).eval()
    x = torch.randn(4, 3, 32, 32)
    together = model.embed(x)
    alone = torch.cat([model.embed(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_per_head_projections_equal_separate_linears():
    model = build_model(TINY, seed=0)
    attn = model.blocks[0].attn
    h, d = attn.num_heads, attn.head_dim
    lin = [[nn.Linear(d, d) for _ in range(h)] for _ in range(3)]
    for t in range(3):
        for i in range(h):
            lin[t][i].weight.data.copy_(attn.qkv_weight[t, i])
            lin[t][i].bias.data.copy_(attn.qkv_bias[t, i])
    x = torch.randn(2, 7, h * d)
    heads = []
    for i in range(h):
        xs = x[..., i * d : (i + 1) * d]
        q, k, v = (lin[t][i](xs) for t in range(3))
        a = torch.softmax(q @ k.transpose(1, 2) / d**0.5, dim=-1)
        heads.append(a @ v)
    torch.testing.assert_close(attn(x), torch.cat(heads, dim=-1), rtol=1e-5, atol=1e-5)


def test_position_table_is_fixed_buffer_unchanged_by_training():
    model = build_model(TINY, seed=0)
    names = {n for n, _ in model.named_parameters()}
    assert not any("pos" in n for n in names)
    assert "pos_table" not in model.state_dict()  # recomputed from the config on load
    before = model.pos_table.clone()
    torch.testing.assert_close(before, sincos_position_table(TINY.grid, TINY.settings.hidden))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.embed(torch.randn(3, 3, 32, 32)).pow(2).mean().backward()
    opt.step()
    assert not model.pos_table.requires_grad
    assert torch.equal(model.pos_table, before)


def test_same_seed_same_init_and_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = build_model(TINY, seed=7)
    after = torch.rand(1)
    b = build_model(TINY, seed=7)
    assert torch.equal(expected, after)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), n


def test_config_validation_names_the_bad_value():
    with pytest.raises(ConfigError, match="patch_size=7"):
        preset("tiny", image_size=32, patch_size=7)
    with pytest.raises(ConfigError, match="num_heads=5"):
        ViTSettings(hidden=192, num_heads=5)
    with pytest.raises(ConfigError, match="unknown model preset 'huge'"):
        preset("huge")
    assert ModelConfig.from_dict(TINY.to_dict()) == TINY


def test_embed_list_of_different_sizes():
    emb = Embedder.from_model(build_model(TINY, seed=0), device="cpu")
    rng = np.random.default_rng(0)
    ims = [
        rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((32, 32), (64, 48), (17, 17), (100, 100))
    ]
    out = emb.embed(ims, batch_size=3)
    assert out.shape == (4, TINY.out_dim) and out.dtype == np.float32
    # one image alone gives the same vector as in a mixed list
    np.testing.assert_allclose(emb.embed([ims[1]]), out[1:2], rtol=1e-5, atol=1e-5)
    # a uint8 batch array equals the list of the same images
    same = np.stack([ims[0]] * 3)
    np.testing.assert_allclose(emb.embed(same), emb.embed(list(same)), rtol=1e-6, atol=1e-6)
    # grayscale images are accepted as catalog readers accept them
    assert emb.embed([rng.integers(0, 256, (32, 32), dtype=np.uint8)]).shape == (1, TINY.out_dim)
    assert emb.dim == TINY.out_dim and len(emb.sha256) == 64


def _write_run(tmp_path, cfg=TINY, seed=0):
    run = tmp_path / "run"
    model = build_model(cfg, seed=seed)
    sha = save_weights(run / "model.safetensors", model)
    (run / "checkpoint.json").write_text(
        json.dumps({"format_version": FORMAT_VERSION, "model": cfg.to_dict()})
    )
    return run, model, sha


def test_checkpoint_round_trip(tmp_path):
    run, model, sha = _write_run(tmp_path)
    emb = load_checkpoint(run, device="cpu")
    assert emb.sha256 == sha == sha256_file(run / "model.safetensors")
    assert emb.model_config == TINY
    x = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    ref = Embedder.from_model(model, device="cpu").embed(x)
    np.testing.assert_allclose(emb.embed(x), ref, rtol=1e-6, atol=1e-6)
    # the weights file alone is self-describing
    alone = load_checkpoint(run / "model.safetensors", device="cpu")
    assert alone.model_config == TINY
    info = emb.manifest_info()
    assert info["sha256"] == sha and info["preset"] == "tiny" and info["config"]["out_dim"] == TINY.out_dim


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_checkpoint(tmp_path / "empty")


def test_corrupt_checkpoint(tmp_path):
    run, _, _ = _write_run(tmp_path)
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors.*corrupt"):
        load_checkpoint(run)
    (run / "model.safetensors").write_bytes(b"\x00not safetensors at all")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(run)


def test_corrupt_metadata(tmp_path):
    run, _, _ = _write_run(tmp_path)
    (run / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="checkpoint.json"):
        load_checkpoint(run)
    (run / "checkpoint.json").write_text(json.dumps({"format_version": 99, "model": TINY.to_dict()}))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(run)


def test_wrong_preset_or_shape(tmp_path):
    run, _, _ = _write_run(tmp_path)
    with pytest.raises(CheckpointError, match="preset 'paper' was asked"):
        load_checkpoint(run, expect="paper")
    with pytest.raises(CheckpointError, match="hidden 32"):
        load_checkpoint(run, expect=preset("small"))
    # metadata that claims another shape than the weights hold
    other = dataclasses.replace(TINY, out_dim=24)
    (run / "checkpoint.json").write_text(
        json.dumps({"format_version": FORMAT_VERSION, "model": other.to_dict()})
    )
    with pytest.raises(
        CheckpointError, match=r"'head.weight' has shape \(16, 32\) but the model config needs \(24, 32\)"
    ):
        load_checkpoint(run)


def test_fixed_framing_keeps_the_central_fraction_before_resizing():
    from galaxy_retrieval.errors import ConfigError
    from galaxy_retrieval.framing import Framing
    from galaxy_retrieval.model.compat import model_config_from_dict
    from galaxy_retrieval.model.preprocess import images_to_float, to_model_input

    im = np.zeros((1, 300, 300, 3), np.uint8)
    im[0, 120:180, 120:180] = 255  # a bright 60-px square in the middle
    im[0, :20, :20] = 255  # and a corner the crop must drop
    fixed = Framing.parse("fixed:0.4")
    full = images_to_float(im, 30)
    crop = images_to_float(im, 30, framing=fixed)  # central 120 px → 30 px: 4 px per output pixel
    assert full[0, 0, 0, 0] > 0.5 and crop[0, 0, 0, 0] == 0.0
    # the square covers the middle half of the cropped view
    assert crop[0, 0, 8:22, 8:22].min() > 0.99 and crop[0, 0, :6].max() < 1e-6
    cfg = preset("tiny", mlp_hidden=32, framing=fixed)
    assert torch.equal(
        to_model_input(im, cfg)[:, :, :, :], (images_to_float(im, 32, framing=fixed) - 0.5) / 0.5
    )
    # checkpoints from before framing: no field means the whole frame, "crop" a fixed fraction
    legacy = {
        "image_size": 32,
        "patch_size": 8,
        "in_chans": 3,
        "hidden": 32,
        "depth": 1,
        "num_heads": 2,
        "mlp_hidden": 32,
        "out_dim": 16,
        "norm_mean": [0.5] * 3,
        "norm_std": [0.5] * 3,
        "name": "tiny-custom",
    }
    assert model_config_from_dict(legacy).framing == Framing()
    assert model_config_from_dict({**legacy, "crop": 0.4}).framing == fixed
    assert model_config_from_dict({**legacy, "crop": 0.4}) == cfg
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="fraction"):
        preset("tiny", framing="fixed:0.0")


# ---- the registry, the settings of each backbone, the Backbone protocol ---------------------


def test_create_model_builds_presets_and_configs_by_name():
    from galaxy_retrieval.model import (
        Backbone,
        GalaxIDNetViT,
        PolarCNN,
        create_model,
        list_models,
        model_config,
    )

    assert list_models()[:4] == ["paper", "small", "polar", "tiny"]
    polar = create_model("polar", image_size=32, width=8, depth=2, out_dim=16, seed=0)
    assert isinstance(polar, PolarCNN) and isinstance(polar, Backbone) and polar.config.name == "polar-custom"
    vit = create_model(model_config("tiny"), seed=0)
    assert isinstance(vit, GalaxIDNetViT) and isinstance(vit, Backbone) and vit.config == TINY
    # the same seed, the same weights, whichever way the model is named
    again = create_model("tiny", seed=0)
    assert all(torch.equal(a, b) for a, b in zip(vit.state_dict().values(), again.state_dict().values()))
    # each override goes where it belongs: the model, its preprocessing, its backbone's settings
    cfg = model_config("polar", out_dim=64, image_size=48, framing="auto", width=16)
    assert (cfg.out_dim, cfg.image_size, cfg.framing.mode, cfg.settings.width) == (64, 48, "auto", 16)
    with pytest.raises(ConfigError, match="no field num_heads for the polar backbone"):
        model_config("polar", num_heads=4)  # a ViT setting the CNN never reads
    with pytest.raises(ConfigError, match="backbone='resnet'"):
        model_config("polar", backbone="resnet")
    # another backbone starts from its own default settings
    assert model_config("polar", backbone="vit").settings == ViTSettings()


def test_each_backbone_validates_only_what_it_reads():
    from galaxy_retrieval.model import PolarSettings, model_config

    # the polar CNN has no position table: any width is fine (the ViT's hidden must be a multiple of 4)
    assert model_config("polar", width=6).settings == PolarSettings(width=6, depth=4, cell_size=8)
    with pytest.raises(ConfigError, match="multiple of 4"):
        ViTSettings(hidden=18, num_heads=3)
    with pytest.raises(ConfigError, match="cell_size=5"):
        model_config("polar", cell_size=5)
    with pytest.raises(ConfigError, match="takes ViTSettings"):
        ModelConfig(backbone="vit", settings=PolarSettings())
    with pytest.raises(ConfigError, match="width=0"):
        PolarSettings(width=0)


def test_count_parameters_works_for_every_backbone():
    from galaxy_retrieval.model import create_model

    polar = create_model("polar", seed=0)
    n = sum(p.numel() for p in polar.parameters())
    assert count_parameters(polar) == n == sum(parameter_breakdown(polar).values())
    vit = create_model("tiny", seed=0)
    assert (
        count_parameters(vit)
        == sum(p.numel() for p in vit.parameters()) + TINY.num_patches * TINY.settings.hidden
    )


def test_preprocessing_is_one_pipeline_stored_once_in_the_model_config():
    from galaxy_retrieval.framing import Framing
    from galaxy_retrieval.model import Preprocessing, images_to_float, suppress_images
    from galaxy_retrieval.suppress import SuppressConfig
    from galaxy_retrieval.train import TrainConfig

    pre = Preprocessing(suppress=SuppressConfig(), framing="fixed:0.5", image_size=32)
    cfg = preset("tiny", suppress=SuppressConfig(), framing="fixed:0.5")
    assert cfg.preprocessing == pre and cfg.name == "tiny-custom"
    assert cfg.suppress == SuppressConfig() and cfg.framing == Framing.parse("fixed:0.5")
    stored = json.loads(json.dumps(cfg.to_dict()))
    assert (
        stored["preprocessing"]["suppress"] == SuppressConfig().to_dict()
        and ModelConfig.from_dict(stored) == cfg
    )
    # the training config's framing and suppression become the trained model's preprocessing
    tcfg = TrainConfig(preset="tiny", framing="fixed:0.5", suppress_sources=SuppressConfig())
    assert tcfg.model_config() == dataclasses.replace(cfg, name="tiny")
    # suppress → frame → resize, then normalise: the steps, composed
    ims = np.random.default_rng(2).integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    x01 = images_to_float(suppress_images(ims, SuppressConfig()), 32, framing=Framing.parse("fixed:0.5"))
    assert torch.equal(pre.to_float(ims), x01)
    assert torch.equal(pre(ims), (x01 - 0.5) / 0.5)
    assert torch.equal(pre.to_uint8(ims), x01.mul(255).round().to(torch.uint8))


@pytest.mark.parametrize("pool", ["mean", "mean_max"])
def test_each_angle_pooling_of_the_polar_cnn_is_rotation_invariant(pool):
    """Both poolings over angle give one vector for an image and its 90° rotations, and the
    maximum is a feature of its own: the two poolings are different networks."""
    cfg = preset("polar", image_size=32, width=4, depth=2, out_dim=8, angle_pool=pool)
    model = build_model(cfg, seed=0).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        v = model.embed(x)
        for k in (1, 2, 3):
            torch.testing.assert_close(model.embed(torch.rot90(x, k, dims=(2, 3))), v, atol=1e-5, rtol=1e-4)
    n_in = model.head.in_features
    assert n_in == (2 if pool == "mean_max" else 1) * 8 * 8  # 8 channels × 8 radii after two stages


def test_the_angle_pooling_is_validated_and_old_polar_configs_read_as_the_mean():
    from galaxy_retrieval.model import PolarSettings
    from galaxy_retrieval.model.compat import model_config_from_dict

    with pytest.raises(ConfigError, match="angle_pool='max'"):
        PolarSettings(angle_pool="max")
    # a checkpoint written before the setting existed was trained with the mean
    old = model_config_from_dict(
        {"backbone": "polar", "image_size": 32, "hidden": 4, "depth": 2, "out_dim": 8}
    )
    assert old.settings.angle_pool == "mean"
    new = preset("polar", image_size=32, width=4, depth=2, out_dim=8, angle_pool="mean")
    stored = json.loads(json.dumps(new.to_dict()))
    del stored["settings"]["angle_pool"]
    assert ModelConfig.from_dict(stored).settings.angle_pool == "mean"
