"""The catalog's strangest galaxies: the objects least like any other.

Each object's outlier score is its similarity to its k-th nearest neighbour (the project's
score, exact, over the FAISS shortlist of k × refine candidates): an object in a crowd of
look-alikes scores high, one with few or no look-alikes scores low. This is the anomaly
search by which Stein et al. (2021) and Walmsley et al. (2023) found strong lenses and mergers
in self-supervised embeddings: rank by the distance to the k-th neighbour, look at the top.
``--least`` answers another question (least like one query).

The scores of all objects take one k-NN search per object, so they are computed once per
index version and kept beside the index (``outliers-vN-kK-rR.npy``, written atomically);
any write to the index (add, delete, compact, reindex) removes them with the old version.

These functions take the searcher as what they use of it (:class:`NeighbourSearch`), so the
searcher imports this module and not the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..atomic import atomic_path
from ..errors import QueryError
from ..index.manifest import Manifest
from ..progress import NULL_PROGRESS, Progress
from .hits import Hits
from .options import SearchOptions

__all__ = ["NeighbourSearch", "cache_name", "check_k", "check_n", "outlier_scores", "rank_outliers"]

_BLOCK = 2048  # queries per FAISS search: one call's threads stay busy, memory stays small


class NeighbourSearch(Protocol):
    """What the outlier search uses of a :class:`~galaxy_retrieval.search.searcher.GalaxySearcher`."""

    path: Path
    manifest: Manifest
    vectors: Any
    deleted: np.ndarray

    def __len__(self) -> int: ...

    def select(self, where: str) -> np.ndarray: ...

    def search_vectors(
        self, xq: np.ndarray, options: SearchOptions | None = None, *, exclude: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def make_hits(
        self, scores: np.ndarray, pos: np.ndarray, terms: np.ndarray, percentiles: bool = True
    ) -> Hits: ...


def cache_name(version: int, k: int, refine: int) -> str:
    return f"outliers-v{version}-k{k}-r{refine}.npy"


def check_k(s: NeighbourSearch, k: int, refine: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise QueryError(f"k must be a whole number ≥ 1, got {k!r}")
    if k > len(s) - 1:
        raise QueryError(f"k={k} needs at least {k + 1} objects; the index has {len(s)}")
    if not isinstance(refine, int) or refine < 1:
        raise QueryError(f"refine must be a whole number ≥ 1, got {refine!r}")


def outlier_scores(
    s: NeighbourSearch, k: int = 50, refine: int = 1, progress: Progress = NULL_PROGRESS, cache: bool = True
) -> np.ndarray:
    """Score of every object to its k-th nearest neighbour, float32 (count,), NaN for deleted
    rows. Read from the index's cache when there, else computed (and cached when ``cache``
    and the directory is writable)."""
    check_k(s, k, refine)
    path = Path(s.path) / cache_name(s.manifest.version, k, refine)
    if cache and path.is_file():
        try:
            got = np.load(path, allow_pickle=False)
            if got.shape == (s.manifest.count,) and got.dtype == np.float32:
                return got
        except (OSError, ValueError):  # a damaged cache is recomputed, not an error
            pass
    out = np.full(s.manifest.count, np.nan, np.float32)
    live = np.setdiff1d(np.arange(s.manifest.count), s.deleted)
    opts = SearchOptions(k=k, refine=refine)
    with progress.task(f"{k}-th neighbour of every object", total=len(live), unit="obj") as t:
        for lo in range(0, len(live), _BLOCK):
            pos = live[lo : lo + _BLOCK]
            xq = np.asarray(s.vectors[pos], dtype=np.float32)
            sc, _, _ = s.search_vectors(xq, opts, exclude=pos)
            out[pos] = sc[:, k - 1]
            t.advance(len(pos))
    if cache:
        try:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, out, allow_pickle=False)
        except OSError:  # a read-only index: the scores are still returned, only not kept
            pass
    return out


def check_n(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise QueryError(f"n must be a whole number ≥ 1, got {n!r}")


def rank_outliers(
    s: NeighbourSearch,
    scores: np.ndarray,
    n: int,
    k: int,
    refine: int = 1,
    where: str | None = None,
    sel: np.ndarray | None = None,
) -> Hits:
    """The ``n`` objects least like any other (lowest of ``scores``, their score to the k-th
    neighbour), strangest first. A hit's ``score`` is that k-th-neighbour score, its terms
    those of that pair, its percentile that score's among random pairs; ``where`` (selecting
    the positions ``sel``) limits the answer, not the neighbours, to the rows matching a
    metadata filter."""
    check_n(n)
    if where is not None and sel is None:
        sel = s.select(where)
    cand = np.flatnonzero(np.isfinite(scores)) if sel is None else sel[np.isfinite(scores[sel])]
    order = cand[np.lexsort((cand, scores[cand]))][:n]  # lowest first, ties → lower position
    if len(order) == 0:
        return Hits(searcher=s, query=f"outliers (k={k})")
    # the terms of each outlier's k-th pair, for the table (its neighbours, searched again)
    xq = np.asarray(s.vectors[order], dtype=np.float32)
    sc, _, terms = s.search_vectors(xq, SearchOptions(k=k, refine=refine), exclude=order)
    hits = s.make_hits(sc[:, k - 1][None, :], order[None, :], terms[:, k - 1][None, :])
    hits.query = f"outliers: lowest score to the {k}-th neighbour" + (f" where {where}" if where else "")
    return hits
