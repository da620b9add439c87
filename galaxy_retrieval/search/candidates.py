"""The candidates of a query: which rows come back, and in what order, before they are hits.

:func:`candidates` finds the top-kk (bottom-kk) rows of each query among a selection: an
exact scan when asked for (``exact``, ``order="least"``) or when the selection is small
enough to read quickly (``exact_scan_elements``), otherwise the FAISS shortlist with that
call's nprobe / efSearch as its search parameters, reranked exactly and refilled from the
exact scan of the selection where FAISS returned too few (:mod:`~galaxy_retrieval.search.selection`).
:func:`fill_top_k` asks it for more until each query has its k rows, after the query object
is left out and hits too close on the sky to a better one are dropped.

These functions take the searcher as what they use of it (:class:`CandidateSource`), so the
searcher imports this module and not the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from ..index.candidates import search_params
from ..index.manifest import Manifest
from ..score import ScoreWeights
from .exact import rerank
from .options import SearchOptions
from .selection import Selection
from .sky import spread
from .topk import least_first, leave_out

__all__ = ["CandidateSource", "Result", "candidates", "fill_top_k", "scan"]

Result = tuple[np.ndarray, np.ndarray, np.ndarray]  # scores (nq, k), positions (nq, k), terms (nq, k, 3)


class CandidateSource(Protocol):
    """What the candidate search uses of a :class:`~galaxy_retrieval.search.searcher.GalaxySearcher`."""

    manifest: Manifest
    vectors: Any
    weights: ScoreWeights
    index: Any
    exact_scan_elements: int

    def search_knobs(
        self, options: SearchOptions | None = None, matched: int | None = None
    ) -> tuple[int | None, int | None]: ...


def scan(
    s: CandidateSource, xq: np.ndarray, k: int, positions: np.ndarray | None, least: bool = False
) -> np.ndarray:
    """Exact top-k (bottom-k) positions, over every row or over ``positions`` only."""
    from .exact import exact_knn

    if positions is None:
        return exact_knn(xq, s.vectors, k, s.weights, least=least)[1]
    step = max(1, (1 << 24) // max(1, s.manifest.dim))  # ~64 MB of float32 per block
    blocks = (s.vectors[positions[lo : lo + step]] for lo in range(0, len(positions), step))
    return exact_knn(xq, blocks, k, s.weights, ids=positions, least=least)[1]


def candidates(
    s: CandidateSource, xq: np.ndarray, kk: int, opts: SearchOptions, sel: Selection | None, metric: str
) -> Result:
    """Top-kk (bottom-kk with ``order="least"``) of each query among the selection, reranked exactly."""
    from .shortlist import shortlist_rerank

    allowed = None if sel is None else sel.positions
    if opts.least:
        # no index shortlists the farthest objects: scan, then score the kk found
        return least_first(*rerank(xq, scan(s, xq, kk, allowed, least=True), s.vectors, kk, s.weights))
    if opts.exact or (sel is not None and len(sel) * s.manifest.dim <= s.exact_scan_elements):
        return rerank(xq, scan(s, xq, kk, allowed).astype(np.int64), s.vectors, kk, s.weights)
    # the one place a call's nprobe / efSearch reach FAISS: its search parameters
    nprobe, ef_search = s.search_knobs(opts, None if sel is None else len(sel))
    params = search_params(
        s.index, nprobe=nprobe, ef_search=ef_search, sel=None if sel is None else sel.selector()
    )
    # a filter's selection caps the candidates FAISS can return
    refine = opts.refine if sel is None else min(opts.refine, max(1, -(-len(sel) // kk)))
    scores, pos, terms = shortlist_rerank(
        s.index, s.vectors, xq, kk, refine, s.weights, metric=metric, params=params
    )
    if sel is not None:
        short = (pos >= 0).sum(axis=1) < kk
        if short.any():  # refill from the exact scan of the selection
            xr = xq[short]
            scores[short], pos[short], terms[short] = rerank(
                xr, scan(s, xr, kk, sel.positions), s.vectors, kk, s.weights
            )
    return scores, pos, terms


def fill_top_k(
    find: Callable[[np.ndarray, int], Result],
    xq: np.ndarray,
    k: int,
    avail: int,
    *,
    exclude: Sequence[int] | None = None,
    sky: Any = None,
    positions: Sequence[tuple[float, float] | None] | None = None,
    min_separation_arcsec: float | None = None,
) -> Result:
    """Top-k of each query from the candidates ``find(xq, kk)`` returns, ``avail`` rows at
    most: ``exclude[i]`` left out of query i's list and, with the catalog's ``sky`` positions,
    a hit within ``min_separation_arcsec`` of the query (``positions[i]``) or of a better hit
    dropped; a query left with fewer than k asks for 4× as many candidates, until ``avail``."""
    nq = len(xq)
    out_s = np.full((nq, k), -np.inf, np.float32)
    out_p = np.full((nq, k), -1, np.int64)
    out_t = np.full((nq, k, 3), np.nan, np.float32)
    todo = np.arange(nq)
    extra = 1 if exclude is not None else 0
    kk = min(avail, k + extra if sky is None else 2 * (k + extra))
    while len(todo) and kk > 0:
        scores, pos, terms = find(xq[todo], kk)
        if exclude is not None:
            pos, scores, terms = leave_out(
                np.asarray(exclude, np.int64)[todo], pos, scores, terms, k=pos.shape[1]
            )
        short = []
        for j, i in enumerate(todo):
            keep = np.flatnonzero(pos[j] >= 0)
            if sky is not None:
                keep = spread(
                    keep,
                    pos[j],
                    sky,
                    None if positions is None else positions[i],
                    min_separation_arcsec,
                )  # type: ignore[arg-type]
                if len(keep) < k and kk < avail:
                    short.append(i)  # dropped too many: look further down the list
                    continue
            keep = keep[:k]
            n = len(keep)
            out_s[i, :n], out_p[i, :n], out_t[i, :n] = scores[j, keep], pos[j, keep], terms[j, keep]
        todo = np.asarray(short, np.int64)
        kk = min(avail, kk * 4)
    return out_s, out_p, out_t
