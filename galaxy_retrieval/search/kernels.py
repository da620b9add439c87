"""The fast kernels of the paper's score (§3.6): the only place it is computed at scale.

The reference formula is :func:`galaxy_retrieval.score.score_terms_numpy` and the
differentiable one :func:`galaxy_retrieval.score.score_terms_torch`. The compiled CPU kernels
here are tested against the first; the GPU path *is* the second, run in chunks. Everything
that scores many pairs (exact k-NN, reranking, evaluation, the benchmarks) goes through
:func:`scan` (every query × every row) or :func:`pairs` (listed pairs).

The CPU kernel takes the four sums a pair needs in one sweep over the D components::

    dot = Σ q·x    xx = Σ x²    s2 = Σ d²    s3 = Σ |d|³        (d = x − q)
    cos = dot / (‖q‖·√xx),   1/(1 + √s2),   1/(1 + ∛s3)

A numpy version materializes ``x − q`` and its powers as (N, D) temporaries, which makes it
about 80× slower than reading the matrix once (``benchmarks/exact_kernel.py``). Here a numba
kernel (``parallel=True``, ``fastmath=True``) does the sweep in registers: rows are split over
threads (set their number with ``NUMBA_NUM_THREADS``), the sums are float32 SIMD accumulators
(relative error ~1e-7 at D = 2048; the reference is float64) and the short tail per pair
(roots, division) is float64. For a batch of queries, rows are taken a tile of
:data:`ROW_TILE` at a time and every query of the batch is scored against the tile while it
sits in cache, so each row comes from memory once per batch; one query is then bound by memory
bandwidth and a batch by arithmetic.

float16 storage is read as float16 and widened in the kernel (``vcvtph2ps``), halving the
bytes per row and so the bandwidth bound. Stored rows must be finite: non-finite components
give unspecified scores (the kernel is compiled with ``fastmath``).
"""

from __future__ import annotations

import math
import threading

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import types
from numba.extending import intrinsic

__all__ = ["scan", "pairs", "ROW_TILE", "KERNEL_LOCK", "numba_view"]

#: Rows scored together against every query of a batch (16 float32 rows of D = 2048 are
#: 128 KiB, which stays in a core's L2 while the batch's queries pass over them).
ROW_TILE = 16

#: numba's workqueue threading layer (its fallback without TBB or OpenMP) must not be entered
#: from two Python threads at once; kernels use every core anyway, so calls are serialized.
KERNEL_LOCK = threading.Lock()

# Bytes of (query × row × D) float32 the GPU path broadcasts at once.
_TORCH_BUDGET_BYTES = 256 << 20


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


def numba_view(rows: np.ndarray) -> np.ndarray:
    """float16 rows as their uint16 bits (numba has no float16 type on CPU)."""
    return rows.view(np.uint16) if rows.dtype == np.float16 else rows


def _torch_rows(rows: np.ndarray, dev: str):
    import torch

    return torch.from_numpy(rows if rows.flags.writeable else rows.copy()).to(dev).float()


def _weighted(c, i2, i3, w: np.ndarray):
    return float(w[0]) * c + float(w[1]) * i2 + float(w[2]) * i3


def scan(
    xq: np.ndarray, qn: np.ndarray, rows: np.ndarray, w: np.ndarray | None, device: str | None
) -> np.ndarray:
    """Every query against every row: (3, nq, n) terms, or (1, nq, n) scores when the weights
    ``w`` are given. ``device`` None runs the numba kernel, otherwise the torch device."""
    out = np.empty((3 if w is None else 1, xq.shape[0], rows.shape[0]), np.float32)
    if device is None:
        with KERNEL_LOCK:
            _scan_kernel(xq, qn, numba_view(rows), np.zeros(3) if w is None else w, out, w is None)
        return out
    import torch

    from ..score import score_terms_torch

    q = torch.from_numpy(xq).to(device)
    step = max(1, (_TORCH_BUDGET_BYTES // 4) // max(1, xq.shape[0] * xq.shape[1]))  # bounds the broadcast
    for r0 in range(0, rows.shape[0], step):
        x = _torch_rows(rows[r0 : r0 + step], device)
        c, i2, i3 = score_terms_torch(q[:, None, :], x[None, :, :])
        res = torch.stack([c, i2, i3]) if w is None else _weighted(c, i2, i3, w)[None]
        out[:, :, r0 : r0 + x.shape[0]] = res.cpu().numpy()
    return out


def pairs(
    xq: np.ndarray, qn: np.ndarray, rows: np.ndarray, pos: np.ndarray, w: np.ndarray, device: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Listed pairs: query ``qi`` against ``rows[pos[qi, j]]`` (``pos < 0`` is padding: NaN
    terms, score −inf). Returns terms (nq, m, 3) and scores (nq, m)."""
    terms = np.empty((*pos.shape, 3), np.float32)
    score = np.empty(pos.shape, np.float32)
    if device is None or not len(rows):
        with KERNEL_LOCK:
            _pairs_kernel(xq, qn, numba_view(rows), pos, w, terms, score)
        return terms, score
    import torch

    from ..score import score_terms_torch

    x = _torch_rows(rows, device)
    nq, m = pos.shape
    step = max(1, (_TORCH_BUDGET_BYTES // 4) // max(1, m * x.shape[1]))  # bounds the (q, m, D) gather
    for q0 in range(0, nq, step):
        q = torch.from_numpy(xq[q0 : q0 + step]).to(device)[:, None, :]
        p = torch.from_numpy(pos[q0 : q0 + step]).to(device)
        c, i2, i3 = score_terms_torch(q, x[p.clamp(min=0)])
        t = torch.stack([c, i2, i3], dim=-1)
        sc = _weighted(c, i2, i3, w)
        t[p < 0] = float("nan")
        sc[p < 0] = float("-inf")
        terms[q0 : q0 + step] = t.cpu().numpy()
        score[q0 : q0 + step] = sc.cpu().numpy()
    return terms, score
