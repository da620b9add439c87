"""Decoding image files and normalising pixel arrays to uint8 (H, W, 3).

Survey cutouts arrive as 8-bit JPEG/PNG, 16-bit PNG/TIFF, grayscale radio maps, RGBA
screenshots, or floating-point FITS. Everything downstream (the model, the mosaics) expects
uint8 RGB, so conversion happens once, here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, ImageReadError

__all__ = ["IMAGE_SUFFIXES", "FITS_SUFFIXES", "to_uint8_rgb", "read_image", "asinh_stretch", "set_max_image_pixels", "max_image_pixels"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
FITS_SUFFIXES = frozenset({".fits", ".fit", ".fts", ".fits.gz"})

# Largest image decoded, in pixels. A small file can declare 20000×20000 pixels (a
# "decompression bomb": gigabytes once decoded); such a file is an unreadable image with a
# reason, not a crash. Pillow's own default (~89 M pixels, e.g. 9459²) is generous for cutouts.
_DEFAULT_MAX_PIXELS = 89_478_485
_max_pixels = _DEFAULT_MAX_PIXELS


def max_image_pixels() -> int:
    return _max_pixels


def set_max_image_pixels(n: int | None) -> None:
    """Set the decode limit for this process (None: the default). Pillow's own bomb check
    is moved with it, so that a raised limit is not refused by Pillow instead."""
    global _max_pixels
    from PIL import Image

    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError(f"the image pixel limit must be a positive integer, got {n!r}")
    _max_pixels = _DEFAULT_MAX_PIXELS if n is None else n
    # never below Pillow's default: a lower limit is ours to apply (with our message), and
    # other Pillow users in this process keep their protection
    Image.MAX_IMAGE_PIXELS = max(_max_pixels, _DEFAULT_MAX_PIXELS)


def asinh_stretch(x: np.ndarray, q: float = 8.0) -> np.ndarray:
    """Map floating-point fluxes to [0, 1] with an asinh stretch (Lupton et al. 2004).

    The sky level (median) goes to 0 and the 99.9th percentile to 1, per channel, which is
    how survey cutout services turn calibrated fluxes into viewable images."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    axes = (0, 1)
    lo = np.median(x, axis=axes, keepdims=True)
    hi = np.percentile(x, 99.9, axis=axes, keepdims=True)
    scale = np.where(hi > lo, hi - lo, 1.0)
    y = np.clip((x - lo) / scale, 0.0, None)
    return np.clip(np.arcsinh(q * y) / np.arcsinh(q), 0.0, 1.0)


def to_uint8_rgb(arr: np.ndarray) -> np.ndarray:
    """Convert any 2-D or 3-D pixel array to uint8 (H, W, 3).

    - grayscale (H, W) or (H, W, 1): replicated to three channels;
    - RGBA / LA: alpha dropped (cutouts have no meaningful transparency);
    - uint16 / other integers: rescaled from their full range to 0–255;
    - floats: asinh-stretched (FITS fluxes), unless already within [0, 1].
    """
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 2, 3, 4):
        a = np.moveaxis(a, 0, -1)  # channel-first (FITS cubes, torch tensors)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"expected a 2-D or 3-D image array, got shape {a.shape}")
    c = a.shape[2]
    if c == 2:  # luminance + alpha
        a = a[:, :, :1]
    elif c == 4:
        a = a[:, :, :3]
    elif c > 4:  # multi-band cube: keep the first three bands
        a = a[:, :, :3]
    if a.dtype == np.uint8:
        out = a
    elif a.dtype == np.bool_:
        out = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        lo = 0 if info.min >= 0 else info.min
        out = ((a.astype(np.float64) - lo) * (255.0 / (info.max - lo)) + 0.5).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        finite = a[np.isfinite(a)]
        if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
            out = (np.nan_to_num(a) * 255.0 + 0.5).astype(np.uint8)
        else:
            out = (asinh_stretch(a) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise ValueError(f"unsupported pixel dtype {a.dtype}")
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return np.ascontiguousarray(out)


def _is_fits(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in FITS_SUFFIXES)


def read_image(path: str | Path) -> np.ndarray:
    """Decode one image file to uint8 (H, W, 3); raise :class:`ImageReadError` naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(p, "no such file")
    if _is_fits(p):
        return _read_fits(p)
    import warnings

    from PIL import Image, UnidentifiedImageError

    def too_large(w: int, h: int) -> ImageReadError:
        e = ImageReadError(p, f"{w}×{h} = {w * h:,} pixels is over the limit of {_max_pixels:,} (a decompression bomb?); raise the image pixel limit to read it")
        return e.resolved_by("max_image_pixels")

    try:
        with warnings.catch_warnings():
            # over the limit is refused below; Pillow's warning for it would only be noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im_cm = Image.open(p)
        with im_cm as im:
            if im.width * im.height > _max_pixels:  # checked on the header, before decoding
                raise too_large(im.width, im.height)
            im.load()  # decode now: truncated files fail here, not later
            mode = im.mode
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            elif mode == "1":
                im = im.convert("L")
            arr = np.asarray(im)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as e:  # Pillow's own check (at twice its limit) came first
        reason = str(e).rstrip(".")
        raise ImageReadError(p, f"over the image pixel limit (a decompression bomb?): {reason}; raise the image pixel limit to read it").resolved_by("max_image_pixels") from None
    except UnidentifiedImageError:
        raise ImageReadError(p, "not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as e:  # PIL reports truncation as OSError
        raise ImageReadError(p, f"corrupt or truncated image ({e})") from None
    if mode in ("I;16", "I;16B", "I;16L", "I;16N") and arr.dtype != np.uint16:
        arr = arr.astype(np.uint16)
    elif mode == "I":
        arr = arr.astype(np.int64)
        arr = np.clip(arr, 0, 65535).astype(np.uint16) if arr.min() >= 0 else arr.astype(np.float64)
    try:
        return to_uint8_rgb(arr)
    except ValueError as e:
        raise ImageReadError(p, str(e)) from None


def _read_fits(p: Path) -> np.ndarray:
    try:
        from astropy.io import fits
    except ImportError:
        raise ImageReadError(p, "FITS files need astropy (pip install astropy)") from None
    try:
        with fits.open(p, memmap=False) as hdul:
            data = next((h.data for h in hdul if getattr(h, "data", None) is not None and h.data.ndim >= 2), None)
    except Exception as e:  # astropy raises many types for damaged files
        raise ImageReadError(p, f"corrupt FITS file ({e})") from None
    if data is None:
        raise ImageReadError(p, "FITS file has no 2-D image HDU")
    data = np.asarray(data, dtype=np.float64)
    while data.ndim > 3:
        data = data[0]
    try:
        return to_uint8_rgb(data)
    except ValueError as e:
        raise ImageReadError(p, str(e)) from None
