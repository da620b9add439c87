"""Decoding image files and normalising pixel arrays to uint8 (H, W, 3).

Survey cutouts arrive as 8-bit JPEG/PNG, 16-bit PNG/TIFF, grayscale radio maps, RGBA
screenshots, or floating-point FITS. Everything downstream (the model, the mosaics) expects
uint8 RGB, so conversion happens once, here.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ImageReadError
from ..framing import measure_scale

__all__ = [
    "IMAGE_SUFFIXES",
    "FITS_SUFFIXES",
    "FITS_STRETCH",
    "UINT16_STRETCH",
    "BAND_SCALES",
    "to_uint8_rgb",
    "read_image",
    "read_image_reduced",
    "draft_scale",
    "asinh_stretch",
    "lupton_rgb",
    "fits_layout",
    "fits_bands",
    "describe_conversion",
    "set_max_image_pixels",
    "max_image_pixels",
]

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


#: what ``gr info`` says about how FITS pixel values become 8-bit colours
FITS_STRETCH = (
    "Lupton et al. (2004) colour (astropy make_lupton_rgb, Q=8): one asinh stretch of the bands' mean intensity, "
    "band ratios kept; g r i z in nanomaggies with fixed per-band scales (the Legacy Survey viewer's), other data "
    "sky-subtracted and scaled by one factor for all bands; NaN/inf pixels → sky"
)
#: …and about 16-bit PNG/TIFF files
UINT16_STRETCH = "linear: 0–65535 → 0–255"

# Effective wavelengths (nm) of common broad bands: a FITS cutout's bands are shown
# reddest → R, bluest → B, as the survey viewers do (Legacy grz: z, r, g → R, G, B).
_BAND_NM = {"u": 355, "g": 475, "r": 620, "i": 750, "z": 900, "y": 1000, "w1": 3400, "w2": 4600}

# Per-band multipliers for fluxes in nanomaggies (Legacy Survey and SDSS cutouts), from the
# Legacy Survey viewer's colour images: fixed, so a red galaxy stays red next to a blue one
# (scaling each band of each image to its own level made every galaxy white).
BAND_SCALES = {"g": 6.0, "r": 3.4, "i": 3.0, "z": 2.2}
LUPTON_Q = 8.0
# the stretch (in scaled nanomaggies) at which Lupton's asinh turns from linear to log: a
# galaxy's outskirts (~0.05 nmgy) show above the sky noise, a core saturates past ~5 nmgy
BAND_STRETCH = 0.1
# with unknown units: the mean intensity's 99.9th percentile is where a gray pixel saturates
_SATURATE_AT = 99.9


def lupton_rgb(x: np.ndarray, bands: list[str] | None = None, q: float = LUPTON_Q) -> np.ndarray:
    """Fluxes (H, W[, C ≤ 3], channels red → blue) as uint8 RGB by Lupton et al. (2004):
    one asinh stretch of the mean intensity I, each channel = band · asinh(Q·I/β)/(Q·I), so
    the band ratios (the colour) are kept; a pixel saturating in one channel is scaled down
    in all (``astropy.visualization.make_lupton_rgb``).

    ``bands`` (e.g. ``["z", "r", "g"]``) all in :data:`BAND_SCALES`: the fluxes are taken as
    nanomaggies, multiplied by the fixed per-band scales and stretched with the fixed β
    :data:`BAND_STRETCH` (the same for every image of a survey). Otherwise (units unknown:
    counts, radio maps) each band's sky level (median) is subtracted and one β for all bands
    puts the intensity's 99.9th percentile at saturation, which keeps the ratios too.
    Non-finite pixels (outside the footprint) are shown as sky."""
    from astropy.visualization import make_lupton_rgb

    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2:
        a = a[:, :, None]
    finite = np.isfinite(a)
    planes = [a[:, :, k] for k in range(min(a.shape[2], 3))]
    known = bands is not None and len(bands) == len(planes) and all(b in BAND_SCALES for b in bands)
    if known:
        planes = [
            np.where(finite[:, :, k], p, 0.0) * BAND_SCALES[b] for k, (p, b) in enumerate(zip(planes, bands))
        ]  # type: ignore[arg-type]
        stretch = BAND_STRETCH
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN band: its sky is 0
            sky = [
                np.nan_to_num(np.nanmedian(np.where(finite[:, :, k], p, np.nan)))
                for k, p in enumerate(planes)
            ]
        planes = [np.where(finite[:, :, k], p - s, 0.0) for k, (p, s) in enumerate(zip(planes, sky))]
        mean = np.clip(sum(planes) / len(planes), 0, None)
        hi = float(np.percentile(mean, _SATURATE_AT)) if mean.size else 0.0
        # a gray pixel of intensity hi reaches 1: asinh(Q·hi/β)/Q = 1
        stretch = q * hi / np.sinh(q) if hi > 0 else 1.0
    if len(planes) == 1:
        planes = planes * 3
    elif len(planes) == 2:  # two bands: the mean as the middle channel
        planes = [planes[0], (planes[0] + planes[1]) / 2, planes[1]]
    with np.errstate(invalid="ignore", divide="ignore"):  # I = 0 (blank sky): astropy maps it to 0
        return make_lupton_rgb(*planes, minimum=0.0, stretch=stretch, Q=q)


def asinh_stretch(x: np.ndarray, q: float = LUPTON_Q) -> np.ndarray:
    """Fluxes (H, W[, C]) in [0, 1] by :func:`lupton_rgb` with unknown units (one scale for
    every band): kept for callers of the old name."""
    return lupton_rgb(x, None, q).astype(np.float64) / 255.0


def to_uint8_rgb(arr: np.ndarray) -> np.ndarray:
    """Convert any 2-D or 3-D pixel array to uint8 (H, W, 3).

    - grayscale (H, W) or (H, W, 1): replicated to three channels;
    - RGBA / LA: alpha dropped (cutouts have no meaningful transparency);
    - uint16 / other integers: rescaled from their full range to 0–255;
    - floats: Lupton's colour-keeping asinh stretch (:func:`lupton_rgb`; fluxes), unless
      already within [0, 1].
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
    elif c >= 4:  # RGBA, or a multi-band cube: keep the first three bands
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
            out = lupton_rgb(a)
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
    return _read(Path(path), None)[0]


