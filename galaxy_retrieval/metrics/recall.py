"""Recall against exact ground truth, and the speed/recall Pareto front.

``recall@r`` of one query is ``|returned top-r ∩ true top-r| / r`` (padding ids −1 never
match), averaged over queries. The tie-aware variant also counts a returned row whose exact
score equals the true r-th score (within float32 rounding): with duplicated or equidistant
catalog rows, which of the tied rows the ground truth lists is arbitrary, and faiss' own tests
compare results the same way. The reranker computes scores with the same kernel as the
ground truth, so equal means equal up to rounding, not "close".

:func:`pareto_front` is faiss' ``OperatingPoints`` idea: of all (recall, latency) points of a
sweep, keep those no other point beats on both at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["recall_at", "recall_at_tie_aware", "pareto_front", "percentile_ms"]

# Relative slack under which two exact scores count as a tie (a few float32 ulps).
_TIE_RTOL = 1e-6


def _check(found: np.ndarray, truth: np.ndarray, r: int) -> None:
    if found.ndim != 2 or truth.ndim != 2 or found.shape[0] != truth.shape[0]:
        raise ValueError(
            f"found {found.shape} and truth {truth.shape} must be (nq, ·) arrays with the same nq"
        )
    if not 1 <= r <= min(found.shape[1], truth.shape[1]):
        raise ValueError(
            f"r={r} must be between 1 and min(found k={found.shape[1]}, true k={truth.shape[1]})"
        )


def recall_at(found: np.ndarray, truth: np.ndarray, r: int) -> float:
    """Mean over queries of |found[:, :r] ∩ truth[:, :r]| / r (ids; −1 is padding)."""
    found = np.asarray(found)
    truth = np.asarray(truth)
    _check(found, truth, r)
    f = found[:, :r]
    t = truth[:, :r]
    hit = (f[:, :, None] == t[:, None, :]).any(axis=2) & (f >= 0)
    return float(hit.sum(axis=1).mean() / r)


def recall_at_tie_aware(
    found: np.ndarray, found_scores: np.ndarray, truth: np.ndarray, truth_scores: np.ndarray, r: int
) -> float:
    """As :func:`recall_at`, but a returned row whose exact score is ≥ the true r-th score
    (to float32 rounding) also counts: it is tied with a true top-r row."""
    found = np.asarray(found)
    truth = np.asarray(truth)
    _check(found, truth, r)
    f = found[:, :r]
    fs = np.asarray(found_scores, dtype=np.float64)[:, :r]
    kth = np.asarray(truth_scores, dtype=np.float64)[:, r - 1 : r]
    in_truth = (f[:, :, None] == truth[:, None, :r]).any(axis=2)
    tied = np.isfinite(fs) & (fs >= kth - _TIE_RTOL * np.abs(kth))
    hit = (in_truth | tied) & (f >= 0)
    # Each tied row stands for one true row; more tied rows than r cannot give more than r.
    return float(np.minimum(hit.sum(axis=1), r).mean() / r)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (recall, latency) points that no other point dominates, fastest first.

    Point j dominates i when ``recall_j ≥ recall_i`` and ``latency_j ≤ latency_i`` with at
    least one strict; identical points are all kept. Points with a NaN coordinate are never
    on the front."""
    pts = [(float(r), float(t)) for r, t in points]
    keep = []
    for i, (ri, ti) in enumerate(pts):
        if not (np.isfinite(ri) and np.isfinite(ti)):
            continue
        dominated = any(
            rj >= ri and tj <= ti and (rj > ri or tj < ti)
            for j, (rj, tj) in enumerate(pts)
            if j != i and np.isfinite(rj) and np.isfinite(tj)
        )
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: (pts[i][1], -pts[i][0], i))


def percentile_ms(seconds: np.ndarray | Sequence[float], q: float) -> float:
    """The ``q``-th percentile of a list of durations in seconds, in milliseconds."""
    return float(np.percentile(np.asarray(seconds, dtype=np.float64), q) * 1e3)
