"""uint8 images of any size → the model's normalised input tensor: :class:`Preprocessing`.

One pipeline for training, embedding, evaluation and explanations, stored once in every
checkpoint (the model config's ``preprocessing``), so a checkpoint sees at search time
exactly what it saw in training:

1. suppress (optional): replace every source but the central galaxy by sky
   (:mod:`galaxy_retrieval.suppress`), on the full-resolution image;
2. frame: cut the square the model sees (:meth:`Framing.cut
   <galaxy_retrieval.framing.Framing.cut>`): the centred square of the frame (galaxy
   cutouts are centred on the object), its central fraction, or a square around the
   central source measured in each image;
3. resize to ``image_size`` with bilinear, antialiased interpolation;
4. normalise: ``uint8 / 255``, then ``(x − norm_mean) / norm_std`` per channel.

Steps 1–3 can be done once ahead of time (:meth:`Preprocessing.to_uint8`, used to pre-load a
training set into RAM at model resolution); step 4 is :meth:`Preprocessing.normalize`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..framing import Framing, FramingStats
from ..suppress import SuppressConfig

__all__ = [
    "Preprocessing",
    "images_to_float",
    "resize_uint8",
    "normalize",
    "to_model_input",
    "suppress_images",
]


@dataclass(frozen=True)
class Preprocessing:
    """What every image goes through before the model, in the order of the fields:
    ``suppress`` (None: off) → ``framing`` → resize to ``image_size`` → normalise by
    ``norm_mean`` / ``norm_std`` (one value per channel, applied to ``uint8 / 255``)."""

    suppress: SuppressConfig | None = None
    framing: Framing = Framing()
    image_size: int = 64
    norm_mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    norm_std: tuple[float, ...] = (0.5, 0.5, 0.5)

    def __post_init__(self) -> None:
        if isinstance(self.suppress, dict):
            object.__setattr__(self, "suppress", SuppressConfig.from_dict(self.suppress))
        elif self.suppress is not None and not isinstance(self.suppress, SuppressConfig):
            raise ConfigError(
                f"preprocessing suppress must be a SuppressConfig or None, got {type(self.suppress).__name__}"
            )
        if not isinstance(self.framing, Framing):
            # a spec string ("auto", "fixed:0.4") or a dict from a checkpoint
            object.__setattr__(self, "framing", Framing.from_dict(self.framing))
        v = self.image_size
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"model config image_size={v!r} must be a positive integer")
        for f in ("norm_mean", "norm_std"):
            try:
                t = tuple(float(x) for x in getattr(self, f))
            except (TypeError, ValueError):
                raise ConfigError(
                    f"model config {f}={getattr(self, f)!r} must be numbers, one per channel"
                ) from None
            if not t or not all(math.isfinite(x) for x in t) or (f == "norm_std" and min(t) <= 0):
                raise ConfigError(
                    f"model config {f}={t!r} must be finite{' and > 0' if f == 'norm_std' else ''}"
                )
            object.__setattr__(self, f, t)

    # ---- the pipeline ---------------------------------------------------------------------

    def views(self, images: Any, stats: FramingStats | None = None) -> Any:
        """Steps 1–2: the uint8 squares the model sees, before resizing (a list of (h, h, 3)
        arrays, or one batch for ``none``/``fixed`` framing of a batch array)."""
        if self.suppress is not None:
            images = suppress_images(images, self.suppress)
        return self.framing.cut(_rgb_batch(images), stats)

    def to_float(
        self, images: Any, device: torch.device | str | None = None, stats: FramingStats | None = None
    ) -> torch.Tensor:
        """Steps 1–3: uint8 images → float32 (B, 3, image_size, image_size) in [0, 1]."""
        if self.suppress is not None:
            images = suppress_images(images, self.suppress)
        return images_to_float(images, self.image_size, device, self.framing, stats)

    def to_uint8(self, images: Any, stats: FramingStats | None = None) -> torch.Tensor:
        """Steps 1–3 to uint8 (B, 3, image_size, image_size): the compact form kept in RAM."""
        return _to_u8(self.to_float(images, stats=stats))

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """Step 4: [0, 1] float (B, C, S, S) → model input ``(x − mean) / std``."""
        return normalize(x01, self)

    def __call__(self, images: Any, device: torch.device | str | None = None) -> torch.Tensor:
        """All four steps: any uint8 images → normalised float32 (B, 3, S, S)."""
        return self.normalize(self.to_float(images, device))

    def without_suppression(self) -> Preprocessing:
        return self if self.suppress is None else replace(self, suppress=None)

    # ---- stored form ------------------------------------------------------------------------

    def key(self) -> tuple:
        """A hashable summary of every field (configs compare preprocessing by it)."""
        sup = None if self.suppress is None else tuple(sorted(self.suppress.to_dict().items()))
        return (
            sup,
            tuple(sorted(self.framing.to_dict().items())),
            self.image_size,
            self.norm_mean,
            self.norm_std,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "suppress": None if self.suppress is None else self.suppress.to_dict(),
            "framing": self.framing.to_dict(),
            "image_size": self.image_size,
            "norm_mean": list(self.norm_mean),
            "norm_std": list(self.norm_std),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        if not isinstance(d, dict):
            raise ConfigError(f"preprocessing must be a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"preprocessing has unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**d)


# ---- the steps, as functions ---------------------------------------------------------------


def suppress_images(images: Any, cfg: SuppressConfig) -> Any:
    """Step 1, source suppression (:mod:`galaxy_retrieval.suppress`) of full-resolution images.

    ``images``: a uint8 (B, H, W, C) array, a list of (H, W[, C]) arrays (other dtypes are
    converted to uint8 RGB as catalog readers do), or a uint8 (B, 3, H, W) tensor. Returns an
    array or a list of uint8 images. Suppression needs the pixels before any resizing: a
    star blurred into its neighbours by downsampling is harder to separate from the galaxy."""
    from ..suppress import suppress_batch

    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"source suppression needs uint8 images; got a {images.dtype} tensor of shape {tuple(images.shape)}"
            )
        return suppress_batch(np.ascontiguousarray(images.permute(0, 2, 3, 1).cpu().numpy()), cfg)
    if isinstance(images, np.ndarray) and images.ndim == 4 and images.dtype == np.uint8:
        return suppress_batch(images, cfg)
    from ..catalog.images import to_uint8_rgb

    return suppress_batch(
        [a if a.dtype == np.uint8 else to_uint8_rgb(a) for a in map(np.asarray, images)], cfg
    )


def _as_rgb_uint8(im: np.ndarray) -> np.ndarray:
    a = np.asarray(im)
    if a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3:
        return a
    from ..catalog.images import to_uint8_rgb  # grayscale, RGBA, 16-bit, float

    return to_uint8_rgb(a)


def _rgb_batch(images: Any) -> Any:
    """uint8 RGB channel-last images: a (B, H, W, 3) array as it is, else a list."""
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"expected a (B, 3, H, W) tensor, got shape {tuple(images.shape)}")
        t = images.detach().cpu()
        t = t if t.dtype == torch.uint8 else t.float().mul(255.0).round().clamp(0, 255).to(torch.uint8)
        return t.permute(0, 2, 3, 1).numpy()
    if isinstance(images, np.ndarray):
        if images.ndim in (2, 3):
            raise ValueError(
                f"expected a batch of images, got one array of shape {images.shape}; wrap a single image in a list"
            )
        if images.ndim == 4 and images.dtype == np.uint8 and images.shape[3] == 3:
            return images
    return [_as_rgb_uint8(a) for a in images]


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, h, h) float → (B, C, size, size), bilinear and antialiased."""
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def _from_hwc(arr: np.ndarray, device: torch.device | str | None) -> torch.Tensor:
    # writable too: a decoded image can be a read-only view, which torch warns about
    arr = np.require(arr, requirements=("C", "W"))
    return torch.from_numpy(arr).to(device=device).permute(0, 3, 1, 2).float().div_(255.0)


