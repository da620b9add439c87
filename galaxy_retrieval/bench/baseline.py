"""The exact side of a search benchmark: ground truth, the exact scan's time, the read bound.

Ground truth is :func:`~galaxy_retrieval.search.exact.exact_knn` over the whole catalog,
block by block (so a memory-mapped catalog larger than RAM works), for all queries in one
batch; it is cached in the work directory because at 1M × 2048 it takes minutes and does not
change between runs that only sweep search knobs.

The baseline a shortlist is compared with is the same kernel scanning every vector for one
query (what ``gr query --exact`` does), timed in the same run, interleaved repeat by repeat
with a plain parallel read of the same bytes, which is the memory-bandwidth bound any exact
scan has (the kernel runs at about 1.1× it: ``benchmarks/results/exact_kernel.json``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit, prange

from ..atomic import atomic_path
from ..errors import ConfigError
from ..progress import NULL_PROGRESS, Progress
from ..score import ScoreWeights
from ..search.exact import exact_knn, leave_out
from .datasets import BenchData

__all__ = ["GroundTruth", "ExactBaseline", "ground_truth", "measure_exact", "read_sum"]

_GT_BLOCK = 65_536


@njit(parallel=True, cache=True)
def read_sum(a):
    # An integer sum of every word: reads each byte once and does no float work.
    acc = np.uint64(0)
    for i in prange(a.shape[0]):
        s = np.uint64(0)
        r = a[i]
        for j in range(r.shape[0]):
            s += r[j]
        acc += s
    return acc


def _words(x: np.ndarray) -> np.ndarray:
    """``x`` (N, D) viewed as the widest unsigned integers its rows divide into."""
    a = np.asarray(x)
    row = a.shape[1] * a.itemsize
    word = next(w for w in (np.uint64, np.uint32, np.uint16, np.uint8) if row % np.dtype(w).itemsize == 0)
    return a.view(word)


@dataclass(frozen=True)
class GroundTruth:
    scores: np.ndarray  # (nq, k) float32, descending
    ids: np.ndarray  # (nq, k) int64 catalog rows
    seconds: float  # the batch exact scan that produced them (all queries at once)
    reused: bool  # loaded from the work directory's cache
    file: Path | None


def _counted(x: np.ndarray, handle: Any) -> Iterator[np.ndarray]:
    for s in range(0, x.shape[0], _GT_BLOCK):
        block = x[s : s + _GT_BLOCK]
        yield block
        handle.advance(block.shape[0])


def ground_truth(
    data: BenchData, k: int, workdir: str | Path, progress: Progress = NULL_PROGRESS, rebuild: bool = False
) -> GroundTruth:
    """Exact top-``k`` of every query by the weighted score (own row excluded), cached."""
    extra = 0 if data.exclude is None else 1
    kk = k + extra
    if kk > data.n:
        raise ConfigError(f"k={k} needs {kk} catalog vectors, the catalog has {data.n}")
    w = data.weights.as_tuple()
    tag = "w" + "-".join(f"{v:.6g}" for v in w)
    path = Path(workdir) / "groundtruth" / f"{data.key}-nq{len(data.queries)}-k{kk}-{tag}.npz"
    if path.is_file() and not rebuild:
        try:
            with np.load(path) as z:
                s, i, sec = z["scores"], z["ids"], float(z["seconds"])
            if s.shape == (len(data.queries), kk) and i.shape == s.shape:
                progress.log(f"ground truth: reusing {path} (computed in {sec:.1f} s)")
                i, s = leave_out(data.exclude, i, s, k=k)
                return GroundTruth(s, i, sec, True, path)
        except (OSError, ValueError, KeyError):
            pass
    t0 = time.perf_counter()
    with progress.task(
        f"exact ground truth ({len(data.queries):,} queries × {data.n:,} vectors)", total=data.n, unit="vec"
    ) as t:
        s, i = exact_knn(
            data.queries, _counted(data.vectors, t), kk, ScoreWeights(*w), block_rows=_GT_BLOCK, device="cpu"
        )
    sec = time.perf_counter() - t0
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, scores=s, ids=i, seconds=np.float64(sec))
    i, s = leave_out(data.exclude, i, s, k=k)
    return GroundTruth(s, i, sec, False, path)


@dataclass(frozen=True)
class ExactBaseline:
    """One query scanned exactly over the whole catalog, next to a plain read of it."""

    single_query_s: float  # median exact_knn time for one query (all threads)
    single_query_runs_s: list[float]
    read_s: float  # median time to read the catalog once (the bandwidth bound)
    read_runs_s: list[float]
    catalog_bytes: int
    batch_s_per_query: float  # the ground-truth batch scan, per query
    batch_queries: int
    batch_reused: bool  # the batch time comes from the cached ground truth's run
    threads: int

    @property
    def scan_over_read(self) -> float:
        return self.single_query_s / self.read_s

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["read_gb_per_s"] = self.catalog_bytes / self.read_s / 1e9
        d["scan_gb_per_s"] = self.catalog_bytes / self.single_query_s / 1e9
        d["scan_over_read"] = self.scan_over_read
        return d


def measure_exact(data: BenchData, k: int, gt: GroundTruth, repeats: int, threads: int) -> ExactBaseline:
    """Time the exact one-query scan and the plain read, interleaved, ``repeats`` times each
    after one untimed pass of both (which also pages the catalog in)."""
    words = _words(data.vectors)
    kk = k + (0 if data.exclude is None else 1)
    scans: list[float] = []
    reads: list[float] = []
    for r in range(repeats + 1):
        q = data.queries[r % len(data.queries)][None, :]
        t0 = time.perf_counter()
        read_sum(words)
        t1 = time.perf_counter()
        exact_knn(q, data.vectors, kk, data.weights, device="cpu")
        t2 = time.perf_counter()
        if r:
            reads.append(t1 - t0)
            scans.append(t2 - t1)
    nbytes = int(data.vectors.shape[0]) * data.vector_bytes
    return ExactBaseline(
        single_query_s=float(np.median(scans)),
        single_query_runs_s=[round(v, 6) for v in scans],
        read_s=float(np.median(reads)),
        read_runs_s=[round(v, 6) for v in reads],
        catalog_bytes=nbytes,
        batch_s_per_query=gt.seconds / len(data.queries),
        batch_queries=len(data.queries),
        batch_reused=gt.reused,
        threads=threads,
    )
