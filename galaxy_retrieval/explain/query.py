"""`gr explain` as one library call: query an index, explain the top-k, draw the sheet."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..catalog.images import read_image, to_uint8_rgb
from ..errors import ConfigError, QueryError
from ..framing import Framing
from ..model.preprocess import Preprocessing
from ..paths import check_output_file
from ..search.hits import Hit
from ..search.searcher import GalaxySearcher
from ..viz.explain import TILE, explain_sheet

__all__ = ["METHODS", "ExplainResult", "explain_query"]

METHODS = ("similarity", "rollout")


@dataclass(frozen=True)
class ExplainResult:
    out: Path  # the PNG written
    method: str
    hits: list[Hit]
    maps: np.ndarray  # (k + 1, grid, grid), query first: shares of the embedding (rollout) or score per patch
    totals: np.ndarray  # (k + 1,) what each map sums to (1 for rollout; s − s_sky for similarity)
    seconds: float  # explaining and drawing, opening the index excluded
    open_seconds: float  # opening the index, loading the model, the search


def model_views(images: list[np.ndarray], pre: Preprocessing) -> list[np.ndarray]:
    """What the model sees of each image, at full resolution: steps 1–2 of its
    preprocessing (sources suppressed when the checkpoint does so, then the square its
    framing cuts). The maps are drawn over these views, so they line up with the patches
    they describe."""
    return [np.ascontiguousarray(v) for v in pre.views([np.asarray(a) for a in images])]


@dataclass(frozen=True)
class _Query:
    image: np.ndarray  # uint8 RGB
    name: str  # shown in the caption ("" for an array)
    own_row: int | None  # the catalog row of a query given by object id: left out of its hits


def _query_image(s: GalaxySearcher, image: Any, object_id: str | None) -> _Query:
    if object_id is not None:
        own = int(s.rows[s.position_of(object_id)])
        return _Query(s.images_of([own])[0], str(object_id), own)
    if isinstance(image, (str, Path)):
        return _Query(read_image(image), Path(image).name, None)
    try:
        # an array has no name: the caption is "query", not "query query"
        return _Query(to_uint8_rgb(np.asarray(image)), "", None)
    except ValueError as e:
        raise QueryError(f"query image: {e}") from None


@dataclass(frozen=True)
class _Maps:
    """The patch maps of the query and its hits, and how the sheet shows them."""

    maps: torch.Tensor  # (k + 1, grid, grid), query first
    totals: torch.Tensor  # (k + 1,) what each map sums to
    shown: torch.Tensor  # the maps as drawn
    captions: list[str]  # one line under each map
    signed: bool
    scale_label: str
    how: str  # the method, in the title


def _rollout(model: Any, x: torch.Tensor) -> _Maps:
    from .rollout import rollout_maps

    maps = rollout_maps(model, x)
    n = model.config.num_patches
    return _Maps(
        maps=maps,
        totals=maps.flatten(1).sum(dim=1),
        shown=maps * n,
        captions=[f"peak {float(m.max()) * n:.1f}× uniform" for m in maps],
        signed=False,
        scale_label="share of the embedding drawn from each patch (× uniform = 1/N)",
        how="attention rollout (heads averaged, ½ residual), mean-pooled",
    )


def _similarity(model: Any, x: torch.Tensor, weights: Any, steps: int) -> _Maps:
    from .attribution import similarity_maps

    with torch.no_grad():
        e = model.embed(x).float()
    kk = len(x) - 1
    # (k + 1, k, D): the query is scored by its mean over the k hits; each hit against
    # the query (repeated k times, which leaves its mean score unchanged)
    targets = torch.cat([e[None, 1:], e[:1, None].expand(kk, kk, -1)])
    res = similarity_maps(model, x, targets, weights, steps=steps)
    maps = res.maps
    totals = maps.flatten(1).sum(dim=1)
    gain = res.scores - res.baseline_scores
    captions = [f"Σ {float(totals[0]):+.3f} (mean s − sky {float(gain[0]):.3f})"] + [
        f"Σ {float(t):+.3f} (s − sky {float(g):.3f})" for t, g in zip(totals[1:], gain[1:])
    ]
    return _Maps(
        maps=maps,
        totals=totals,
        shown=maps,
        captions=captions,
        signed=True,
        scale_label="contribution of each patch to the score s(query, hit)   red: pulls together · blue: against",
        how=f"integrated gradients of s(q, r), {steps} steps, baseline: blank sky",
    )


def _captions(s: GalaxySearcher, q: _Query, hits: list[Hit]) -> list[tuple[str, str]]:
    names = s.label_names or {}
    captions = [(f"query {q.name}".strip(), "")]
    for h in hits:
        lab = h.metadata.get("label")
        lab_s = "" if lab is None else (str(names.get(lab, lab)) if isinstance(lab, int) else str(lab))
        captions.append((f"#{h.rank} {h.object_id}", f"s={h.score:.3f} {lab_s}".rstrip()))
    return captions


def _title(s: GalaxySearcher, how: str) -> str:
    emb = s.embedder
    g = emb.model.config.grid
    fr = emb.model.config.framing
    view = [
        f"central {fr.fraction:.0%}"
        if fr.mode == "fixed" and fr.fraction < 1.0
        else ("framed on the galaxy" if fr.mode == "auto" else ""),
        "sources suppressed" if emb.suppress is not None else "",
    ]
    view_s = f" · model's view: {', '.join(v for v in view if v)}" if any(view) else ""
    return f"why these matched — {how} · {g}×{g} patches{view_s} · index {Path(s.path).name}"


def _check_arguments(method: str, steps: int, out: str | Path) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown explanation method {method!r}; choices: {', '.join(METHODS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps={steps!r} must be a positive integer")
    if Path(out).is_dir():
        raise ConfigError(f"{out}: is a directory; give the PNG file to write")
    check_output_file(out)  # before minutes of attribution, not after


def explain_query(
    index: str | Path,
    image: Any,
    out: str | Path,
    *,
    k: int = 6,
    method: str = "similarity",
    steps: int = 32,
    refine: int = 10,
    checkpoint: str | Path | None = None,
    tile: int = TILE,
    object_id: str | None = None,
) -> ExplainResult:
    """Find the k nearest neighbours of ``image`` (a path or uint8 array) in ``index`` and
    write a PNG showing, for the query and each hit, which patches the match rests on.

    ``method="similarity"`` (default): integrated gradients of the score s(q, r) — each
    hit's map is its patches' share of s(q, r); the query's map is its share of the mean
    score over the k hits (:mod:`.attribution`). ``method="rollout"``: attention rollout,
    where each image's embedding draws from, whatever it is compared with
    (:mod:`.rollout`). ``steps``: integration steps of the similarity method (32 keeps
    the maps' sums within about 0.02 of s − s_sky on the demo; 16 was off by up to 0.06).
    ``object_id`` (with ``image=None``): the query is that catalog object, which is then
    left out of its own hits."""
    _check_arguments(method, steps, out)
    t_open = time.perf_counter()
    if (image is None) == (object_id is None):
        raise QueryError("give the query as an image or as a catalog object id, one of them").resolved_by(
            "image", "object_id"
        )
    s = GalaxySearcher.open(index, checkpoint=checkpoint)
    q = _query_image(s, image, object_id)
    hits = s.query(image=q.image, k=k + (q.own_row is not None), refine=refine)
    if q.own_row is not None:  # searched by its own image, the object finds itself first
        hits = [replace(h, rank=i) for i, h in enumerate((h for h in hits if h.row != q.own_row), start=1)][
            :k
        ]
    hit_images = s.images_of([h.row for h in hits])
    open_seconds = time.perf_counter() - t_open

    t0 = time.perf_counter()
    emb = s.embedder
    model = emb.model
    if method == "rollout" and model.config.backbone != "vit":
        raise ConfigError(
            f"attention rollout needs a transformer; this index's model is the {model.config.backbone} backbone: "
            "use the similarity method"
        )
    views = model_views([q.image, *hit_images], emb.preprocessing)
    # the views are suppressed and framed already: resize and normalise them only
    x = replace(emb.preprocessing, suppress=None, framing=Framing())(views, emb.device)
    m = _rollout(model, x) if method == "rollout" else _similarity(model, x, s.weights, steps)
    path = explain_sheet(
        views,
        _captions(s, q, hits),
        m.shown.cpu().numpy(),
        m.captions,
        out,
        signed=m.signed,
        scale_label=m.scale_label,
        title=_title(s, m.how),
        tile=tile,
    )
    return ExplainResult(
        out=path,
        method=method,
        hits=hits,
        maps=m.maps.cpu().numpy().astype(np.float32),
        totals=m.totals.cpu().numpy().astype(np.float32),
        seconds=time.perf_counter() - t0,
        open_seconds=open_seconds,
    )
