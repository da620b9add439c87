"""The exact score scan as one compiled kernel: ground truth, ``--exact`` and the reranker.

The paper's score (§3.6, :mod:`galaxy_retrieval.score`) of a query ``q`` and a stored row ``x``
needs four sums over the D components, all taken in one sweep over the row::

    dot = Σ q·x    xx = Σ x²    s2 = Σ d²    s3 = Σ |d|³        (d = x − q)
    cos = dot / (‖q‖·√xx),   1/(1 + √s2),   1/(1 + ∛s3)

A numpy version materializes ``x − q`` and its powers as (N, D) temporaries, which makes it
about 80× slower than reading the matrix once (``benchmarks/exact_kernel.py``). Here a numba kernel (``parallel=True``,
``fastmath=True``) does the sweep in registers: rows are split over threads (set their number
with ``NUMBA_NUM_THREADS``), the sums are float32 SIMD accumulators (relative error ~1e-7 at
D = 2048; the reference :func:`~galaxy_retrieval.score.score_terms_numpy` is float64) and the
short tail per pair (roots, division) is float64. For a batch of queries, rows are taken a
tile of :data:`ROW_TILE` at a time and every query of the batch is scored against the tile
while it sits in cache, so each row comes from memory once per batch; one query is then
bound by memory bandwidth and a batch by arithmetic.

float16 storage is read as float16 and widened in the kernel (``vcvtph2ps``), halving the
bytes per row and so the bandwidth bound. Any other dtype is converted to float32 a block at a
time. Stored rows must be finite: non-finite components give unspecified scores (the kernel
is compiled with ``fastmath``); a NaN score ranks as −inf.

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

import math
import threading
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Literal

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import types
from numba.extending import intrinsic

from ..errors import ConfigError, QueryError
from ..score import ScoreWeights

__all__ = ["score_terms", "score_matrix", "exact_knn", "rerank", "warmup", "Device", "ROW_TILE", "GPU_MIN_WORK"]

Device = Literal["auto", "cpu", "cuda"]

#: Rows scored together against every query of a batch (16 float32 rows of D = 2048 are
#: 128 KiB, which stays in a core's L2 while the batch's queries pass over them).
ROW_TILE = 16

#: ``device="auto"`` uses CUDA only from this much work (nq × N × D multiply-adds) up.
GPU_MIN_WORK = 1 << 31

# Scores of one (query chunk × row block) are held in memory at once; exact_knn splits the
# queries so that this many bytes are not exceeded.
_SCORE_BUDGET_BYTES = 256 << 20

_TORCH_ROWS = 65536  # rows sent to the GPU at a time

_NO_ID = np.iinfo(np.int64).max  # sort key of padding: after every real row, whatever its score

# numba's workqueue threading layer (its fallback without TBB or OpenMP) must not be entered
# from two Python threads at once; kernels use every core anyway, so calls are serialized.
_KERNEL_LOCK = threading.Lock()


# --------------------------------------------------------------------------- kernels


@intrinsic
def _as_f32(typingctx, v):
    """float32 → itself; uint16 (float16 bits) → float32, one ``fpext half`` that LLVM
    vectorizes to ``vcvtph2ps`` (numba has no float16 type on CPU)."""
    if v == types.float32:

        def codegen(context, builder, sig, args):
            return args[0]

    elif v == types.uint16:

        def codegen(context, builder, sig, args):
            return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    else:
        return None
    return types.float32(v), codegen


@njit(fastmath=True, cache=True)
def _pair_sums(q, x):
    # One sweep over D; fastmath lets LLVM split each sum over SIMD lanes (reassociation).
    # Σx² is recomputed for every query (one FMA per component) rather than once per row so
    # that every path (any batch, block or query chunk, rerank) runs this same loop and a
    # pair's score does not depend on which other queries or rows were scored with it.
    dot = np.float32(0.0)
    xx = np.float32(0.0)
    s2 = np.float32(0.0)
    s3 = np.float32(0.0)
    for j in range(q.shape[0]):
        v = _as_f32(x[j])
        u = q[j]
        dot += u * v
        xx += v * v
        d = v - u
        d2 = d * d
        s2 += d2
        s3 += d2 * abs(d)
    return dot, xx, s2, s3


@njit(cache=True)  # not fastmath: a few float64 operations per pair, kept IEEE-exact so
def _finish(dot, xx, qn, s2, s3, w):  # that both kernels round a pair's score alike
    denom = qn * math.sqrt(np.float64(xx))
    if denom < 1e-30:
        denom = 1e-30
    c = np.float64(dot) / denom
    i2 = 1.0 / (1.0 + math.sqrt(np.float64(s2)))
    i3 = 1.0 / (1.0 + np.cbrt(np.float64(s3)))
    return c, i2, i3, w[0] * c + w[1] * i2 + w[2] * i3


@njit(parallel=True, fastmath=True, cache=True)
def _scan_kernel(xq, qn, xb, w, out, want_terms):
    """Score every (query, row): ``out[0..2, qi, i]`` = terms, or ``out[0, qi, i]`` = score."""
    nq = xq.shape[0]
    n = xb.shape[0]
    ntiles = (n + ROW_TILE - 1) // ROW_TILE
    for t in prange(ntiles):
        r0 = t * ROW_TILE
        r1 = min(n, r0 + ROW_TILE)
        for qi in range(nq):
            q = xq[qi]
            for i in range(r0, r1):
                dot, xx, s2, s3 = _pair_sums(q, xb[i])
                c, i2, i3, sc = _finish(dot, xx, qn[qi], s2, s3, w)
                if want_terms:
                    out[0, qi, i] = c
                    out[1, qi, i] = i2
                    out[2, qi, i] = i3
                else:
                    out[0, qi, i] = sc


@njit(parallel=True, fastmath=True, cache=True)
def _pairs_kernel(xq, qn, rows, pos, w, terms, score):
    """Score listed pairs: query ``qi`` against ``rows[pos[qi, j]]``; ``pos < 0`` is padding."""
    nq, m = pos.shape
    for p in prange(nq * m):
        qi = p // m
        j = p - qi * m
        r = pos[qi, j]
        if r < 0:
            terms[qi, j, 0] = np.nan
            terms[qi, j, 1] = np.nan
            terms[qi, j, 2] = np.nan
            score[qi, j] = -np.inf
            continue
        dot, xx, s2, s3 = _pair_sums(xq[qi], rows[r])
        c, i2, i3, sc = _finish(dot, xx, qn[qi], s2, s3, w)
        terms[qi, j, 0] = c
        terms[qi, j, 1] = i2
        terms[qi, j, 2] = i3
        score[qi, j] = sc


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


def _numba_view(rows: np.ndarray) -> np.ndarray:
    return rows.view(np.uint16) if rows.dtype == np.float16 else rows


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


# --------------------------------------------------------------------------- torch (GPU) path


def _torch_scan(xq: np.ndarray, rows: np.ndarray, w: np.ndarray | None, dev: str) -> np.ndarray:
    """(3, nq, n) terms, or (1, nq, n) scores when ``w`` is given, computed with torch."""
    import torch

    out = np.empty((3 if w is None else 1, xq.shape[0], rows.shape[0]), np.float32)
    q = torch.from_numpy(xq).to(dev)
    qn = torch.linalg.vector_norm(q, dim=1)[:, None]
    for r0 in range(0, rows.shape[0], _TORCH_ROWS):  # bounds device memory for a big memmap
        chunk = rows[r0 : r0 + _TORCH_ROWS]
        x = torch.from_numpy(chunk if chunk.flags.writeable else chunk.copy()).to(dev).float()
        cos = (q @ x.T) / torch.clamp(qn * torch.linalg.vector_norm(x, dim=1)[None, :], min=1e-30)
        # Direct differences, not the ‖a‖² + ‖b‖² − 2ab expansion, which cancels for near rows.
        i2 = 1.0 / (1.0 + torch.cdist(q, x, p=2.0, compute_mode="donot_use_mm_for_euclid_dist"))
        i3 = 1.0 / (1.0 + torch.cdist(q, x, p=3.0))
        if w is None:
            res = torch.stack([cos, i2, i3])
        else:
            res = (float(w[0]) * cos + float(w[1]) * i2 + float(w[2]) * i3)[None]
        out[:, :, r0 : r0 + x.shape[0]] = res.cpu().numpy()
    return out


def _torch_pairs(xq: np.ndarray, rows: np.ndarray, pos: np.ndarray, w: np.ndarray, dev: str) -> tuple[np.ndarray, np.ndarray]:
    import torch

    x = torch.from_numpy(rows if rows.flags.writeable else rows.copy()).to(dev).float()
    terms = np.empty((*pos.shape, 3), np.float32)
    score = np.empty(pos.shape, np.float32)
    nq, m = pos.shape
    step = max(1, (_SCORE_BUDGET_BYTES // 4) // max(1, m * x.shape[1]))  # bounds the (q, m, D) gather
    for q0 in range(0, nq, step):
        q = torch.from_numpy(xq[q0 : q0 + step]).to(dev)[:, None, :]
        p = torch.from_numpy(pos[q0 : q0 + step]).to(dev)
        xr = x[p.clamp(min=0)]  # (q, m, D)
        denom = torch.clamp(torch.linalg.vector_norm(q, dim=-1) * torch.linalg.vector_norm(xr, dim=-1), min=1e-30)
        cos = (xr * q).sum(-1) / denom
        d = (xr - q).abs()
        i2 = 1.0 / (1.0 + d.square().sum(-1).sqrt())
        i3 = 1.0 / (1.0 + d.pow(3).sum(-1).pow(1.0 / 3.0))
        t = torch.stack([cos, i2, i3], dim=-1)
        sc = float(w[0]) * cos + float(w[1]) * i2 + float(w[2]) * i3
        t[p < 0] = float("nan")
        sc[p < 0] = float("-inf")
        terms[q0 : q0 + step] = t.cpu().numpy()
        score[q0 : q0 + step] = sc.cpu().numpy()
    return terms, score


# --------------------------------------------------------------------------- scoring


def _scan(xq: np.ndarray, qn: np.ndarray, rows: np.ndarray, w: np.ndarray | None, backend: str | None) -> np.ndarray:
    if backend is not None:
        return _torch_scan(xq, rows, w, backend)
    out = np.empty((3 if w is None else 1, xq.shape[0], rows.shape[0]), np.float32)
    with _KERNEL_LOCK:
        _scan_kernel(xq, qn, _numba_view(rows), np.zeros(3) if w is None else w, out, w is None)
    return out


def score_terms(xq: np.ndarray, xb: np.ndarray, device: Device = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three terms (cos, 1/(1+L2), 1/(1+L3)) of every query against every row.

    ``xq`` is (nq, D) (a (D,) vector counts as nq = 1), ``xb`` an (N, D) float32 or float16
    array or ``np.memmap``. Returns three (nq, N) float32 arrays.
    """
    q, qn = _prep_queries(xq)
    rows = _rows(xb, q.shape[1])
    out = _scan(q, qn, rows, None, _resolve_device(device, q.size * rows.shape[0]))
    return out[0], out[1], out[2]


