"""A query and its top-k as one labelled image grid: people would rather look than read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_path

if TYPE_CHECKING:  # drawn from the hits' fields only: viz sits below search
    from ..search.hits import Hit

__all__ = ["query_mosaic"]

_BG = (18, 18, 24)
_QUERY = (255, 196, 0)
_TEXT = (235, 235, 235)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _label_name(label: object, names: dict[int, str] | None) -> str:
    if label is None:
        return ""
    if names and isinstance(label, int) and label in names:
        return names[label]
    return str(label)


def query_mosaic(
    query_images: Sequence[np.ndarray],
    hits: Sequence[Sequence["Hit"]],
    hit_images: Sequence[Sequence[np.ndarray]],
    out: str | Path,
    tile: int = 160,
    query_captions: Sequence[str] | None = None,
    label_names: dict[int, str] | None = None,
) -> Path:
    """One row per query: the query tile (outlined), then its hits left to right, each
    captioned with rank, object id, score and label."""
    nq = len(query_images)
    k = max((len(h) for h in hits), default=0)
    pad, cap = 6, 34
    W = pad + (k + 1) * (tile + pad)
    H = pad + nq * (tile + cap + pad)
    sheet = Image.new("RGB", (W, H), _BG)
    draw = ImageDraw.Draw(sheet)
    font = _font(11)
    for qi in range(nq):
        y = pad + qi * (tile + cap + pad)
        tiles = [(query_images[qi], query_captions[qi] if query_captions else "query", "")]
        for h, im in zip(hits[qi], hit_images[qi]):
            lab = _label_name(h.metadata.get("label"), label_names)
            tiles.append((im, f"#{h.rank} {h.object_id}", f"s={h.score:.3f} {lab}"))
        for j, (im, line1, line2) in enumerate(tiles):
            x = pad + j * (tile + pad)
            thumb = Image.fromarray(np.asarray(im, dtype=np.uint8)).convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS)
            sheet.paste(thumb, (x, y))
            if j == 0:
                draw.rectangle([x - 3, y - 3, x + tile + 2, y + tile + 2], outline=_QUERY, width=3)
            draw.text((x + 2, y + tile + 3), line1[:28], fill=_QUERY if j == 0 else _TEXT, font=font)
            draw.text((x + 2, y + tile + 18), line2[:28], fill=_TEXT, font=font)
    out = Path(out)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out
