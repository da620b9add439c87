"""Exact search by the paper's score: ground truth, ``--exact``, evaluation and the reranker.

The score is computed by :mod:`galaxy_retrieval.search.kernels` (numba on the CPU, torch on a
GPU) and lists are cut by :func:`galaxy_retrieval.search.topk.select`.

Ranking is deterministic: score descending, ties broken by the lower row id (a compiled
bounded heap per query, so selecting from a block costs a few ns per row). ``exact_knn``
scans ``xb`` ``block_rows`` rows at a time and keeps a running top-k, so ``xb`` may be a
``np.memmap`` (or any sliceable (N, D) array such as an HDF5 dataset) larger than RAM, or an
iterable of (n_i, D) blocks in row order; this is faiss' ``knn_ground_truth`` pattern.

``device="auto"`` runs on CUDA through torch when ``torch.cuda.is_available()`` and the scan
is big enough (nq·N·D ≥ :data:`GPU_MIN_WORK`): one query against host-resident vectors is
bound by the host→device copy, which is slower than the CPU's own memory bandwidth, so small
and single-query scans stay on the CPU. ``device="cuda"`` forces the GPU, ``"cpu"`` the kernel.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cache
from typing import Literal

import numpy as np

from ..errors import ConfigError, QueryError
from ..score import ScoreWeights
from .kernels import ROW_TILE, pairs, scan
from .topk import leave_out, select

__all__ = [
    "score_terms",
    "score_matrix",
    "exact_knn",
    "rerank",
    "warmup",
    "advise_random",
    "leave_out",
    "Device",
    "ROW_TILE",
    "GPU_MIN_WORK",
]

Device = Literal["auto", "cpu", "cuda"]

#: ``device="auto"`` uses CUDA only from this much work (nq × N × D multiply-adds) up.
GPU_MIN_WORK = 1 << 31

# Scores of one (query chunk × row block) are held in memory at once; exact_knn splits the
# queries so that this many bytes are not exceeded.
_SCORE_BUDGET_BYTES = 256 << 20


# --------------------------------------------------------------------------- inputs


def _prep_queries(xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = np.asarray(xq)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] == 0:
        raise QueryError(f"query vectors must be a (nq, D) array, got shape {np.shape(xq)}")
    q = np.ascontiguousarray(q, dtype=np.float32)
    if not np.isfinite(q).all():
        raise QueryError("query vectors contain NaN or infinite values")
    return q, np.linalg.norm(q.astype(np.float64), axis=1)


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise QueryError(f"k must be an integer ≥ 1, got {k!r}")
    return int(k)


def _rows(block: object, dim: int) -> np.ndarray:
    """A C-contiguous float32 or float16 (n, D) array the kernels read directly."""
    a = np.asarray(block)  # a np.memmap slice stays a zero-copy view of the mapping
    if a.ndim != 2:
        raise QueryError(f"stored vectors must be a (N, D) array, got shape {a.shape}")
    if a.shape[1] != dim:
        raise QueryError(f"stored vectors have dimension {a.shape[1]}, the queries have {dim}")
    if a.dtype == np.float16 or a.dtype == np.float32:
        return np.ascontiguousarray(a)
    return np.ascontiguousarray(a, dtype=np.float32)


def _weights(weights: ScoreWeights) -> np.ndarray:
    if not isinstance(weights, ScoreWeights):
        raise ConfigError(f"weights must be a ScoreWeights, got {type(weights).__name__}")
    return np.array(weights.as_tuple(), dtype=np.float64)


@cache
def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # torch is a dependency, but the kernel must not need it
        return False
    return bool(torch.cuda.is_available())


def _resolve_device(device: str, work: int) -> str | None:
    """None → the numba kernel; otherwise the torch device to run on."""
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be one of 'auto', 'cpu', 'cuda', got {device!r}")
    if device == "cpu":
        return None
    if device == "cuda":
        if not _cuda_available():
            raise ConfigError("device='cuda' was asked for, but torch sees no CUDA device")
        return "cuda"
    return "cuda" if work >= GPU_MIN_WORK and _cuda_available() else None


# --------------------------------------------------------------------------- scoring


def score_terms(
    xq: np.ndarray, xb: np.ndarray, device: Device = "auto"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three terms (cos, 1/(1+L2), 1/(1+L3)) of every query against every row.

    ``xq`` is (nq, D) (a (D,) vector counts as nq = 1), ``xb`` an (N, D) float32 or float16
    array or ``np.memmap``. Returns three (nq, N) float32 arrays.
    """
    q, qn = _prep_queries(xq)
    rows = _rows(xb, q.shape[1])
    out = scan(q, qn, rows, None, _resolve_device(device, q.size * rows.shape[0]))
    return out[0], out[1], out[2]