def score_matrix(xq: np.ndarray, xb: np.ndarray, weights: ScoreWeights = ScoreWeights(), device: Device = "auto") -> np.ndarray:
    """The weighted score of every query against every row, (nq, N) float32, in one fused
    pass (the three terms are never stored)."""
    q, qn = _prep_queries(xq)
    rows = _rows(xb, q.shape[1])
    return _scan(q, qn, rows, _weights(weights), _resolve_device(device, q.size * rows.shape[0]))[0]


# --------------------------------------------------------------------------- top-k


@njit(cache=True)
def _worse(s, ids, a, b):
    """Does column ``a`` rank after column ``b``? Lower score, or the same score and a higher
    id; a NaN score counts as −inf and id −1 (padding) as the highest id."""
    sa = s[a]
    sb = s[b]
    if sa != sa:
        sa = -np.inf
    if sb != sb:
        sb = -np.inf
    if sa != sb:
        return sa < sb
    ka = ids[a]
    kb = ids[b]
    if ka < 0:
        ka = _NO_ID
    if kb < 0:
        kb = _NO_ID
    return ka > kb


@njit(cache=True)
def _sift_down(s, ids, h, c, n):
    while True:
        w = 2 * c + 1
        if w >= n:
            return
        if w + 1 < n and _worse(s, ids, h[w + 1], h[w]):
            w += 1
        if not _worse(s, ids, h[w], h[c]):
            return
        h[c], h[w] = h[w], h[c]
        c = w


