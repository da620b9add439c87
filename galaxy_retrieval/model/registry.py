"""Models by name, as timm has them: backbones and presets register themselves here.

    from galaxy_retrieval.model import create_model, model_config
    model = create_model("polar")                         # the default backbone, fresh weights
    model = create_model("small", out_dim=128, seed=0)    # a preset with an override
    cfg = model_config("tiny", image_size=64)             # the config alone
    model = create_model(cfg)                             # a config (a checkpoint's) → its model

A backbone is a class taking a :class:`~.config.ModelConfig` (``@register_backbone("vit")``,
with its settings class); a preset is a function of keyword overrides returning a
:class:`~.config.ModelConfig` (``@register_model``, named after the function). The built-in
ones are registered when :mod:`galaxy_retrieval.model` is imported (:mod:`.vit`,
:mod:`.polar`, :mod:`.presets`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from ..errors import ConfigError
from .backbone import Backbone
from .config import BACKBONE_SETTINGS, ModelConfig
from .preprocess import Preprocessing

__all__ = [
    "register_backbone",
    "register_model",
    "create_model",
    "model_config",
    "override",
    "list_models",
    "list_backbones",
]

T = TypeVar("T")
_BACKBONES: dict[str, Callable[[ModelConfig], Backbone]] = {}
_PRESETS: dict[str, Callable[..., ModelConfig]] = {}


def register_backbone(name: str, settings: type | None = None) -> Callable[[T], T]:
    """Class decorator: the backbone ``name`` is built by this class from a ModelConfig whose
    ``settings`` are of class ``settings`` (needed for a backbone that is not built in)."""

    def add(cls: T) -> T:
        if settings is not None:
            BACKBONE_SETTINGS[name] = settings
        if name not in BACKBONE_SETTINGS:
            raise ConfigError(
                f"backbone {name!r} has no settings class; give register_backbone(name, settings=…)"
            )
        _BACKBONES[name] = cls  # type: ignore[assignment]
        return cls

    return add


def register_model(fn: Callable[..., ModelConfig]) -> Callable[..., ModelConfig]:
    """Function decorator: a preset named after the function (a leading ``_`` dropped)."""
    _PRESETS[fn.__name__.lstrip("_")] = fn
    return fn


def list_models() -> list[str]:
    """The preset names, in registration order."""
    return list(_PRESETS)


def list_backbones() -> list[str]:
    return list(_BACKBONES)


def model_config(name: str, **overrides: Any) -> ModelConfig:
    """The preset ``name`` with flat overrides, each going where it belongs: a ModelConfig
    field (``out_dim``, ``backbone``…), a preprocessing one (``image_size``, ``framing``,
    ``suppress``, ``norm_mean``…) or one of the backbone's settings (``hidden``, ``width``…).
    A preset changed in its shape or preprocessing is named ``NAME-custom``."""
    if name not in _PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; choices: {', '.join(_PRESETS)}")
    base = _PRESETS[name]()
    cfg = _PRESETS[name](**overrides)
    if "name" not in overrides and cfg.shape_key() != base.shape_key():
        # a modified preset is no longer that preset (checkpoints record the name)
        cfg = dataclasses.replace(cfg, name=f"{name}-custom")
    return cfg


def override(cfg: ModelConfig, **overrides: Any) -> ModelConfig:
    """``cfg`` with flat overrides, each where it belongs (see :func:`model_config`)."""
    top = {f.name for f in dataclasses.fields(ModelConfig)}
    pre_names = {f.name for f in dataclasses.fields(Preprocessing)}
    ov = dict(overrides)
    changes = {k: ov.pop(k) for k in list(ov) if k in top}
    pre = {k: ov.pop(k) for k in list(ov) if k in pre_names}
    backbone = changes.get("backbone", cfg.backbone)
    if backbone not in BACKBONE_SETTINGS:
        raise ConfigError(f"model config backbone={backbone!r}; choices: {', '.join(BACKBONE_SETTINGS)}")
    kind = BACKBONE_SETTINGS[backbone]
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(ov) - known)
    if unknown:
        raise ConfigError(
            f"model config has no field {', '.join(unknown)} for the {backbone} backbone; known: "
            f"{', '.join(sorted(top | pre_names | known))}"
        )
    if "settings" not in changes:
        # another backbone starts from its own defaults: the preset's settings are not its kind
        base = cfg.settings if isinstance(cfg.settings, kind) else kind()
        changes["settings"] = dataclasses.replace(base, **ov)
    if pre:
        changes["preprocessing"] = dataclasses.replace(changes.get("preprocessing", cfg.preprocessing), **pre)
    return dataclasses.replace(cfg, **changes)


def create_model(name: str | ModelConfig, *, seed: int | None = None, **overrides: Any) -> Backbone:
    """A freshly initialised model: of the preset ``name`` with ``overrides``
    (:func:`model_config`), or of a :class:`ModelConfig`. With ``seed`` the initial weights
    depend on it only (the global RNG is restored afterwards), so "untrained, same seed" is
    reproducible."""
    cfg = model_config(name, **overrides) if isinstance(name, str) else override(name, **overrides)
    if cfg.backbone not in _BACKBONES:
        raise ConfigError(
            f"no model class registered for backbone {cfg.backbone!r}; registered: {', '.join(_BACKBONES)}"
        )
    cls = _BACKBONES[cfg.backbone]
    if seed is None:
        return cls(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return cls(cfg)
