"""The paper's mini-search loose accuracy (§3.5), label-free: the training loop selects
checkpoints by it and :func:`galaxy_retrieval.evaluate.evaluate` reports it. It sits below
both so that neither imports the other."""

from __future__ import annotations

import math

import numpy as np

from ..score import ScoreWeights

__all__ = ["loose_accuracy", "split_loose_accuracy"]


def loose_accuracy(
    anchors, positives, batch_size: int, weights: ScoreWeights = ScoreWeights()
) -> tuple[float, int]:
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
    p = torch.as_tensor(
        np.asarray(positives) if not isinstance(positives, torch.Tensor) else positives
    ).float()
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


def split_loose_accuracy(
    anchors, positives, weights: ScoreWeights = ScoreWeights(), block: int = 16
) -> float:
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
    p = torch.as_tensor(
        np.asarray(positives) if not isinstance(positives, torch.Tensor) else positives
    ).float()
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
