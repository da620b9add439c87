"""Nearest-neighbour positives: a label-free term that pulls each image towards the closest
*other* training image (NNCLR, Dwibedi et al. 2021, with the whole training set as the
support set).

Augmentation-only InfoNCE teaches the network what does not change a galaxy (rotation,
zoom, noise); it never says that two different galaxies are alike, which is what retrieval
is asked. Here every training image keeps its latest embedding in a bank (one row per
training position, detached); in each batch, anchor i's nearest neighbour j ≠ i in the bank
(by cosine) stands in for the anchor, and the InfoNCE loss must pick anchor i's positive
view among the batch's positives from that neighbour's vector:

    L_nn = InfoNCE( score(bank[nn(i)], p_k) )

so the positive view moves towards a galaxy the model already finds similar, and the
neighbourhood tightens. The term starts once every training image has a bank row (after the
first epoch); before that it is zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..score import ScoreWeights, score_torch
from .losses import info_nce_loss

__all__ = ["NeighbourBank"]


class NeighbourBank:
    """The latest embedding of each of ``n`` training images (module doc)."""

    def __init__(self, n: int, dim: int, device: torch.device | str) -> None:
        self.bank = torch.zeros(n, dim, device=device)
        self.filled = torch.zeros(n, dtype=torch.bool, device=device)

    @property
    def ready(self) -> bool:
        return bool(self.filled.all())

    def update(self, pos: torch.Tensor, z: torch.Tensor) -> None:
        """Store the embeddings ``z`` (B, D) of training positions ``pos`` (B,)."""
        p = pos.to(self.bank.device)
        self.bank[p] = z.detach().float()
        self.filled[p] = True

    def neighbours(self, pos: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The bank vector closest (cosine) to each row of ``z``, the image itself excluded."""
        p = pos.to(self.bank.device)
        c = F.normalize(z.detach().float(), dim=1) @ F.normalize(self.bank, dim=1).T  # (B, n)
        c[torch.arange(len(p), device=c.device), p] = -2.0
        return self.bank[c.argmax(dim=1)]

    def loss(
        self,
        pos: torch.Tensor,
        za: torch.Tensor,
        zp: torch.Tensor,
        weights: ScoreWeights | torch.Tensor,
        temperature: float,
    ) -> torch.Tensor:
        """InfoNCE between the anchors' neighbours and the positives ``zp`` (B, D)."""
        nn = self.neighbours(pos, za)
        s = score_torch(nn[:, None, :], zp.float()[None, :, :], weights)
        return info_nce_loss(s, temperature)
