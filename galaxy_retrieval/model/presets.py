"""Named model sizes, timm-style: small functions returning a :class:`ViTConfig`.

``paper``  the configuration of §3.3: 224² input, 16² patches, hidden 1024, 3 blocks,
           4 heads, 2048 outputs per patch — 18,060,288 parameters as the paper reports
           (see :func:`galaxy_retrieval.model.vit.count_parameters`).
``small``  the same architecture at a size that trains in minutes on two CPU cores
           (64² input, 8² patches → 64 tokens); chosen by measurement on the synthetic
           demo catalog (benchmarks/results/train_embed_speed.json).
``polar``  the rotation-invariant CNN on a polar resampling (:mod:`galaxy_retrieval.model.polar`):
           64² input → 32 radii × 64 angles, widths 32-64-128-256, 256 outputs.
``tiny``   for tests only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from ..errors import ConfigError
from .config import ViTConfig

__all__ = ["PRESETS", "preset", "preset_names"]


def _paper(**kw: Any) -> ViTConfig:
    return ViTConfig(**{**dict(image_size=224, patch_size=16, hidden=1024, depth=3, num_heads=4,
                               mlp_hidden=2048, out_dim=2048, name="paper"), **kw})


def _small(**kw: Any) -> ViTConfig:
    return ViTConfig(**{**dict(image_size=64, patch_size=8, hidden=192, depth=3, num_heads=4,
                               mlp_hidden=384, out_dim=256, name="small"), **kw})


def _polar(**kw: Any) -> ViTConfig:
    return ViTConfig(**{**dict(image_size=64, patch_size=8, hidden=32, depth=4, num_heads=4,
                               mlp_hidden=64, out_dim=256, name="polar", backbone="polar"), **kw})


def _tiny(**kw: Any) -> ViTConfig:
    return ViTConfig(**{**dict(image_size=32, patch_size=8, hidden=32, depth=1, num_heads=2,
                               mlp_hidden=64, out_dim=16, name="tiny"), **kw})


PRESETS: dict[str, Callable[..., ViTConfig]] = {"paper": _paper, "small": _small, "polar": _polar, "tiny": _tiny}


def preset_names() -> list[str]:
    return list(PRESETS)


def preset(name: str, **overrides: Any) -> ViTConfig:
    """The named preset, with any field overridden (``preset("small", out_dim=128)``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; choices: {', '.join(PRESETS)}")
    cfg = PRESETS[name](**overrides)
    if "name" not in overrides and cfg.shape_key() != PRESETS[name]().shape_key():
        # a modified preset is no longer that preset (checkpoints record the name)
        cfg = dataclasses.replace(cfg, name=f"{name}-custom")
    return cfg
