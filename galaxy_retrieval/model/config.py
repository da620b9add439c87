"""The model's configuration: one frozen dataclass, stored in every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import ConfigError
from ..framing import Framing

__all__ = ["ViTConfig", "BACKBONES"]

BACKBONES: tuple[str, ...] = ("vit", "polar")


@dataclass(frozen=True)
class ViTConfig:
    """Shape of the GalaxIDNet vision transformer (paper §3.3).

    ``image_size`` is the side of the square model input; any image is centre-cropped to a
    square and resized to it (bilinear, antialiased). Pixels go in as
    ``(uint8 / 255 − norm_mean) / norm_std`` per channel; the normalisation is part of the
    config so an embedder built from a checkpoint preprocesses exactly as training did.

    ``framing`` (:class:`~galaxy_retrieval.framing.Framing`) is the square cut from each
    cutout before resizing: the whole centred square (``none``), its central fraction
    (``fixed:F``; FIRST radio sources lie in the central third of 300 px), or a square
    around the central source measured in each image (``auto``: survey galaxies span 10–20 %
    of the frame, one or two 8-pixel patches of a 64-pixel input without it). Checkpoints
    written before framing existed stored ``crop: F``, read as ``fixed:F``.
    """

    image_size: int = 64
    patch_size: int = 8
    in_chans: int = 3
    hidden: int = 192
    depth: int = 3
    num_heads: int = 4
    mlp_hidden: int = 384
    out_dim: int = 256
    norm_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    norm_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    name: str = "custom"  # the preset it came from ("paper", "small") or "custom"
    framing: Framing = Framing()
    #: "vit": the paper's transformer; "polar": the rotation-invariant CNN of
    #: :mod:`galaxy_retrieval.model.polar` (``hidden`` its first width, ``depth`` its stages)
    backbone: str = "vit"

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"model config backbone={self.backbone!r}; choices: {', '.join(BACKBONES)}")
        if not isinstance(self.framing, Framing):
            # a spec string ("auto", "fixed:0.4") or a dict from a checkpoint
            object.__setattr__(self, "framing", Framing.from_dict(self.framing))
        for f in ("image_size", "patch_size", "in_chans", "hidden", "depth", "num_heads", "mlp_hidden", "out_dim"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"model config {f}={v!r} must be a positive integer")
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"model config image_size={self.image_size} is not a multiple of patch_size={self.patch_size}"
            )
        if self.hidden % self.num_heads:
            raise ConfigError(f"model config hidden={self.hidden} is not divisible by num_heads={self.num_heads}")
        if self.hidden % 4:
            # the 2-D sine/cosine table splits the hidden vector into four equal parts
            raise ConfigError(f"model config hidden={self.hidden} must be a multiple of 4 (2-D sin/cos position table)")
        for f in ("norm_mean", "norm_std"):
            v = tuple(float(x) for x in getattr(self, f))
            if len(v) != self.in_chans:
                raise ConfigError(f"model config {f}={v!r} needs {self.in_chans} values (one per channel)")
            if f == "norm_std" and min(v) <= 0:
                raise ConfigError(f"model config norm_std={v!r} must be > 0")
            object.__setattr__(self, f, v)

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    @property
    def patch_dim(self) -> int:
        """Length of one flattened patch: all colour channels kept (§3.3)."""
        return self.patch_size * self.patch_size * self.in_chans

    @property
    def head_dim(self) -> int:
        return self.hidden // self.num_heads

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["framing"] = self.framing.to_dict()
        d["norm_mean"] = list(self.norm_mean)
        d["norm_std"] = list(self.norm_std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ViTConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"model config must be a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known - {"crop"})
        if unknown:
            raise ConfigError(f"model config has unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        kw = dict(d)
        if "crop" in kw:  # checkpoints from before framing: a fixed central fraction
            crop = kw.pop("crop")
            if "framing" not in kw:
                if isinstance(crop, bool) or not isinstance(crop, (int, float)):
                    raise ConfigError(f"model config crop={crop!r} must be a fraction between 0.05 and 1")
                kw["framing"] = Framing() if crop == 1.0 else Framing(mode="fixed", fraction=crop)
        for f in ("norm_mean", "norm_std"):
            if f in kw:
                kw[f] = tuple(kw[f])
        return cls(**kw)

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
        """What decides the weights' shapes alone (not framing, normalisation or name): two
        configs with one key can load each other's weights (fine-tuning)."""
        return tuple((k, v) for k, v in self.shape_key() if k not in ("framing", "norm_mean", "norm_std"))

    def shape_key(self) -> tuple:
        """Everything that decides tensor shapes and preprocessing (not the name)."""
        d = self.to_dict()
        d.pop("name")
        d["framing"] = tuple(sorted(d["framing"].items()))
        return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items()))