def images_to_float(
    images: Any,
    size: int,
    device: torch.device | str | None = None,
    framing: Framing | None = None,
    stats: FramingStats | None = None,
) -> torch.Tensor:
    """Steps 2–3: uint8 images → float32 (B, 3, size, size) in [0, 1], framed by ``framing``
    (default: the whole centred square).

    ``images``: uint8 ndarray (B, H, W, 3), a list of (H, W, 3) arrays of any sizes (other
    dtypes / channel counts are converted as catalog readers do), or a uint8 tensor
    (B, 3, H, W) already channel-first (cut and resized where it is: on the GPU too, unless
    ``auto`` framing measures it on the CPU). Squares of one side are resized together;
    ``stats`` counts how many ``auto`` boxes fell back to the whole frame.
    """
    framing = Framing() if framing is None else framing
    if isinstance(images, torch.Tensor) and framing.mode != "auto":
        if images.ndim != 4:
            raise ValueError(f"expected a (B, 3, H, W) tensor, got shape {tuple(images.shape)}")
        x = images.to(device=device) if device is not None else images
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return _resize(framing.cut(x, channels_first=True), size).clamp_(0.0, 1.0)
    views = framing.cut(_rgb_batch(images), stats)
    if isinstance(views, np.ndarray):  # one batch, one box
        return _resize(_from_hwc(views, device), size).clamp_(0.0, 1.0)
    by_shape: dict[tuple, list[int]] = {}
    for i, a in enumerate(views):
        by_shape.setdefault(a.shape, []).append(i)
    if len(by_shape) == 1:  # one image (the ingest path's call), or one side: nothing to scatter
        return _resize(_from_hwc(_stacked(views, range(len(views))), device), size).clamp_(0.0, 1.0)
    out = torch.empty((len(views), 3, size, size), dtype=torch.float32, device=device)
    for _, idx in by_shape.items():
        x = _from_hwc(_stacked(views, idx), device)
        out[torch.as_tensor(idx, device=out.device)] = _resize(x, size)
    return out.clamp_(0.0, 1.0)


