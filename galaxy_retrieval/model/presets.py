"""Named models, timm-style: small functions of keyword overrides returning a :class:`ModelConfig`.

``paper``  the ViT of §3.3: 224² input, 16² patches, hidden 1024, 3 blocks, 4 heads,
           2048 outputs per patch — 18,060,288 parameters as the paper reports
           (see :func:`galaxy_retrieval.model.count_parameters`).
``small``  the same architecture at a size that trains in minutes on two CPU cores
           (64² input, 8² patches → 64 tokens); chosen by measurement on the synthetic
           demo catalog (benchmarks/results/train_embed_speed.json).
``polar``  the rotation-invariant CNN on a polar resampling (:mod:`galaxy_retrieval.model.polar`):
           64² input → 32 radii × 64 angles, widths 32-64-128-256, 256 outputs. The default.
``tiny``   a ViT for tests only.

``preset(name, **overrides)`` (:func:`~.registry.model_config`) routes each override to the
model, its preprocessing or its backbone's settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import ModelConfig, PolarSettings, ViTSettings
from .preprocess import Preprocessing
from .registry import list_models, model_config, override, register_model

__all__ = ["PRESETS", "preset", "preset_names"]


def _vit(name: str, image_size: int, out_dim: int, **settings: Any) -> ModelConfig:
    return ModelConfig(
        backbone="vit",
        settings=ViTSettings(**settings),
        out_dim=out_dim,
        preprocessing=Preprocessing(image_size=image_size),
        name=name,
    )


@register_model
def paper(**kw: Any) -> ModelConfig:
    return override(
        _vit("paper", 224, 2048, patch_size=16, hidden=1024, depth=3, num_heads=4, mlp_hidden=2048), **kw
    )


@register_model
def small(**kw: Any) -> ModelConfig:
    return override(
        _vit("small", 64, 256, patch_size=8, hidden=192, depth=3, num_heads=4, mlp_hidden=384), **kw
    )


@register_model
def polar(**kw: Any) -> ModelConfig:
    base = ModelConfig(
        backbone="polar",
        settings=PolarSettings(width=32, depth=4, cell_size=8),
        out_dim=256,
        preprocessing=Preprocessing(image_size=64),
        name="polar",
    )
    return override(base, **kw)


@register_model
def tiny(**kw: Any) -> ModelConfig:
    return override(_vit("tiny", 32, 16, patch_size=8, hidden=32, depth=1, num_heads=2, mlp_hidden=64), **kw)


#: name → preset function (the registry's presets; kept for ``PRESETS[name]`` callers)
PRESETS: dict[str, Callable[..., ModelConfig]] = {
    "paper": paper,
    "small": small,
    "polar": polar,
    "tiny": tiny,
}


def preset_names() -> list[str]:
    return list_models()


def preset(name: str, **overrides: Any) -> ModelConfig:
    """The named preset, with any field overridden (``preset("small", out_dim=128)``)."""
    return model_config(name, **overrides)
