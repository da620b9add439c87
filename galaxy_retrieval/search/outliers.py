"""`gr outliers` as one library call: open the index, rank its objects by their score to the
k-th nearest neighbour (:mod:`~galaxy_retrieval.search.kth_neighbour`), write what was asked."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_path
from ..paths import check_output_file
from ..progress import NULL_PROGRESS, Progress
from .hits import Hits, check_hits_path, hits_table, write_hits
from .kth_neighbour import cache_name, check_k
from .searcher import GalaxySearcher

__all__ = ["find_outliers", "OutliersResult"]


@dataclass(frozen=True)
class OutliersResult:
    hits: Hits
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
    if mosaic is not None:
        check_output_file(Path(mosaic))
    if output is not None:
        check_hits_path(output, output_format)
    s = GalaxySearcher.open(index)
    if where is not None:
        s.select(where)  # a bad filter is refused before the long pass
    check_k(s, k, refine)
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
    out = (
        write_hits(output, hits_table([hits.query or "outliers"], [hits]), output_format)
        if output is not None
        else None
    )
    return OutliersResult(hits, k, seconds, cached, m, out)