def score_matrix(
    xq: np.ndarray, xb: np.ndarray, weights: ScoreWeights = ScoreWeights(), device: Device = "auto"
) -> np.ndarray:
    """The weighted score of every query against every row, (nq, N) float32, in one fused
    pass (the three terms are never stored)."""
    q, qn = _prep_queries(xq)
    rows = _rows(xb, q.shape[1])
    return scan(q, qn, rows, _weights(weights), _resolve_device(device, q.size * rows.shape[0]))[0]


# --------------------------------------------------------------------------- k-NN


def _blocks(xb: object, block_rows: int) -> Iterator[object]:
    shape = getattr(xb, "shape", None)
    if shape is not None and len(shape) == 2:
        for s in range(0, shape[0], block_rows):
            yield xb[s : s + block_rows]  # type: ignore[index]
        return
    if shape is not None or not isinstance(xb, Iterable):
        raise QueryError(
            f"stored vectors must be a (N, D) array or an iterable of blocks, got {type(xb).__name__} {shape}"
        )
    for block in xb:
        b = np.asarray(block)
        for s in range(0, max(len(b), 1), block_rows):
            yield b[s : s + block_rows]


def exact_knn(
    xq: np.ndarray,
    xb: object,
    k: int,
    weights: ScoreWeights = ScoreWeights(),
    block_rows: int = 65536,
    ids: np.ndarray | None = None,
    device: Device = "auto",
    least: bool = False,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k rows by the weighted score, scanning ``xb`` block by block.

    ``least``: the k rows of lowest score instead, lowest first (anomaly hunting).
    ``exclude[i]``: an id never returned for query i (the query's own row; −1 for none).

    ``xb``: an (N, D) array, ``np.memmap`` or other sliceable array (read ``block_rows``
    rows at a time), or an iterable of (n_i, D) blocks in row order. ``ids`` (N,) non-negative
    int64 names the rows (default: their position). Returns ``(scores, ids)``, both (nq, k):
    float32 scores descending, ties broken by the lower id. If fewer than k rows exist, the
    missing columns are padding, score −inf and id −1, as FAISS pads (so the shape is always
    (nq, k); callers that must not pad check ``k ≤ N`` themselves).
    """
    k = _check_k(k)
    if exclude is not None:  # one more, then the query's own row is taken out
        s1, i1 = exact_knn(xq, xb, k + 1, weights, block_rows, ids, device, least)
        i1, s1 = leave_out(np.asarray(exclude, np.int64).ravel(), i1, s1, k=k)
        return s1, i1
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)) or block_rows < 1:
        raise ConfigError(f"block_rows must be an integer ≥ 1, got {block_rows!r}")
    _resolve_device(device, 0)  # reject a bad device before reading anything
    q, qn = _prep_queries(xq)
    nq, dim = q.shape
    w = _weights(weights)
    id_map = None if ids is None else np.asarray(ids, dtype=np.int64).ravel()
    best_s = np.full((nq, k), -np.inf, np.float32)
    best_i = np.full((nq, k), -1, np.int64)
    offset = 0
    for block in _blocks(xb, int(block_rows)):
        rows = _rows(block, dim)
        n = rows.shape[0]
        if n == 0:
            continue
        if id_map is None:
            bid = np.arange(offset, offset + n, dtype=np.int64)
        else:
            bid = id_map[offset : offset + n]
            if len(bid) != n:
                raise QueryError(f"ids has {len(id_map)} entries but the vectors have more rows")
            if bid.min() < 0:
                raise QueryError(f"ids must be ≥ 0 (−1 marks padding), got {int(bid.min())}")
        offset += n
        step = max(1, min(nq, _SCORE_BUDGET_BYTES // (4 * n)))
        backend = _resolve_device(device, step * n * dim)
        for q0 in range(0, nq, step):
            q1 = min(nq, q0 + step)
            s = scan(q[q0:q1], qn[q0:q1], rows, w, backend)[0]
            if least:  # the same bounded selection, of the negated scores
                s = -s
            top_s, top_i, _ = select(s, bid, k)
            best_s[q0:q1], best_i[q0:q1], _ = select(
                np.concatenate([best_s[q0:q1], top_s], axis=1),
                np.concatenate([best_i[q0:q1], top_i], axis=1),
                k,
            )
    if id_map is not None and offset != len(id_map):
        raise QueryError(f"ids has {len(id_map)} entries but the vectors have {offset} rows")
    if least:
        best_s = np.where(best_i >= 0, -best_s, -np.inf).astype(np.float32)
    return best_s, best_i


# --------------------------------------------------------------------------- rerank


def rerank(
    xq: np.ndarray,
    candidates: np.ndarray,
    xb: np.ndarray,
    k: int,
    weights: ScoreWeights = ScoreWeights(),
    device: Device = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order each query's FAISS shortlist by the exact score and keep the top k.

    ``candidates`` (nq, m) int64 row positions into ``xb`` (an (N, D) array or memmap);
    −1 is padding and repeated candidates count once. The candidate rows are read once, in
    ascending row order (sequential reads on a memmap). Returns ``(scores, ids, terms)`` of
    shapes (nq, k), (nq, k), (nq, k, 3): float32 scores descending, ties → lower id, and the
    terms (cos, 1/(1+L2), 1/(1+L3)). Queries with fewer than k valid candidates are padded
    with score −inf, id −1 and NaN terms.
    """
    k = _check_k(k)
    q, qn = _prep_queries(xq)
    nq, dim = q.shape
    w = _weights(weights)
    shape = getattr(xb, "shape", None)
    if shape is None or len(shape) != 2:
        raise QueryError(f"stored vectors must be a (N, D) array, got {type(xb).__name__}")
    n = int(shape[0])
    cand = np.asarray(candidates)
    if cand.ndim == 1 and nq == 1:
        cand = cand[None, :]
    if cand.ndim != 2 or cand.shape[0] != nq or not np.issubdtype(cand.dtype, np.integer):
        raise QueryError(f"candidates must be an integer (nq={nq}, m) array, got {cand.dtype} {cand.shape}")
    bad = (cand < -1) | (cand >= n)
    if bad.any():
        raise QueryError(
            f"candidate row {int(cand[bad][0])} is out of range for {n} stored vectors (−1 = padding)"
        )

    c = np.sort(cand.astype(np.int64), axis=1)
    c[:, 1:][c[:, 1:] == c[:, :-1]] = -1  # a candidate listed twice is scored once
    valid = c >= 0
    uniq, inv = np.unique(c[valid], return_inverse=True)
    rows = _rows(xb[uniq] if len(uniq) else np.empty((0, dim), np.float32), dim)
    pos = np.full(c.shape, -1, np.int64)
    pos[valid] = inv

    terms, score = pairs(q, qn, rows, pos, w, _resolve_device(device, int(valid.sum()) * dim))

    top_s, top_i, col = select(score, c, k)
    top_t = np.take_along_axis(terms, col[:, :, None], axis=1)

    out_s = np.full((nq, k), -np.inf, np.float32)
    out_i = np.full((nq, k), -1, np.int64)
    out_t = np.full((nq, k, 3), np.nan, np.float32)
    kk = top_s.shape[1]
    real = top_i >= 0
    out_s[:, :kk] = np.where(real, top_s, -np.inf)
    out_i[:, :kk] = top_i
    out_t[:, :kk] = np.where(real[:, :, None], top_t, np.nan)
    return out_s, out_i, out_t


def warmup() -> None:
    """Compile (or load from numba's on-disk cache) the kernels for float32 and float16 rows,
    writable or read-only (a ``mmap_mode="r"`` memmap is another numba type), so that the
    first real query does not pay for it."""
    xq = np.ones((1, 8), np.float32)
    for dt in (np.float32, np.float16):
        for writeable in (True, False):
            xb = np.ones((2, 8), dt)
            xb.setflags(write=writeable)
            score_matrix(xq, xb, device="cpu")
            exact_knn(xq, xb, 1, device="cpu")
        rerank(xq, np.array([[0, -1]]), xb, 1, device="cpu")  # gathers rows: always writable


def advise_random(vectors: np.ndarray) -> None:
    """Tell the kernel that reranking reads scattered rows: without it, Linux readahead turns
    each cold 8 KB row into megabytes of reads (measured 4.9 ms vs 0.22 ms per row,
    benchmarks/README.md) once the vectors no longer fit in the page cache."""
    import mmap

    m = getattr(vectors, "_mmap", None)
    if m is not None and hasattr(m, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        try:
            m.madvise(mmap.MADV_RANDOM)
        except OSError:  # advice only; some filesystems refuse it
            pass