def read_image_reduced(
    path: str | Path, min_side: int, min_reduction: int = 2
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode one image file at reduced size where the format allows it, cheaply: a JPEG
    whose shorter side is at least twice ``min_side`` is decoded at 1/2, 1/4 or 1/8 scale
    (Pillow's ``draft``: the DCT is scaled, so most of the decoding work is skipped), the
    largest reduction that keeps the shorter side ≥ ``min_side``, when it is at least
    ``min_reduction``. Other formats are decoded whole. Returns uint8 (h, w, 3) and the
    file's full (H, W)."""
    return _read(Path(path), int(min_side), int(min_reduction))


def draft_scale(width: int, height: int, min_side: int) -> int:
    """The JPEG draft reduction (1, 2, 4 or 8) that keeps the shorter side ≥ ``min_side``:
    framing's own binning (:func:`~galaxy_retrieval.framing.measure_scale`), at most 8."""
    return min(8, measure_scale(height, width, min_side))


def _read(p: Path, min_side: int | None, min_reduction: int = 2) -> tuple[np.ndarray, tuple[int, int]]:
    if not p.is_file():
        raise ImageReadError(p, "no such file")
    if _is_fits(p):
        a = _read_fits(p)
        return a, a.shape[:2]
    import warnings

    from PIL import Image, UnidentifiedImageError

    def too_large(w: int, h: int) -> ImageReadError:
        e = ImageReadError(
            p,
            f"{w}×{h} = {w * h:,} pixels is over the limit of {_max_pixels:,} (a decompression bomb?); raise the image pixel limit to read it",
        )
        return e.resolved_by("max_image_pixels")

    try:
        with warnings.catch_warnings():
            # over the limit is refused below; Pillow's warning for it would only be noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im_cm = Image.open(p)
        with im_cm as im:
            if im.width * im.height > _max_pixels:  # checked on the header, before decoding
                raise too_large(im.width, im.height)
            full = (im.height, im.width)
            if min_side is not None and im.format == "JPEG":
                k = draft_scale(im.width, im.height, min_side)
                if k >= max(2, min_reduction):
                    im.draft(im.mode, (im.width // k, im.height // k))
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
        raise ImageReadError(
            p,
            f"over the image pixel limit (a decompression bomb?): {reason}; raise the image pixel limit to read it",
        ).resolved_by("max_image_pixels") from None
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
        return to_uint8_rgb(arr), full
    except ValueError as e:
        raise ImageReadError(p, str(e)) from None


def _fits_images(hdul) -> list[tuple[int, Any]]:
    return [
        (i, h)
        for i, h in enumerate(hdul)
        if getattr(h, "is_image", False) and h.data is not None and h.data.ndim >= 2
    ]


def _band_names(header: Any, n: int) -> list[str] | None:
    """Band names from a cube's header (Legacy Survey writes BAND0='g', BAND1='r'…)."""
    names = [str(header.get(f"BAND{k}", "")).strip().lower() for k in range(n)]
    return names if all(names) else None


def fits_layout(hdul: Any, path: Path | str = "FITS file") -> tuple[np.ndarray, str]:
    arr, where, _ = fits_bands(hdul, path)
    return arr, where


def fits_bands(hdul: Any, path: Path | str = "FITS file") -> tuple[np.ndarray, str, list[str] | None]:
    """The (H, W, C ≤ 3) float array to show from an open FITS file, and how it was made.

    - a cube (bands, H, W) in one HDU (Legacy Survey ``cutout.fits``): its first three bands;
    - several 2-D image HDUs of one shape (one band each, HDU 0 often empty): stacked;
    - otherwise the first 2-D image HDU (grayscale).
    Bands are ordered reddest → R when their names are known (``BANDn``/``FILTER`` keywords)."""
    found = _fits_images(hdul)
    if not found:
        raise ImageReadError(path, "FITS file has no 2-D image HDU")
    i0, h0 = found[0]
    data = np.asarray(h0.data, dtype=np.float64)
    if data.ndim > 2:
        while data.ndim > 3:  # (time/stokes, bands, H, W): the first plane
            data = data[0]
        n = min(data.shape[0], 3)
        bands = _band_names(h0.header, data.shape[0])
        planes = [data[k] for k in range(n)]
        names = bands[:n] if bands else None
        where = f"HDU {i0} cube of {data.shape[0]} bands"
    else:
        same = [(i, h) for i, h in found if h.data.ndim == 2 and h.data.shape == h0.data.shape][:3]
        planes = [np.asarray(h.data, dtype=np.float64) for _, h in same]
        filt = [str(h.header.get("FILTER", h.header.get("BAND", ""))).strip().lower() for _, h in same]
        names = filt if all(filt) else None
        where = f"HDU {i0}" if len(same) == 1 else f"HDUs {', '.join(str(i) for i, _ in same)} as bands"
    if names and all(b in _BAND_NM for b in names) and len(planes) > 1:
        order = sorted(range(len(planes)), key=lambda k: -_BAND_NM[names[k]])
        planes, names = [planes[k] for k in order], [names[k] for k in order]
    if len(planes) == 2:  # two bands: the mean as the missing middle channel
        planes = [planes[0], (planes[0] + planes[1]) / 2, planes[1]]
        names = [names[0], "mean", names[1]] if names else None
    arr = np.stack(planes, axis=-1)
    colours = f"; {', '.join(names)} → {'RGB'[: len(names)] if len(names) > 1 else 'gray'}" if names else ""
    bands = [n for n in names if n != "mean"] if names else None
    return arr, f"{where}{colours}", bands


def _read_fits(p: Path) -> np.ndarray:
    try:
        from astropy.io import fits
    except ImportError:
        raise ImageReadError(p, "FITS files need astropy (pip install astropy)") from None
    try:
        with warnings.catch_warnings():
            # astropy only warns about a short file and pads it with zeros: a truncated download
            warnings.filterwarnings("error", message=".*truncated.*")
            with fits.open(p, memmap=False) as hdul:
                data, _, bands = fits_bands(hdul, p)
    except ImageReadError:
        raise
    except Exception as e:  # astropy raises many types for damaged files
        raise ImageReadError(p, f"corrupt FITS file ({e})") from None
    if not np.isfinite(data).any():
        raise ImageReadError(p, "FITS image has no finite pixel (all NaN: outside the survey footprint?)")
    try:
        # always the stretch: a FITS image holds fluxes, even when they lie in [0, 1]
        if data.shape[2] == 3 and bands is not None and len(bands) == 2:
            data = data[:, :, [0, 2]]  # the synthetic middle channel is made again by lupton_rgb
        return lupton_rgb(data, bands)
    except ValueError as e:
        raise ImageReadError(p, str(e)) from None


def describe_conversion(path: str | Path) -> str | None:
    """How the pixels of this file become uint8 RGB, for ``gr info`` (None: 8-bit, as is)."""
    p = Path(path)
    if _is_fits(p):
        try:
            from astropy.io import fits

            with fits.open(p, memmap=False) as hdul:
                _, where = fits_layout(hdul, p)
        except Exception:
            return None
        return f"FITS {where}; {FITS_STRETCH}"
    if p.suffix.lower() in (".png", ".tif", ".tiff"):
        from PIL import Image

        try:
            with Image.open(p) as im:
                mode = im.mode
        except Exception:
            return None
        if mode.startswith("I;16") or mode == "I":
            return f"16-bit {p.suffix.lower().lstrip('.').upper()}: {UINT16_STRETCH}"
    return None
