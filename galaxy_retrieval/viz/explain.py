"""The explanation sheet: plain images above, the same images with their heat maps below.

    ┌ title ─────────────────────────────────────────────────────┐
    │ [query]  [#1]  [#2] …  [#k]      plain, as the model sees them (centre square)
    │ captions: file / rank, object id, score, label
    │ [query]  [#1]  [#2] …  [#k]      with the patch map upsampled and overlaid
    │ captions: what the map sums to
    │ ══════ colour bar (one scale for every tile) ══════
    └────────────────────────────────────────────────────────────┘

One colour scale for all tiles, so a weak match looks weak. It ends at the 99th percentile
of |value| over all tiles: score attributions often pile onto one patch (a bright star),
which would otherwise leave every other tile unreadably faint; values beyond are drawn at
full colour and the colour bar's arrow ends say so. Non-negative maps (rollout) use
``inferno`` at α = 0.5; signed maps (score attributions) use ``berlin``, a diverging map
with a dark centre (Crameri's scientific colour maps), at α = 0.75·√(|value| / scale): a
patch that contributes nothing shows the plain image rather than a grey wash, and small
contributions still tint (the colour, not the opacity, is the value). Drawn with matplotlib's Agg canvas directly (no
pyplot, no global backend), at an exact pixel size (:func:`sheet_size`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["sheet_size", "explain_sheet", "overlay"]

TILE = 192
_PAD = 8
_TITLE = 28
_CAPTION = 34
_BAR = 52
_DPI = 100
_BG = (18 / 255, 18 / 255, 24 / 255)
_QUERY = "#ffc400"
_TEXT = "#ebebeb"
_SIGNED_ALPHA = 0.75
_SIGNED_CMAP = "berlin"
_ALPHA = 0.5


def sheet_size(n_tiles: int, tile: int = TILE) -> tuple[int, int]:
    """(width, height) in pixels of a sheet of ``n_tiles`` columns (query + hits)."""
    return _PAD + n_tiles * (tile + _PAD), _TITLE + 2 * (tile + _CAPTION) + _BAR


def _square(im: np.ndarray, tile: int) -> np.ndarray:
    """Centre square (what the model sees, ``model.preprocess``) at ``tile`` px, float [0, 1]."""
    from PIL import Image

    h, w = im.shape[:2]
    m = min(h, w)
    top, left = (h - m) // 2, (w - m) // 2
    sq = Image.fromarray(np.ascontiguousarray(im[top : top + m, left : left + m])).convert("RGB")
    return np.asarray(sq.resize((tile, tile), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0


def _upsample(grid_map: np.ndarray, size: int) -> np.ndarray:
    """(g, g) patch values → (size, size), bilinear between patch centres."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(grid_map, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()


def overlay(image01: np.ndarray, grid_map: np.ndarray, vmax: float, signed: bool) -> np.ndarray:
    """Blend a patch map over an image (float (S, S, 3) in [0, 1]) → float (S, S, 3)."""
    from matplotlib import colormaps

    up = _upsample(grid_map, image01.shape[0]) / max(vmax, 1e-30)
    if signed:
        t = np.clip(up, -1.0, 1.0)
        heat = colormaps[_SIGNED_CMAP]((t + 1.0) / 2.0)[..., :3]
        alpha = (_SIGNED_ALPHA * np.sqrt(np.abs(t)))[..., None]
    else:
        heat = colormaps["inferno"](np.clip(up, 0.0, 1.0))[..., :3]
        alpha = _ALPHA
    return (1.0 - alpha) * image01 + alpha * heat


