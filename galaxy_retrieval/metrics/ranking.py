"""Ranking metrics over binary relevance.

Rankings come as a boolean matrix ``rel`` (Q, L): ``rel[q, i]`` says whether the i-th
result (0-based) of query q is relevant (same class). ``n_relevant`` (Q,) is how many
relevant items the database holds for each query (the query itself excluded); it sets the
ideal ranking for AP and nDCG. All functions return one value per query; average them
per class and across classes with :func:`macro_average`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "precision_at_k",
    "average_precision_at_k",
    "ndcg_at_k",
    "macro_average",
]


def _check(rel: np.ndarray, k: int) -> np.ndarray:
    rel = np.asarray(rel, dtype=bool)
    if rel.ndim != 2:
        raise ValueError(f"rel must be (queries, ranks), got shape {rel.shape}")
    if k < 1 or k > rel.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the ranking length {rel.shape[1]}")
    return rel[:, :k]


def _n_rel(rel: np.ndarray, n_relevant) -> np.ndarray:
    if n_relevant is None:
        return rel.sum(axis=1)
    n = np.asarray(n_relevant, dtype=np.int64)
    if n.shape != (rel.shape[0],):
        raise ValueError(f"n_relevant has shape {n.shape}; expected ({rel.shape[0]},)")
    return n


def precision_at_k(rel: np.ndarray, k: int) -> np.ndarray:
    """Fraction of the top k that is relevant."""
    return _check(rel, k).mean(axis=1)


def average_precision_at_k(rel: np.ndarray, k: int, n_relevant=None) -> np.ndarray:
    """AP@k = (1 / min(k, R)) · Σ_{i ≤ k} P@i · rel_i, with R relevant items in the database.

    Normalising by min(k, R) makes a perfect top-k score 1 even when R > k. A query with no
    relevant item (R = 0) scores 0. Without ``n_relevant``, R is taken as the number of
    relevant items within the given ranking (exact when the ranking is the full list).
    """
    r = _check(rel, k).astype(np.float64)
    hits = np.cumsum(r, axis=1)
    prec = hits / np.arange(1, r.shape[1] + 1)
    denom = np.minimum(_n_rel(np.asarray(rel, bool), n_relevant), k).astype(np.float64)
    num = (prec * r).sum(axis=1)
    return np.divide(num, denom, out=np.zeros_like(num), where=denom > 0)


def ndcg_at_k(rel: np.ndarray, k: int, n_relevant=None) -> np.ndarray:
    """Binary-gain nDCG@k: Σ rel_i / log2(i + 1) over the ideal ranking's value (i 1-based)."""
    r = _check(rel, k).astype(np.float64)
    disc = 1.0 / np.log2(np.arange(2, r.shape[1] + 2))
    dcg = (r * disc).sum(axis=1)
    ideal_n = np.minimum(_n_rel(np.asarray(rel, bool), n_relevant), k)
    cum = np.concatenate([[0.0], np.cumsum(disc)])
    idcg = cum[ideal_n]
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def macro_average(values: np.ndarray, labels: np.ndarray) -> tuple[float, dict[int, float]]:
    """(mean over classes of the per-class mean, {class: per-class mean})."""
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels)
    per = {int(c): float(values[labels == c].mean()) for c in np.unique(labels)}
    macro = float(np.mean(list(per.values()))) if per else math.nan
    return macro, per
