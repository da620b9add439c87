"""Contact sheets: a grid of labelled image tiles in one PNG, for looking at a catalog.

Pillow only, so it works wherever the catalog readers work (no matplotlib backend).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import ConfigError

__all__ = ["contact_sheet"]

_BACKGROUND = (16, 16, 16)
_CAPTION_BG = (0, 0, 0, 170)
_CAPTION_FG = (255, 255, 255, 255)


def _font(px: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=px)  # scalable font, Pillow >= 10.1 with FreeType
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def contact_sheet(
    images: Sequence[np.ndarray],
    captions: Sequence[str] | None,
    out: str | Path,
    ncols: int = 10,
    tile: int = 128,
) -> Path:
    """Write ``images`` (uint8 H×W×3, any size) as a grid of ``tile``-pixel tiles to a PNG.

    Each image is resized to ``tile``×``tile``; a caption, when given, is printed on a dark
    band across the tile's top so the sheet keeps the exact size
    ``(min(ncols, len(images)) * tile, ceil(len(images) / ncols) * tile)``. Grayscale,
    RGBA and 16-bit arrays are converted as the catalog readers convert them. Parent
    directories of ``out`` are created. Returns the path written.
    """
    from PIL import Image

    from ..catalog.images import to_uint8_rgb

    if len(images) == 0:
        raise ConfigError("contact_sheet: no images given")
    if not isinstance(ncols, int) or ncols < 1:
        raise ConfigError(f"contact_sheet: ncols={ncols!r} must be a positive integer")
    if not isinstance(tile, int) or tile < 8:
        raise ConfigError(f"contact_sheet: tile={tile!r} must be an integer of at least 8 pixels")
    if captions is not None and len(captions) != len(images):
        raise ConfigError(
            f"contact_sheet: {len(captions)} captions for {len(images)} images; give one per image or None"
        )

    cols = min(ncols, len(images))
    rows = math.ceil(len(images) / cols)
    sheet = Image.new("RGB", (cols * tile, rows * tile), _BACKGROUND)
    font = _font(max(9, tile // 11))
    for i, arr in enumerate(images):
        try:
            rgb = to_uint8_rgb(np.asarray(arr))
        except ValueError as e:
            raise ConfigError(f"contact_sheet: image {i}: {e}") from None
        im = Image.fromarray(rgb, "RGB")
        if im.size != (tile, tile):
            im = im.resize((tile, tile), Image.Resampling.LANCZOS)
        if captions is not None and captions[i]:
            im = _caption(im, str(captions[i]), font)
        sheet.paste(im, ((i % cols) * tile, (i // cols) * tile))
    out = Path(out)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out


def _caption(im, text: str, font):
    from PIL import Image, ImageDraw

    overlay = Image.new("RGBA", im.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    x0, y0, x1, y1 = draw.textbbox((3, 2), text, font=font)
    draw.rectangle((0, 0, min(im.size[0], x1 + 3), y1 + 2), fill=_CAPTION_BG)
    draw.text((3, 2), text, fill=_CAPTION_FG, font=font)
    return Image.alpha_composite(im.convert("RGBA"), overlay).convert("RGB")
