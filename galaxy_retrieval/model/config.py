"""What a model is: :class:`ModelConfig`, one frozen dataclass stored in every checkpoint.

Every backbone shares the parts on :class:`ModelConfig`: the backbone's name, the vector
length ``out_dim``, the input channels and the :class:`~.preprocess.Preprocessing` of its
images (suppress → frame → resize to ``image_size`` → normalise). What one backbone alone
reads is in its own frozen settings, validated there and only there:

``vit``    :class:`ViTSettings`: the paper's transformer (§3.3, :mod:`.vit`);
``polar``  :class:`PolarSettings`: the rotation-invariant CNN (:mod:`.polar`), the default.

Checkpoints written before this split stored one flat ``ViTConfig`` for both;
:mod:`.compat` reads them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from ..errors import ConfigError
from .preprocess import Preprocessing

__all__ = [
    "ModelConfig",
    "ViTSettings",
    "PolarSettings",
    "BackboneSettings",
    "BACKBONE_SETTINGS",
    "BACKBONES",
]


#: the polar CNN's rotation-invariant poolings over angle (:class:`PolarSettings`)
ANGLE_POOLS = ("mean", "mean_max")


def _check_positive_ints(obj: Any, what: str, skip: tuple[str, ...] = ()) -> None:
    for f in fields(obj):
        if f.name in skip:
            continue
        v = getattr(obj, f.name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{what} {f.name}={v!r} must be a positive integer")


@dataclass(frozen=True)
class ViTSettings:
    """The GalaxIDNet vision transformer (paper §3.3): ``patch_size`` pixels per patch side,
    ``depth`` blocks of ``num_heads`` attention heads over ``hidden`` features with an MLP of
    ``mlp_hidden``."""

    patch_size: int = 8
    hidden: int = 192
    depth: int = 3
    num_heads: int = 4
    mlp_hidden: int = 384

    def __post_init__(self) -> None:
        _check_positive_ints(self, "vit settings")
        if self.hidden % self.num_heads:
            raise ConfigError(
                f"vit settings hidden={self.hidden} is not divisible by num_heads={self.num_heads}"
            )
        if self.hidden % 4:
            # the 2-D sine/cosine table splits the hidden vector into four equal parts
            raise ConfigError(
                f"vit settings hidden={self.hidden} must be a multiple of 4 (2-D sin/cos position table)"
            )

    @property
    def cell_size(self) -> int:
        """Side of one token's square of pixels: the cells of explanation maps."""
        return self.patch_size

    def check_image_size(self, image_size: int) -> None:
        if image_size % self.patch_size:
            raise ConfigError(
                f"model config image_size={image_size} is not a multiple of patch_size={self.patch_size}"
            )

    def describe(self) -> str:
        return (
            f"patch {self.patch_size}, hidden {self.hidden}, depth {self.depth}, heads {self.num_heads}, "
            f"mlp {self.mlp_hidden}"
        )


@dataclass(frozen=True)
class PolarSettings:
    """The rotation-invariant CNN on a polar resampling: ``width`` channels in the first
    stage, doubled by each of ``depth`` residual stages. ``cell_size`` is only the cell side
    of explanation maps (``gr explain --method similarity``); the network has no patches.
    ``angle_pool`` is how the features are made invariant to rotation: ``mean`` over angle,
    or ``mean_max``, the mean beside the maximum (a feature strong at one angle only, such as
    a companion or a bar's end, is diluted by the mean alone). Checkpoints without the field
    were trained with the mean."""

    width: int = 32
    depth: int = 4
    cell_size: int = 8
    angle_pool: str = "mean"

    def __post_init__(self) -> None:
        if self.angle_pool not in ANGLE_POOLS:
            raise ConfigError(
                f"polar settings angle_pool={self.angle_pool!r}; choices: {', '.join(ANGLE_POOLS)}"
            )
        _check_positive_ints(self, "polar settings", skip=("angle_pool",))

    def check_image_size(self, image_size: int) -> None:
        if image_size % self.cell_size:
            raise ConfigError(
                f"model config image_size={image_size} is not a multiple of cell_size={self.cell_size}"
            )

    def describe(self) -> str:
        pool = "" if self.angle_pool == "mean" else f", {self.angle_pool.replace('_', '+')} over angle"
        return f"width {self.width}, depth {self.depth}{pool}"


BackboneSettings = ViTSettings | PolarSettings
#: each backbone's settings class; :func:`~.registry.register_backbone` adds to it
BACKBONE_SETTINGS: dict[str, type] = {"vit": ViTSettings, "polar": PolarSettings}
BACKBONES: tuple[str, ...] = ("vit", "polar")  # the built-in ones