def explain_sheet(
    images: Sequence[np.ndarray],
    captions: Sequence[tuple[str, str]],
    maps: np.ndarray,
    map_captions: Sequence[str],
    out: str | Path,
    *,
    signed: bool,
    scale_label: str,
    title: str,
    tile: int = TILE,
) -> Path:
    """Write the sheet for ``images`` (query first) and their (n, g, g) ``maps``; returns ``out``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = sheet_size(len(images), tile)
    fig = Figure(figsize=(size[0] / _DPI, size[1] / _DPI), dpi=_DPI, facecolor=_BG)
    FigureCanvasAgg(fig)
    maps = np.asarray(maps, dtype=np.float64)
    vmax, extend = _colour_scale(maps, signed)
    _title(fig, size, title)
    for j, im in enumerate(images):
        base = _square(np.asarray(im), tile)
        x = _PAD + j * (tile + _PAD)
        _tile(fig, size, x, 0, tile, base, captions[j], j == 0)
        _tile(fig, size, x, 1, tile, overlay(base, maps[j], vmax, signed), (map_captions[j], ""), j == 0)
    _colour_bar(fig, size, vmax, signed, extend, scale_label)
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI, facecolor=_BG)
    return out


def _colour_scale(maps: np.ndarray, signed: bool) -> tuple[float, str]:
    """(the end of the one colour scale: the 99th percentile of |value|, the colour bar's
    ``extend``: which ends the values go beyond)."""
    vmax = float(np.percentile(np.abs(maps), 99.0))
    if not vmax > 0:
        vmax = float(np.abs(maps).max()) or 1.0
    clipped_hi = bool(maps.max() > vmax)
    clipped_lo = bool(signed and maps.min() < -vmax)
    extend = {(False, False): "neither", (True, False): "max", (False, True): "min", (True, True): "both"}[
        (clipped_hi, clipped_lo)
    ]
    return vmax, extend


def _axes_at(fig: Figure, size: tuple[int, int], x: float, y_top: float, w: float, h: float) -> Any:
    """Axes on a pixel box (top-left origin) of a sheet of ``size`` pixels."""
    W, H = size  # → figure fraction (bottom-left origin)
    return fig.add_axes((x / W, 1.0 - (y_top + h) / H, w / W, h / H))


def _title(fig: Figure, size: tuple[int, int], title: str) -> None:
    # a narrow sheet (the query and one or two hits) cut the one-line title off: wrap it to
    # the sheet's width in at most two lines (a smaller font), ending in "…" if still longer
    W, H = size
    lines = textwrap.wrap(title, max(20, int((W - 2 * _PAD) / 6.6)))  # characters of 9-pt text that fit
    if len(lines) > 1:
        lines = textwrap.wrap(title, max(20, int((W - 2 * _PAD) / 6.0)), max_lines=2, placeholder=" …")
    fig.text(
        _PAD / W,
        1.0 - (_TITLE / 2) / H,
        "\n".join(lines),
        color=_TEXT,
        fontsize=9 if len(lines) == 1 else 8,
        va="center",
        ha="left",
        linespacing=1.1,
    )


def _tile(
    fig: Figure,
    size: tuple[int, int],
    x: float,
    row: int,
    tile: int,
    pic: np.ndarray,
    lines: Sequence[str],
    query: bool,
) -> None:
    """One tile at pixel column ``x`` of row ``row`` (0: plain, 1: with the map), captioned
    with ``lines``; the query's is outlined."""
    W, H = size
    y = _TITLE + row * (tile + _CAPTION)
    ax = _axes_at(fig, size, x, y, tile, tile)
    ax.imshow(np.clip(pic, 0.0, 1.0), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_color(_QUERY if query else _BG)
        side.set_linewidth(2.5 if query else 0.0)
    for li, text in enumerate(lines):
        if text:
            fig.text(
                (x + 2) / W,
                1.0 - (y + tile + 4 + li * 14) / H,
                _fit(text, tile),
                fontsize=8,
                color=_QUERY if query and li == 0 else _TEXT,
                va="top",
                ha="left",
            )


def _colour_bar(
    fig: Figure, size: tuple[int, int], vmax: float, signed: bool, extend: str, scale_label: str
) -> None:
    """The colour bar of the one scale, labelled with what the maps measure."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    W, H = size
    cax = _axes_at(fig, size, _PAD, H - _BAR + 6, min(W - 2 * _PAD, 480), 10)
    norm = Normalize(-vmax, vmax) if signed else Normalize(0.0, vmax)
    bar = fig.colorbar(
        ScalarMappable(norm, colormaps[_SIGNED_CMAP if signed else "inferno"]),
        cax=cax,
        orientation="horizontal",
        extend=extend,
    )
    bar.ax.tick_params(labelsize=7, colors=_TEXT, length=2)
    bar.outline.set_edgecolor(_TEXT)
    fig.text(
        _PAD / W,
        1.0 - (H - 8) / H,
        textwrap.shorten(scale_label, max(20, int((W - 2 * _PAD) / 6.0)), placeholder=" …"),
        color=_TEXT,
        fontsize=8,
        va="bottom",
        ha="left",
    )


def _fit(text: str, tile: int) -> str:
    """Shorten to what fits under a tile at 8 pt (about 5.6 px a character)."""
    room = max(8, int(tile / 5.6))
    return text if len(text) <= room else text[: room - 1] + "…"
