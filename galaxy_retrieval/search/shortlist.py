"""The approximate path of a query: FAISS shortlist, exact rerank, the query's own row left out.

:class:`~galaxy_retrieval.search.searcher.GalaxySearcher` answers non-exact queries with
:func:`shortlist_rerank`, and ``gr rerank-benchmark`` times the same function, so the
benchmark measures the code users run.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..index.candidates import shortlist_vectors
from ..score import ScoreWeights
from .exact import Device, rerank
from .topk import leave_out

__all__ = ["shortlist_rerank"]


def shortlist_rerank(
    index: Any,
    vectors: np.ndarray,
    xq: np.ndarray,
    k: int,
    refine: int,
    weights: ScoreWeights = ScoreWeights(),
    *,
    metric: str = "l2",
    params: Any = None,
    exclude: np.ndarray | None = None,
    device: Device = "auto",
    timings: dict[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k of each query: FAISS returns ``k × refine`` candidates (``params``: per-call
    search parameters, e.g. nprobe or an ID selector), the exact score of
    :mod:`galaxy_retrieval.search.exact` orders them, and ``exclude[i]`` (a row, −1 for none)
    is left out of query i's list. Returns (scores (nq, k), rows (nq, k), terms (nq, k, 3)),
    padded with −inf / −1 / NaN where fewer candidates came back.

    ``timings``, if given, receives the seconds spent in the FAISS search (``"shortlist"``)
    and in all (``"total"``), and how many candidates FAISS returned (``"candidates"``)."""
    t0 = time.perf_counter()
    kk = k + (0 if exclude is None else 1)
    m = max(1, min(int(index.ntotal), kk * refine))
    _, cand = index.search(shortlist_vectors(xq, metric), m, params=params)
    t1 = time.perf_counter()
    scores, rows, terms = rerank(xq, cand.astype(np.int64, copy=False), vectors, kk, weights, device=device)
    if exclude is not None:
        rows, scores, terms = leave_out(exclude, rows, scores, terms, k=k)
    if timings is not None:
        timings["shortlist"] = t1 - t0
        timings["candidates"] = float((cand >= 0).sum())
        timings["total"] = time.perf_counter() - t0
    return scores, rows, terms
