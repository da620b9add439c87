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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import atomic_path
from ..errors import QueryError
from ..progress import NULL_PROGRESS, Progress

if TYPE_CHECKING:
    from .hits import Hits
    from .searcher import GalaxySearcher

__all__ = ["outlier_scores", "outliers", "cache_name", "find_outliers", "OutliersResult"]

_BLOCK = 2048  # queries per FAISS search: one call's threads stay busy, memory stays small


def cache_name(version: int, k: int, refine: int) -> str:
    return f"outliers-v{version}-k{k}-r{refine}.npy"


def _check(s: "GalaxySearcher", k: int, refine: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise QueryError(f"k must be a whole number ≥ 1, got {k!r}")
    if k > len(s) - 1:
        raise QueryError(f"k={k} needs at least {k + 1} objects; the index has {len(s)}")
    if not isinstance(refine, int) or refine < 1:
        raise QueryError(f"refine must be a whole number ≥ 1, got {refine!r}")


def outlier_scores(s: "GalaxySearcher", k: int = 50, refine: int = 1, progress: Progress = NULL_PROGRESS, cache: bool = True) -> np.ndarray:
    """Score of every object to its k-th nearest neighbour, float32 (count,), NaN for deleted
    rows. Read from the index's cache when there, else computed (and cached when ``cache``
    and the directory is writable)."""
    _check(s, k, refine)
    path = Path(s.path) / cache_name(s.manifest.version, k, refine)
    if cache and path.is_file():
        try:
            got = np.load(path, allow_pickle=False)
            if got.shape == (s.manifest.count,) and got.dtype == np.float32:
                return got
        except (OSError, ValueError):  # a damaged cache is recomputed, not an error
            pass
    out = np.full(s.manifest.count, np.nan, np.float32)
    live = np.flatnonzero(~s._dead)
    with progress.task(f"{k}-th neighbour of every object", total=len(live), unit="obj") as t:
        for lo in range(0, len(live), _BLOCK):
            pos = live[lo : lo + _BLOCK]
            xq = np.asarray(s.vectors[pos], dtype=np.float32)
            sc, _, _ = s.search_vectors(xq, k=k, refine=refine, exclude=pos)
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


def outliers(
    s: "GalaxySearcher", n: int = 20, k: int = 50, refine: int = 1, where: str | None = None, progress: Progress = NULL_PROGRESS, cache: bool = True
) -> "Hits":
    """The ``n`` objects least like any other (lowest score to their k-th neighbour), strangest
    first. A hit's ``score`` is that k-th-neighbour score, its terms those of that pair, its
    percentile that score's among random pairs; ``where`` limits the answer (not the
    neighbours) to the rows matching a metadata filter."""
    from .hits import Hits

    if not isinstance(n, int) or n < 1:
        raise QueryError(f"n must be a whole number ≥ 1, got {n!r}")
    sel = s.select(where) if where is not None else None
    scores = s.outlier_scores(k, refine, progress, cache)  # the searcher's: one pass at a time
    cand = np.flatnonzero(np.isfinite(scores)) if sel is None else sel[np.isfinite(scores[sel])]
    order = cand[np.lexsort((cand, scores[cand]))][:n]  # lowest first, ties → lower position
    if len(order) == 0:
        return Hits(searcher=s, query=f"outliers (k={k})")
    # the terms of each outlier's k-th pair, for the table (its neighbours, searched again)
    xq = np.asarray(s.vectors[order], dtype=np.float32)
    sc, _, terms = s.search_vectors(xq, k=k, refine=refine, exclude=order)
    hits = s._hits(sc[:, k - 1][None, :], order[None, :], terms[:, k - 1][None, :])
    hits.query = f"outliers: lowest score to the {k}-th neighbour" + (f" where {where}" if where else "")
    return hits



@dataclass(frozen=True)
class OutliersResult:
    hits: "Hits"
    k: int
    seconds: float  # the scores: computed, or read from the cache
    cached: bool  # whether they were read from the cache
    mosaic: Path | None = None
    output: Path | None = None


def find_outliers(
    index: str | Path,
    n: int = 20,
    k: int = 50,
    refine: int = 1,
    where: str | None = None,
    mosaic: str | Path | None = None,
    output: str | Path | None = None,
    output_format: str | None = None,
    progress: Progress = NULL_PROGRESS,
) -> OutliersResult:
    """``gr outliers`` as one call: open the index, rank its objects by their k-th-neighbour
    score, write the mosaic (a grid, strangest first) and the table if asked."""
    import time

    from ..paths import check_output_file
    from .hits import check_hits_path, hits_table, write_hits
    from .searcher import GalaxySearcher

    if mosaic is not None:
        check_output_file(Path(mosaic))
    if output is not None:
        check_hits_path(output, output_format)
    s = GalaxySearcher.open(index)
    if where is not None:
        s.select(where)  # a bad filter is refused before the long pass
    _check(s, k, refine)
    cached = (Path(s.path) / cache_name(s.manifest.version, k, refine)).is_file()
    t0 = time.perf_counter()
    hits = s.outliers(n, k, refine=refine, where=where, progress=progress)
    seconds = time.perf_counter() - t0
    m = None
    if mosaic is not None and len(hits):
        img = s.mosaic(hits)
        with atomic_path(Path(mosaic)) as tmp:
            img.save(tmp, format="PNG")
        m = Path(mosaic)
    out = write_hits(output, hits_table([hits.query or "outliers"], [hits]), output_format) if output is not None else None
    return OutliersResult(hits, k, seconds, cached, m, out)
