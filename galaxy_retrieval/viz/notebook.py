"""Hits as people look at them in a notebook or a report: thumbnails cropped to the galaxy,
a grid mosaic with readable captions, and an HTML table (``Hits._repr_html_``)."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["HitLike", "thumbnail", "grid_mosaic", "hits_html", "hit_caption"]


class HitLike(Protocol):
    """What a caption or a table row shows of a hit (``search.hits.Hit`` is one): declared
    here so that drawing depends on no search code, and search imports viz, not both ways."""

    @property
    def rank(self) -> int: ...
    @property
    def object_id(self) -> str: ...
    @property
    def row(self) -> int: ...
    @property
    def score(self) -> float: ...
    @property
    def percentile(self) -> float | None: ...
    @property
    def metadata(self) -> dict[str, Any]: ...


_BG = (18, 18, 24)
_QUERY = (255, 196, 0)
_TEXT = (235, 235, 235)
_DIM = (170, 170, 180)
# thumbnails show the framed galaxy with some sky around it: the model's framing box (the
# Petrosian square) widened by this factor, so a small galaxy is not a speck in a 424-px frame
_THUMB_MARGIN = 2.5


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def thumbnail(image: np.ndarray, size: int = 160, crop: bool = True) -> Image.Image:
    """A ``size``-pixel square of ``image``: cropped around the central galaxy (the same
    Petrosian framing the model uses, with a wider margin) when ``crop``, else the whole frame."""
    from ..catalog.images import to_uint8_rgb

    a = to_uint8_rgb(np.asarray(image))
    if crop:
        from ..framing import Framing, frame_box

        try:
            a = frame_box(a, Framing(mode="auto", margin=_THUMB_MARGIN)).cut(a)
        except Exception:  # framing is a nicety here: any failure shows the whole frame
            pass
    return (
        Image.fromarray(np.ascontiguousarray(a)).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    )


def _label_name(label: object, names: dict[int, str] | None) -> str:
    if label is None:
        return ""
    if names and isinstance(label, int) and label in names:
        return names[label]
    return str(label)


def hit_caption(h: HitLike, names: dict[int, str] | None = None) -> tuple[str, str]:
    """Two caption lines of a hit: rank and id; score, percentile and label."""
    pct = "" if h.percentile is None else f" p{h.percentile:.2f}"
    return (
        f"#{h.rank} {h.object_id}",
        f"s={h.score:.3f}{pct} {_label_name(h.metadata.get('label'), names)}".rstrip(),
    )


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def grid_mosaic(
    tiles: Sequence[tuple[np.ndarray, str, str]],
    ncols: int = 5,
    tile: int = 200,
    highlight_first: bool = False,
    crop: bool = True,
    title: str | None = None,
) -> Image.Image:
    """A grid of (image, caption line 1, caption line 2) tiles, ``ncols`` per row, captions
    in a 16-px font under each tile (readable at 100 %). ``highlight_first`` outlines the
    first tile (the query)."""
    n = len(tiles)
    cols = max(1, min(ncols, n))
    rows = max(1, math.ceil(n / cols))
    pad, fs = 8, max(12, tile // 12)
    cap = 2 * fs + 10
    top = (fs + 14) if title else 0
    W = pad + cols * (tile + pad)
    H = top + pad + rows * (tile + cap + pad)
    sheet = Image.new("RGB", (W, H), _BG)
    draw = ImageDraw.Draw(sheet)
    font = _font(fs)
    if title:
        draw.text((pad, 6), _fit(draw, title, _font(fs + 2), W - 2 * pad), fill=_TEXT, font=_font(fs + 2))
    for i, (im, line1, line2) in enumerate(tiles):
        x = pad + (i % cols) * (tile + pad)
        y = top + pad + (i // cols) * (tile + cap + pad)
        sheet.paste(thumbnail(im, tile, crop), (x, y))
        first = highlight_first and i == 0
        if first:
            draw.rectangle([x - 3, y - 3, x + tile + 2, y + tile + 2], outline=_QUERY, width=3)
        draw.text(
            (x + 1, y + tile + 3),
            _fit(draw, line1, font, tile - 2),
            fill=_QUERY if first else _TEXT,
            font=font,
        )
        draw.text((x + 1, y + tile + 5 + fs), _fit(draw, line2, font, tile - 2), fill=_DIM, font=font)
    return sheet


def _png_b64(im: Image.Image) -> str:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def hits_html(hits: Sequence[HitLike], searcher: Any = None, thumb: int = 96) -> str:
    """An HTML table of hits: thumbnail (when the searcher can read the catalog's images),
    rank, object id, score, percentile, label and the other metadata."""
    names = getattr(searcher, "label_names", None) if searcher is not None else None
    images: list[Any] = [None] * len(hits)
    note = ""
    if searcher is not None and len(hits):
        try:
            images = list(searcher.images_of([h.row for h in hits]))
        except Exception as e:  # no catalog beside the index: a table without pictures
            note = f"<p><i>no thumbnails: {html.escape(str(e))}</i></p>"
    meta_cols = list(dict.fromkeys(k for h in hits for k in h.metadata if k != "label"))
    head = ["", "#", "object id", "score", "percentile", "label", *meta_cols]
    rows = []
    for h, im in zip(hits, images):
        img = (
            ""
            if im is None
            else f'<img src="data:image/png;base64,{_png_b64(thumbnail(im, thumb))}" width="{thumb}" height="{thumb}"/>'
        )
        cells = [
            img,
            str(h.rank),
            html.escape(h.object_id),
            f"{h.score:.4f}",
            "" if h.percentile is None else f"{h.percentile:.2f}",
            html.escape(_label_name(h.metadata.get("label"), names)),
        ]
        for c in meta_cols:
            v = h.metadata.get(c)
            cells.append("" if v is None else html.escape(f"{v:.6g}" if isinstance(v, float) else str(v)))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    query = getattr(hits, "query", None)
    caption = (
        f"<caption>{len(hits)} hits" + (f" of {html.escape(str(query))}" if query else "") + "</caption>"
    )
    return (
        note
        + f'<table class="galaxy-hits">{caption}<thead><tr>'
        + "".join(f"<th>{html.escape(c)}</th>" for c in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
