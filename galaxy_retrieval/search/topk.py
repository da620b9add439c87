"""Top-k selection with deterministic ties, and leaving a query's own row out.

Ranking is score descending, ties broken by the lower row id, NaN ranked as −inf and id −1
(padding) after every real row: a compiled bounded heap per query, so selecting from a block
costs a few ns per row. Every ranked list in the package (exact k-NN, reranking, evaluation,
the benchmarks' ground truth) is cut with :func:`select`, so they all order ties alike.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .kernels import KERNEL_LOCK

__all__ = ["select", "leave_out", "least_first"]

_NO_ID = np.iinfo(np.int64).max  # sort key of padding: after every real row, whatever its score


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


def select(s: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    with KERNEL_LOCK:
        topk(s, ids2, cols)
    top_s = np.take_along_axis(s, cols, axis=1)
    top_s[np.isnan(top_s)] = -np.inf
    top_i = ids2[0][cols] if ids2.shape[0] == 1 else np.take_along_axis(ids2, cols, axis=1)
    return top_s, top_i, cols


def leave_out(
    exclude: np.ndarray | None, ids: np.ndarray, *arrays: np.ndarray, k: int | None = None
) -> tuple[np.ndarray, ...]:
    """Each query's ranked results without its own row ``exclude[i]`` (−1: none).

    ``ids`` (nq, m) and every array of ``arrays`` (nq, m, …) are reordered alike: the kept
    columns keep their order and come first, the left-out one goes last with id −1 (padding,
    which every caller already skips); the result is cut to ``k`` columns (default m − 1, so
    a query whose own row was not among its results simply loses its last one). Returns
    ``(ids, *arrays)``. Callers ask for one more result than they need."""
    m = ids.shape[1]
    k = m - 1 if k is None else k
    if exclude is None:
        return (ids[:, :k], *(a[:, :k] for a in arrays))
    drop = ids == np.asarray(exclude, dtype=np.int64).reshape(-1, 1)
    order = np.argsort(drop, axis=1, kind="stable")[:, :k]
    out = [np.where(np.take_along_axis(drop, order, axis=1), -1, np.take_along_axis(ids, order, axis=1))]
    for a in arrays:
        o = order.reshape(order.shape + (1,) * (a.ndim - 2))
        out.append(np.take_along_axis(a, o, axis=1))
    return tuple(out)


def least_first(
    scores: np.ndarray, pos: np.ndarray, terms: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's real entries (reranked, best first) reversed: least similar first."""
    out = (scores.copy(), pos.copy(), terms.copy())
    for i in range(len(pos)):
        n = int((pos[i] >= 0).sum())
        for a, src in zip(out, (scores, pos, terms)):
            a[i, :n] = src[i, :n][::-1]
    return out
