"""Model configs as checkpoints stored them before :class:`~.config.ModelConfig`: read here, once.

Before the split, one flat ``ViTConfig`` described every backbone::

    {"image_size", "patch_size", "in_chans", "hidden", "depth", "num_heads", "mlp_hidden",
     "out_dim", "norm_mean", "norm_std", "name", "framing" (or older "crop"), "backbone"}

and source suppression was not part of it: training recorded it in its training config
(``checkpoint.json`` → ``train.suppress_sources``) and in the weights file's metadata
(``suppress_sources``). :func:`model_config_from_dict` turns that into today's config,
with the suppression given by :func:`legacy_suppress`. The polar CNN read ``hidden`` as its
first width and ``patch_size`` as its explanation cell; ``num_heads`` and ``mlp_hidden``
were unread there and are dropped.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..framing import Framing
from .config import ModelConfig, PolarSettings, ViTSettings
from .preprocess import Preprocessing

__all__ = ["model_config_from_dict", "legacy_suppress", "is_legacy"]

_FLAT = {
    "image_size",
    "patch_size",
    "in_chans",
    "hidden",
    "depth",
    "num_heads",
    "mlp_hidden",
    "out_dim",
    "norm_mean",
    "norm_std",
    "name",
    "framing",
    "crop",
    "backbone",
}


def is_legacy(raw: Any) -> bool:
    """Whether a stored model config is the old flat form."""
    return isinstance(raw, dict) and "settings" not in raw and "preprocessing" not in raw


def legacy_suppress(meta: dict[str, Any]) -> Any:
    """Where checkpoints before the split recorded source suppression: the training config
    of ``checkpoint.json``, else the top level (a weights file's metadata)."""
    return (meta.get("train") or {}).get("suppress_sources", meta.get("suppress_sources"))


def model_config_from_dict(raw: Any, suppress: Any = None) -> ModelConfig:
    """A stored model config of either form → :class:`ModelConfig`. ``suppress`` (a
    :class:`~galaxy_retrieval.suppress.SuppressConfig`, its dict or None) completes an old
    flat config, which did not hold it; today's form holds its own."""
    if not is_legacy(raw):
        return ModelConfig.from_dict(raw)
    unknown = sorted(set(raw) - _FLAT)
    if unknown:
        raise ConfigError(
            f"model config has unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FLAT))}"
        )
    d = dict(raw)
    backbone = d.get("backbone", "vit")
    g = {k: d[k] for k in ("patch_size", "hidden", "depth", "num_heads", "mlp_hidden") if k in d}
    defaults = ViTSettings()
    if backbone == "polar":
        settings: Any = PolarSettings(
            width=g.get("hidden", defaults.hidden),
            depth=g.get("depth", defaults.depth),
            cell_size=g.get("patch_size", defaults.patch_size),
        )
    elif backbone == "vit":
        settings = ViTSettings(**g)
    else:
        raise ConfigError(f"model config backbone={backbone!r}; choices: vit, polar")
    pre = Preprocessing(
        suppress=suppress,
        framing=_legacy_framing(d),
        image_size=d.get("image_size", 64),
        **{k: tuple(d[k]) for k in ("norm_mean", "norm_std") if k in d},
    )
    return ModelConfig(
        backbone=backbone,
        settings=settings,
        out_dim=d.get("out_dim", 256),
        in_chans=d.get("in_chans", 3),
        preprocessing=pre,
        name=d.get("name", "custom"),
    )


def _legacy_framing(d: dict[str, Any]) -> Framing:
    if "framing" in d:
        return Framing.from_dict(d["framing"])
    if "crop" not in d:
        return Framing()
    # checkpoints from before framing: a fixed central fraction
    crop = d["crop"]
    if isinstance(crop, bool) or not isinstance(crop, (int, float)):
        raise ConfigError(f"model config crop={crop!r} must be a fraction between 0.05 and 1")
    return Framing() if crop == 1.0 else Framing(mode="fixed", fraction=crop)
