"""Replacing the other sources by sky: the step that changes pixels."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from ..errors import CatalogError
from .config import SuppressConfig
from .detect import Detection, check_uint8_image, detect_sources, dilate_mask, sep_planes


def _fill(image: np.ndarray, det: Detection, cfg: SuppressConfig) -> np.ndarray:
    h, w = image.shape[:2]
    sup = det.suppressed
    # true sky: outside every segment and its grown edge
    sky = ~(dilate_mask(det.segmap > 0, max(cfg.dilate, 2)) | sup | det.kept)
    out = image.copy()
    yy, xx = np.nonzero(sup)
    if cfg.fill == "background" or sky.sum() < 16:
        back = _background(image, ~sky, min(cfg.back_size, h, w))
        v = np.clip(np.rint(back[:, yy, xx].T), 0, 255).astype(np.uint8)  # (n, C)
        out[yy, xx] = v if image.ndim == 3 else v[:, 0]
        return out
    # "sky": copy each pixel from a random sky pixel nearby. The stretched sky is not
    # Gaussian (the black point clips a good part of it to 0, and the colour mapping
    # greys noise), so a Gaussian with sep's rms came out visibly darker; real sky pixels
    # carry the right distribution and channel correlation, and nearby ones any gradient.
    digest = hashlib.blake2b(image.tobytes(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    r = max(4, min(cfg.back_size, h, w) // 2)
    src_y = np.full(yy.size, -1)
    src_x = np.full(yy.size, -1)
    todo = np.arange(yy.size)
    for _ in range(16):
        if todo.size == 0:
            break
        ty = yy[todo] + rng.integers(-r, r + 1, todo.size)
        tx = xx[todo] + rng.integers(-r, r + 1, todo.size)
        ok = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
        ok[ok] = sky[ty[ok], tx[ok]]
        src_y[todo[ok]], src_x[todo[ok]] = ty[ok], tx[ok]
        todo = todo[~ok]
    if todo.size:  # no sky near these (a big source): any sky pixel of the image
        sy, sx = np.nonzero(sky)
        k = rng.integers(0, sy.size, todo.size)
        src_y[todo], src_x[todo] = sy[k], sx[k]
    out[yy, xx] = image[src_y, src_x]
    return out


def _background(image: np.ndarray, mask: np.ndarray, box: int) -> np.ndarray:
    """(C, H, W) smooth sky of each channel, sources masked (unless nearly all is masked)."""
    import sep

    planes = sep_planes(image)
    if mask.mean() > 0.9:
        mask = np.zeros_like(mask)
    return np.stack([sep.Background(p, mask=mask, bw=box, bh=box).back() for p in planes])


def suppress_sources(
    image: np.ndarray, cfg: SuppressConfig = SuppressConfig(), return_mask: bool = False
) -> np.ndarray | tuple[np.ndarray, Detection]:
    """Replace every source but the central object by sky (see the module docstring).

    ``image``: uint8 (H, W) or (H, W, C); the result has the same shape and dtype and is a
    new array (a copy when nothing was suppressed). Deterministic: the random choice of sky
    pixels is seeded by a hash of the image. With ``return_mask=True`` returns ``(result, detection)``,
    where ``detection.suppressed`` is the boolean mask of replaced pixels.
    """
    check_uint8_image(image, "suppress_sources")
    det = detect_sources(image, cfg)
    if det.suppressed.any():
        out = _fill(image, det, cfg)
    else:
        out = image.copy()
    return (out, det) if return_mask else out


def suppress_batch(
    images: np.ndarray | Sequence[np.ndarray], cfg: SuppressConfig = SuppressConfig()
) -> np.ndarray | list[np.ndarray]:
    """:func:`suppress_sources` over a (B, H, W, C) uint8 array (returns an array of the
    same shape) or a sequence of images of any sizes (returns a list). A 3-D array is
    refused rather than guessed at: (B, H, W) grey stacks and one (H, W, 3) image look
    alike; pass grey stacks as (B, H, W, 1) or as a list."""
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise CatalogError(
                f"suppress_batch: expected a (B, H, W, C) array or a list of images, got shape {images.shape}"
            )
        if images.dtype != np.uint8:
            raise CatalogError(f"suppress_batch: expected uint8 images, got dtype {images.dtype}")
        out = np.empty_like(images)
        for i, im in enumerate(images):
            out[i] = suppress_sources(im, cfg)
        return out
    return [suppress_sources(im, cfg) for im in images]
