"""uint8 images of any size → the model's normalised input tensor.

One path for training, embedding and evaluation, so a checkpoint sees at search time
exactly what it saw in training:

1. cut the square the model sees (``config.framing``, :mod:`galaxy_retrieval.framing`):
   the centred square of the frame (galaxy cutouts are centred on the object), its central
   fraction, or a square around the central source measured in each image;
2. resize to ``config.image_size`` with bilinear, antialiased interpolation;
3. scale to [0, 1] (``uint8 / 255``), then ``(x − norm_mean) / norm_std`` per channel.

Steps 1–2 can be done once ahead of time (:func:`resize_uint8`, used to pre-load a
training set into RAM at model resolution); step 3 is :func:`normalize`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..framing import Framing, FramingStats, centred_square, frame_images
from .config import ViTConfig

__all__ = ["images_to_float", "resize_uint8", "normalize", "to_model_input"]


def _as_rgb_uint8(im: np.ndarray) -> np.ndarray:
    a = np.asarray(im)
    if a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3:
        return a
    from ..catalog.images import to_uint8_rgb  # grayscale, RGBA, 16-bit, float

    return to_uint8_rgb(a)


_WHOLE = Framing()


def _resize_group(x: torch.Tensor, size: int, framing: Framing = _WHOLE) -> torch.Tensor:
    """(B, C, H, W) float in [0, 1] → (B, C, size, size): the centred square (or its
    central ``framing.fraction`` for ``fixed`` framing), resized."""
    h, w = x.shape[-2:]
    top, left, m = centred_square(h, w, framing.fraction if framing.mode == "fixed" else 1.0)
    if h != m or w != m:
        x = x[..., top : top + m, left : left + m]
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def images_to_float(
    images,
    size: int,
    device: torch.device | str | None = None,
    framing: Framing | None = None,
    stats: FramingStats | None = None,
) -> torch.Tensor:
    """uint8 images → float32 (B, 3, size, size) in [0, 1], framed by ``framing`` (default:
    the whole centred square).

    ``images``: uint8 ndarray (B, H, W, 3), a list of (H, W, 3) arrays of any sizes (other
    dtypes / channel counts are converted as catalog readers do), or a uint8 tensor
    (B, 3, H, W) already channel-first. Images of one shape are resized together. ``auto``
    framing measures each image (on the CPU); ``stats`` counts how many fell back to the
    whole frame.
    """
    framing = _WHOLE if framing is None else framing
    if framing.mode == "auto":
        if isinstance(images, torch.Tensor):
            if images.ndim != 4:
                raise ValueError(f"expected a (B, 3, H, W) tensor, got shape {tuple(images.shape)}")
            t = images.detach().cpu()
            t = t if t.dtype == torch.uint8 else t.float().mul(255.0).round().clamp(0, 255).to(torch.uint8)
            images = t.permute(0, 2, 3, 1).numpy()
        elif isinstance(images, np.ndarray) and images.ndim in (2, 3):
            raise ValueError(
                f"expected a batch of images, got one array of shape {images.shape}; wrap a single image in a list"
            )
        views = frame_images([_as_rgb_uint8(a) for a in images], framing, stats)
        return images_to_float(views, size, device)
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"expected a (B, 3, H, W) tensor, got shape {tuple(images.shape)}")
        x = images.to(device=device) if device is not None else images
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return _resize_group(x, size, framing).clamp_(0.0, 1.0)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        arr = images if images.dtype == np.uint8 and images.shape[3] == 3 else np.stack([_as_rgb_uint8(a) for a in images])
        x = torch.from_numpy(np.ascontiguousarray(arr)).to(device=device).permute(0, 3, 1, 2).float().div_(255.0)
        return _resize_group(x, size, framing).clamp_(0.0, 1.0)
    if isinstance(images, np.ndarray) and images.ndim in (2, 3):
        raise ValueError(
            f"expected a batch of images, got one array of shape {images.shape}; wrap a single image in a list"
        )
    ims = [_as_rgb_uint8(a) for a in images]
    out = torch.empty((len(ims), 3, size, size), dtype=torch.float32, device=device)
    by_shape: dict[tuple, list[int]] = {}
    for i, a in enumerate(ims):
        by_shape.setdefault(a.shape, []).append(i)
    for _, idx in by_shape.items():
        arr = np.stack([ims[i] for i in idx])
        x = torch.from_numpy(arr).to(device=device).permute(0, 3, 1, 2).float().div_(255.0)
        out[torch.as_tensor(idx, device=out.device)] = _resize_group(x, size, framing)
    return out.clamp_(0.0, 1.0)


def resize_uint8(images, size: int, framing: Framing | None = None, stats: FramingStats | None = None) -> torch.Tensor:
    """Frame + resize to uint8 (B, 3, size, size): the compact form kept in RAM."""
    return images_to_float(images, size, framing=framing, stats=stats).mul_(255.0).round_().to(torch.uint8)


def normalize(x01: torch.Tensor, config: ViTConfig) -> torch.Tensor:
    """[0, 1] float (B, C, S, S) → model input ``(x − mean) / std``."""
    mean = torch.tensor(config.norm_mean, dtype=x01.dtype, device=x01.device).view(1, -1, 1, 1)
    std = torch.tensor(config.norm_std, dtype=x01.dtype, device=x01.device).view(1, -1, 1, 1)
    return (x01 - mean) / std


def to_model_input(images, config: ViTConfig, device: torch.device | str | None = None) -> torch.Tensor:
    """Any uint8 images → normalised float32 (B, 3, S, S) ready for the model."""
    return normalize(images_to_float(images, config.image_size, device, config.framing), config)
