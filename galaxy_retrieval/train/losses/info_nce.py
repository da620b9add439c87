"""InfoNCE over a batch's score matrix: the default training loss."""

from __future__ import annotations

__all__ = ["info_nce_loss"]


def info_nce_loss(s, temperature: float = 0.1):
    """Symmetric InfoNCE (SimCLR's NT-Xent, van den Oord et al. 2018) on a (B, B) score matrix
    whose diagonal holds the positive pairs: cross-entropy of softmax(s / τ) picking the
    positive, over rows (anchor → positives) and columns (positive → anchors), averaged.

    Unlike the paper's loss, which pushes every negative pair's score towards 0 whatever
    the two images are, it only asks the positive to outscore the batch's negatives; the
    temperature τ sets how hard the closest negatives weigh."""
    import torch
    import torch.nn.functional as F

    logits = s.float() / temperature
    target = torch.arange(s.shape[0], device=s.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
