"""Ranking metrics over binary relevance, and the paper's mini-search loose accuracy.

Rankings come as a boolean matrix ``rel`` (Q, L): ``rel[q, i]`` says whether the i-th
result (0-based) of query q is relevant (same class). ``n_relevant`` (Q,) is how many
relevant items the database holds for each query (the query itself excluded); it sets the
ideal ranking for AP and nDCG. All functions return one value per query; average them
per class and across classes with :func:`macro_average`.
"""

from __future__ import annotations

import math

import numpy as np

from ..score import ScoreWeights

__all__ = [
    "precision_at_k",
    "average_precision_at_k",
    "ndcg_at_k",
    "macro_average",
    "loose_accuracy",
    "split_loose_accuracy",
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


def loose_accuracy(anchors, positives, batch_size: int, weights: ScoreWeights = ScoreWeights()) -> tuple[float, int]:
    """The paper's mini-search loose accuracy (§3.5) → (accuracy, number of queries).

    The N images are taken in consecutive batches of ``batch_size`` (an incomplete last
    batch is dropped: the task's difficulty depends on the batch size). In a batch, image
    i's query is its own embedding; the candidates are its positive (an augmented copy,
    ``positives[i]``) and the ``batch_size − 1`` other images of the batch (untransformed).
    A hit is when the positive scores strictly higher than every other candidate. Shuffle
    the inputs beforehand for random batches. NaN when N < ``batch_size``.
    """
    import torch

    from ..score import score_torch

    a = torch.as_tensor(np.asarray(anchors) if not isinstance(anchors, torch.Tensor) else anchors).float()
    p = torch.as_tensor(np.asarray(positives) if not isinstance(positives, torch.Tensor) else positives).float()
    if a.shape != p.shape or a.ndim != 2:
        raise ValueError(f"anchors {tuple(a.shape)} and positives {tuple(p.shape)} must both be (N, D)")
    nb = a.shape[0] // batch_size
    if nb == 0:
        return math.nan, 0
    a = a[: nb * batch_size].reshape(nb, batch_size, -1)
    p = p[: nb * batch_size].reshape(nb, batch_size, -1)
    eye = torch.eye(batch_size, dtype=torch.bool)
    # batches per step so that the (step, b, b, D) difference tensor stays ~16M floats
    step = max(1, (1 << 24) // (batch_size * batch_size * a.shape[2]))
    hits = []
    with torch.no_grad():
        for lo in range(0, nb, step):
            ab, pb = a[lo : lo + step], p[lo : lo + step]
            s_pos = score_torch(ab, pb, weights)  # (n, b)
            s_other = score_torch(ab[:, :, None, :], ab[:, None, :, :], weights)  # (n, b, b)
            s_other = s_other.masked_fill(eye, -math.inf)
            hits.append(s_pos > s_other.max(dim=2).values)
    h = torch.cat(hits).flatten()
    return float(h.float().mean()), int(h.numel())


def split_loose_accuracy(anchors, positives, weights: ScoreWeights = ScoreWeights(), block: int = 16) -> float:
    """Loose accuracy against the whole split: image i's positive must outscore every other
    image of the split (not only the ``batch_size − 1`` of its batch) → fraction of hits.

    The paper's batch-8 and batch-64 loose accuracy saturate at 1.0 on real cutouts while
    retrieval is still poor: telling an image from 7 or 63 others is easy when each has its
    own stars and sky. Against a whole split of hundreds to thousands it is not, and this
    label-free number ranks checkpoints as held-out precision does far better (see
    benchmarks/quality/README.md), so training selects its best epoch by it. NaN for N < 2.
    """
    import torch

    from ..score import score_torch

    a = torch.as_tensor(np.asarray(anchors) if not isinstance(anchors, torch.Tensor) else anchors).float()
    p = torch.as_tensor(np.asarray(positives) if not isinstance(positives, torch.Tensor) else positives).float()
    if a.shape != p.shape or a.ndim != 2:
        raise ValueError(f"anchors {tuple(a.shape)} and positives {tuple(p.shape)} must both be (N, D)")
    n = a.shape[0]
    if n < 2:
        return math.nan
    own = score_torch(a, p, weights)  # (N,): each image against its own positive
    hits = 0
    for lo in range(0, n, block):
        s = score_torch(a[lo : lo + block, None, :], a[None, :, :], weights)  # (b, N)
        idx = torch.arange(lo, min(lo + block, n))
        s[idx - lo, idx] = -math.inf  # an image is not its own rival
        hits += int((own[lo : lo + block] > s.max(dim=1).values).sum())
    return hits / n