@njit(cache=True)  # not fastmath: NaN tests must stay
def _topk_row(sr, ir, h):
    """``h`` = columns of the ``len(h)`` best scores of ``sr``, best first.

    A bounded heap whose root is the worst kept column: one comparison for most columns,
    O(M log k) in the worst case."""
    k = h.shape[0]
    n = 0
    for e in range(sr.shape[0]):
        if n < k:
            h[n] = e
            c = n
            n += 1
            while c > 0:
                p = (c - 1) // 2
                if not _worse(sr, ir, h[c], h[p]):
                    break
                h[c], h[p] = h[p], h[c]
                c = p
        elif _worse(sr, ir, h[0], e):
            h[0] = e
            _sift_down(sr, ir, h, 0, n)
    for end in range(n - 1, 0, -1):  # heap → best first: move the worst to the back
        h[0], h[end] = h[end], h[0]
        _sift_down(sr, ir, h, 0, end)


@njit(cache=True)
def _topk_serial(s, ids, cols):
    for qi in range(s.shape[0]):
        _topk_row(s[qi], ids[qi * (ids.shape[0] > 1)], cols[qi])


@njit(parallel=True, cache=True)
def _topk_parallel(s, ids, cols):
    """As :func:`_topk_serial`, queries spread over threads. ``ids`` is (1, M) or (nq, M)."""
    for qi in prange(s.shape[0]):
        _topk_row(s[qi], ids[np.int64(qi) * np.int64(ids.shape[0] > 1)], cols[qi])