@dataclass(frozen=True)
class ModelConfig:
    """A model: its ``backbone`` and that backbone's ``settings`` (None: its defaults), the
    vector length ``out_dim``, ``in_chans`` input channels, the ``preprocessing`` of its
    images, and ``name``, the preset it came from (``"polar"``, ``"small"``…) or ``"custom"``.

    ``image_size``, ``framing``, ``suppress``, ``norm_mean`` and ``norm_std`` read the
    preprocessing: the model takes (B, ``in_chans``, ``image_size``, ``image_size``).
    Build one with :func:`~.registry.model_config` (a preset plus flat overrides) or
    :func:`~.registry.create_model` (the model itself).
    """

    backbone: str = "polar"
    settings: BackboneSettings | None = None
    out_dim: int = 256
    in_chans: int = 3
    preprocessing: Preprocessing = Preprocessing()
    name: str = "custom"

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONE_SETTINGS:
            raise ConfigError(
                f"model config backbone={self.backbone!r}; choices: {', '.join(BACKBONE_SETTINGS)}"
            )
        kind = BACKBONE_SETTINGS[self.backbone]
        if self.settings is None:
            object.__setattr__(self, "settings", kind())
        elif isinstance(self.settings, dict):
            object.__setattr__(self, "settings", _settings_from_dict(kind, self.settings, self.backbone))
        elif not isinstance(self.settings, kind):
            raise ConfigError(
                f"model config backbone={self.backbone!r} takes {kind.__name__}, got {type(self.settings).__name__}"
            )
        if isinstance(self.preprocessing, dict):
            object.__setattr__(self, "preprocessing", Preprocessing.from_dict(self.preprocessing))
        elif not isinstance(self.preprocessing, Preprocessing):
            raise ConfigError(
                f"model config preprocessing must be a Preprocessing, got {type(self.preprocessing).__name__}"
            )
        for f in ("out_dim", "in_chans"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"model config {f}={v!r} must be a positive integer")
        for f in ("norm_mean", "norm_std"):
            if len(getattr(self.preprocessing, f)) != self.in_chans:
                raise ConfigError(
                    f"model config {f}={getattr(self, f)!r} needs {self.in_chans} values (one per channel)"
                )
        self.settings.check_image_size(self.image_size)

    # ---- the shared parts the preprocessing holds ----------------------------------------

    @property
    def image_size(self) -> int:
        """Side of the square model input."""
        return self.preprocessing.image_size

    @property
    def framing(self):
        return self.preprocessing.framing

    @property
    def suppress(self):
        return self.preprocessing.suppress

    @property
    def norm_mean(self) -> tuple[float, ...]:
        return self.preprocessing.norm_mean

    @property
    def norm_std(self) -> tuple[float, ...]:
        return self.preprocessing.norm_std

    @property
    def cell_size(self) -> int:
        """Side of the square cells of explanation maps (the ViT's patch)."""
        return self.settings.cell_size

    @property
    def grid(self) -> int:
        """Cells (ViT: patches) per side."""
        return self.image_size // self.cell_size

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    def with_preprocessing(self, **changes: Any) -> ModelConfig:
        """This model with some preprocessing fields replaced (``framing=``, ``suppress=``…)."""
        return dataclasses.replace(self, preprocessing=dataclasses.replace(self.preprocessing, **changes))

    def describe(self) -> str:
        return (
            f"preset {self.name!r}: {self.backbone}, image {self.image_size}, {self.settings.describe()}, "
            f"out {self.out_dim}"
        )

    # ---- stored form ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "name": self.name,
            "out_dim": self.out_dim,
            "in_chans": self.in_chans,
            "settings": dataclasses.asdict(self.settings),
            "preprocessing": self.preprocessing.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """The form :meth:`to_dict` writes (older checkpoints: :func:`.compat.model_config_from_dict`)."""
        if not isinstance(d, dict):
            raise ConfigError(f"model config must be a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"model config has unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**d)

    def check_input(self, x) -> None:
        """Refuse a model input that is not (B, in_chans, image_size, image_size); every
        backbone takes exactly that."""
        s = self.image_size
        if x.ndim != 4 or x.shape[1] != self.in_chans or x.shape[2] != s or x.shape[3] != s:
            raise ValueError(
                f"expected input of shape (B, {self.in_chans}, {s}, {s}), got {tuple(x.shape)}; "
                "use galaxy_retrieval.model.preprocess.to_model_input for images of other sizes"
            )

    def architecture_key(self) -> tuple:
        """What decides the weights' shapes alone (not the preprocessing beyond the input
        size, nor the name): two configs with one key can load each other's weights."""
        settings = tuple(sorted(dataclasses.asdict(self.settings).items()))
        return (
            ("backbone", self.backbone),
            ("settings", settings),
            ("out_dim", self.out_dim),
            ("in_chans", self.in_chans),
            ("image_size", self.image_size),
        )

    def shape_key(self) -> tuple:
        """Everything that decides tensor shapes and preprocessing (not the name)."""
        return (*self.architecture_key(), ("preprocessing", self.preprocessing.key()))


def _settings_from_dict(kind: type, d: dict[str, Any], backbone: str) -> Any:
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(
            f"{backbone} settings have unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return kind(**d)
