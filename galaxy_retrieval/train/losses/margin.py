"""The paper's margin contrastive loss (§3.4) over scored pairs."""

from __future__ import annotations

__all__ = ["contrastive_loss"]


def contrastive_loss(s, y, margin: float = 1.0):
    """Paper §3.4: L = mean[(1 − y)² · s² + y · max(0, m − s)²], y = 1 positive, 0 negative."""
    import torch

    y = y.to(s.dtype)
    return ((1 - y) ** 2 * s**2 + y * torch.clamp(margin - s, min=0) ** 2).mean()