def _select(s: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k of each row of ``s`` (nq, M) by score desc, ties → lower id; ``ids`` (M,) or
    (nq, M), −1 = padding (ranked after every real row). Returns scores (NaN → −inf), ids and
    the chosen columns of ``s``, each (nq, min(k, M))."""
    s = np.ascontiguousarray(s, dtype=np.float32)
    ids2 = np.ascontiguousarray(ids[None, :] if ids.ndim == 1 else ids, dtype=np.int64)
    if not ids2.flags.writeable:  # one compiled variant: read-only arrays are another numba type
        ids2 = ids2.copy()
    cols = np.empty((s.shape[0], min(k, s.shape[1])), np.int64)
    # A parallel launch costs more than it saves for one query (and much more on a busy machine).
    topk = _topk_parallel if s.shape[0] > 1 and s.size >= 1 << 16 else _topk_serial
    with _KERNEL_LOCK:
        topk(s, ids2, cols)
    top_s = np.take_along_axis(s, cols, axis=1)
    top_s[np.isnan(top_s)] = -np.inf
    top_i = ids2[0][cols] if ids2.shape[0] == 1 else np.take_along_axis(ids2, cols, axis=1)
    return top_s, top_i, cols


def _blocks(xb: object, block_rows: int) -> Iterator[object]:
    shape = getattr(xb, "shape", None)
    if shape is not None and len(shape) == 2:
        for s in range(0, shape[0], block_rows):
            yield xb[s : s + block_rows]  # type: ignore[index]
        return
    if shape is not None or not isinstance(xb, Iterable):
        raise QueryError(f"stored vectors must be a (N, D) array or an iterable of blocks, got {type(xb).__name__} {shape}")
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
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k rows by the weighted score, scanning ``xb`` block by block.

    ``least``: the k rows of lowest score instead, lowest first (anomaly hunting).

    ``xb``: an (N, D) array, ``np.memmap`` or other sliceable array (read ``block_rows``
    rows at a time), or an iterable of (n_i, D) blocks in row order. ``ids`` (N,) non-negative
    int64 names the rows (default: their position). Returns ``(scores, ids)``, both (nq, k):
    float32 scores descending, ties broken by the lower id. If fewer than k rows exist, the
    missing columns are padding, score −inf and id −1, as FAISS pads (so the shape is always
    (nq, k); callers that must not pad check ``k ≤ N`` themselves).
    """
    k = _check_k(k)
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
            s = _scan(q[q0:q1], qn[q0:q1], rows, w, backend)[0]
            if least:  # the same bounded selection, of the negated scores
                s = -s
            top_s, top_i, _ = _select(s, bid, k)
            best_s[q0:q1], best_i[q0:q1], _ = _select(
                np.concatenate([best_s[q0:q1], top_s], axis=1), np.concatenate([best_i[q0:q1], top_i], axis=1), k
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
        raise QueryError(f"candidate row {int(cand[bad][0])} is out of range for {n} stored vectors (−1 = padding)")

    c = np.sort(cand.astype(np.int64), axis=1)
    c[:, 1:][c[:, 1:] == c[:, :-1]] = -1  # a candidate listed twice is scored once
    valid = c >= 0
    uniq, inv = np.unique(c[valid], return_inverse=True)
    rows = _rows(xb[uniq] if len(uniq) else np.empty((0, dim), np.float32), dim)
    pos = np.full(c.shape, -1, np.int64)
    pos[valid] = inv

    backend = _resolve_device(device, int(valid.sum()) * dim)
    if backend is not None and len(uniq):
        terms, score = _torch_pairs(q, rows, pos, w, backend)
    else:
        terms = np.empty((*c.shape, 3), np.float32)
        score = np.empty(c.shape, np.float32)
        with _KERNEL_LOCK:
            _pairs_kernel(q, qn, _numba_view(rows), pos, w, terms, score)

    top_s, top_i, col = _select(score, c, k)
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