def _stacked(views: Sequence[np.ndarray], idx: Sequence[int]) -> np.ndarray:
    """The views at ``idx`` as one (b, h, w, c) array: a view of a lone image, not a copy."""
    return views[idx[0]][None] if len(idx) == 1 else np.stack([views[i] for i in idx])


def _to_u8(x01: torch.Tensor) -> torch.Tensor:
    return x01.mul_(255.0).round_().to(torch.uint8)


def resize_uint8(
    images: Any, size: int, framing: Framing | None = None, stats: FramingStats | None = None
) -> torch.Tensor:
    """Steps 2–3 to uint8 (B, 3, size, size): the compact form kept in RAM."""
    return _to_u8(images_to_float(images, size, framing=framing, stats=stats))


def normalize(x01: torch.Tensor, config: Any) -> torch.Tensor:
    """Step 4: [0, 1] float (B, C, S, S) → model input ``(x − mean) / std``, with the
    ``norm_mean`` / ``norm_std`` of ``config`` (a :class:`Preprocessing` or a model config)."""
    mean = torch.tensor(config.norm_mean, dtype=x01.dtype, device=x01.device).view(1, -1, 1, 1)
    std = torch.tensor(config.norm_std, dtype=x01.dtype, device=x01.device).view(1, -1, 1, 1)
    return (x01 - mean) / std


def to_model_input(images: Any, config: Any, device: torch.device | str | None = None) -> torch.Tensor:
    """Any uint8 images → normalised float32 (B, 3, S, S): the whole pipeline of ``config``
    (a :class:`Preprocessing`, or a model config whose ``preprocessing`` it is)."""
    pre = config if isinstance(config, Preprocessing) else config.preprocessing
    return pre(images, device)
