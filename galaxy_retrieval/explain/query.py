"""`gr explain` as one library call: query an index, explain the top-k, draw the sheet."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, QueryError
from ..framing import Framing
from ..model.preprocess import Preprocessing
from ..paths import check_output_file
from ..search.hits import Hit
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
    from ..catalog.images import read_image, to_uint8_rgb
    from ..search.query import _label_names
    from ..search.searcher import GalaxySearcher

    if method not in METHODS:
        raise ConfigError(f"unknown explanation method {method!r}; choices: {', '.join(METHODS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps={steps!r} must be a positive integer")
    if Path(out).is_dir():
        raise ConfigError(f"{out}: is a directory; give the PNG file to write")
    check_output_file(out)  # before minutes of attribution, not after
    t_open = time.perf_counter()
    if (image is None) == (object_id is None):
        raise QueryError("give the query as an image or as a catalog object id, one of them").resolved_by("image", "object_id")
    s = GalaxySearcher.open(index, checkpoint=checkpoint)
    own: int | None = None
    if object_id is not None:
        own = int(s.rows[s.position_of(object_id)])
        qname = str(object_id)
        qim = s.images_of([own])[0]
    elif isinstance(image, (str, Path)):
        qname = Path(image).name
        qim = read_image(image)
    else:
        qname = ""  # an array has no name: the caption is "query", not "query query"
        try:
            qim = to_uint8_rgb(np.asarray(image))
        except ValueError as e:
            raise QueryError(f"query image: {e}") from None
    hits = s.query(image=qim, k=k + (own is not None), refine=refine)
    if own is not None:  # searched by its own image, the object finds itself first
        hits = [replace(h, rank=i) for i, h in enumerate((h for h in hits if h.row != own), start=1)][:k]
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
    views = model_views([qim, *hit_images], emb.preprocessing)
    # the views are suppressed and framed already: resize and normalise them only
    x = replace(emb.preprocessing, suppress=None, framing=Framing())(views, emb.device)
    if method == "rollout":
        from .rollout import rollout_maps

        maps = rollout_maps(model, x)
        totals = maps.flatten(1).sum(dim=1)
        n = model.config.num_patches
        map_captions = [f"peak {float(m.max()) * n:.1f}× uniform" for m in maps]
        signed = False
        scale_label = "share of the embedding drawn from each patch (× uniform = 1/N)"
        shown = maps * n
        how = "attention rollout (heads averaged, ½ residual), mean-pooled"
    else:
        from .attribution import similarity_maps

        with torch.no_grad():
            e = model.embed(x).float()
        kk = len(hits)
        # (k + 1, k, D): the query is scored by its mean over the k hits; each hit against
        # the query (repeated k times, which leaves its mean score unchanged)
        targets = torch.cat([e[None, 1:], e[:1, None].expand(kk, kk, -1)])
        res = similarity_maps(model, x, targets, s.weights, steps=steps)
        maps = res.maps
        totals = maps.flatten(1).sum(dim=1)
        gain = res.scores - res.baseline_scores
        map_captions = [f"Σ {float(totals[0]):+.3f} (mean s − sky {float(gain[0]):.3f})"] + [
            f"Σ {float(t):+.3f} (s − sky {float(g):.3f})" for t, g in zip(totals[1:], gain[1:])
        ]
        signed = True
        scale_label = "contribution of each patch to the score s(query, hit)   red: pulls together · blue: against"
        shown = maps
        how = f"integrated gradients of s(q, r), {steps} steps, baseline: blank sky"

    names = _label_names(s) or {}
    captions = [(f"query {qname}".strip(), "")]
    for h in hits:
        lab = h.metadata.get("label")
        lab_s = "" if lab is None else (str(names.get(lab, lab)) if isinstance(lab, int) else str(lab))
        captions.append((f"#{h.rank} {h.object_id}", f"s={h.score:.3f} {lab_s}".rstrip()))
    g = model.config.grid
    fr = model.config.framing
    view = [f"central {fr.fraction:.0%}" if fr.mode == "fixed" and fr.fraction < 1.0 else ("framed on the galaxy" if fr.mode == "auto" else ""), "sources suppressed" if emb.suppress is not None else ""]
    view_s = f" · model's view: {', '.join(v for v in view if v)}" if any(view) else ""
    title = f"why these matched — {how} · {g}×{g} patches{view_s} · index {Path(s.path).name}"
    path = explain_sheet(
        views, captions, shown.cpu().numpy(), map_captions, out,
        signed=signed, scale_label=scale_label, title=title, tile=tile,
    )
    return ExplainResult(
        out=path,
        method=method,
        hits=hits,
        maps=maps.cpu().numpy().astype(np.float32),
        totals=totals.cpu().numpy().astype(np.float32),
        seconds=time.perf_counter() - t0,
        open_seconds=open_seconds,
    )
