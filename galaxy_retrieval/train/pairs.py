"""Building a batch of training pairs and its contrastive loss (paper §3.4).

A batch of B catalog images becomes one image tensor that goes through the model in a
single call, plus the index pairs (a, b, y) into it:

- ``paper``: [anchors | T⁺(anchors) | T⁻(other images)] → pairs (i, B+i, 1) and (i, 2B+i, 0);
- ``paper`` + ``save_computations``: [anchors | partners] where partner i is T⁺(anchor i)
  or T⁻(another image) at random → pairs (i, B+i, yᵢ);
- ``in_batch``: [anchors | T⁺(anchors)] → the B×B score matrix, diagonal positive,
  everything else negative.

The "other image" of a negative pair is drawn uniformly from the rest of the training set
(never the anchor itself, possibly of the same class: labels are never looked at).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..score import ScoreWeights, score_torch
from .augment import PairAugmenter
from .losses import contrastive_loss, info_nce_loss

__all__ = ["PairBatch", "make_pair_batch", "pair_loss", "other_positions"]


@dataclass
class PairBatch:
    images: torch.Tensor  # (M, 3, S, S) float in [0, 1]
    n_anchors: int
    a: torch.Tensor | None  # (P,) indices into images, None for in_batch
    b: torch.Tensor | None
    y: torch.Tensor | None  # (P,) 1 positive / 0 negative
    in_batch: bool = False

    @property
    def n_pairs(self) -> int:
        return (
            self.n_anchors * (self.n_anchors if self.in_batch else 1)
            if self.y is None
            else int(self.y.numel())
        )


def other_positions(pos: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """For each position, a uniformly random *different* position in range(n)."""
    return (pos + torch.randint(1, n, pos.shape, generator=g)) % n


def make_pair_batch(
    anchors: torch.Tensor,
    others: torch.Tensor | None,
    augmenter: PairAugmenter,
    g: torch.Generator,
    mode: str = "paper",
    save_computations: bool = False,
    augment_anchors: bool = False,
) -> PairBatch:
    """``anchors`` (B, 3, S, S) and ``others`` (B, …: the images negatives are made from),
    both float in [0, 1] → a :class:`PairBatch`. With ``augment_anchors`` the anchors are
    replaced by positive transforms of themselves (drawn independently of the positives)."""
    bsz = anchors.shape[0]
    if augment_anchors:
        positives = augmenter.positive(anchors, g)
        anchors = augmenter.positive(anchors, g)
    else:
        positives = None
    if mode == "in_batch":
        pos = positives if positives is not None else augmenter.positive(anchors, g)
        return PairBatch(torch.cat([anchors, pos]), bsz, None, None, None, in_batch=True)
    ar = torch.arange(bsz)
    if others is None or others.shape[0] != bsz:
        raise ValueError("paper pairs need one 'other' image per anchor")
    if save_computations:
        y = torch.rand(bsz, generator=g) < 0.5
        yd = y.to(anchors.device)
        partner = torch.empty_like(anchors)
        if y.any():
            partner[yd] = positives[yd] if positives is not None else augmenter.positive(anchors[yd], g)
        if (~y).any():
            partner[~yd] = augmenter.negative(others[~yd], g)
        return PairBatch(torch.cat([anchors, partner]), bsz, ar, bsz + ar, y.long())
    pos = positives if positives is not None else augmenter.positive(anchors, g)
    neg = augmenter.negative(others, g)
    a = torch.cat([ar, ar])
    b = torch.cat([bsz + ar, 2 * bsz + ar])
    y = torch.cat([torch.ones(bsz, dtype=torch.long), torch.zeros(bsz, dtype=torch.long)])
    return PairBatch(torch.cat([anchors, pos, neg]), bsz, a, b, y)


def pair_loss(
    emb: torch.Tensor,
    batch: PairBatch,
    weights: ScoreWeights | torch.Tensor,
    margin: float,
    loss: str = "contrastive",
    temperature: float = 0.1,
) -> tuple[torch.Tensor, float]:
    """(loss, accuracy) for the batch. Contrastive: accuracy is the fraction of pairs on the
    right side of margin/2; InfoNCE (in-batch only): the fraction of anchors whose positive
    scores highest in its row.

    ``weights``: fixed :class:`ScoreWeights`, or a (3,) tensor of learned weights
    (``softmax(θ)``) that the loss's gradient reaches."""
    if batch.in_batch:
        n = batch.n_anchors
        za, zp = emb[:n], emb[n:]
        s = score_torch(za[:, None, :], zp[None, :, :], weights)  # (B, B)
        if loss == "info_nce":
            with torch.no_grad():
                acc = (s.argmax(dim=1) == torch.arange(n, device=s.device)).float().mean()
            return info_nce_loss(s, temperature), float(acc)
        eye = torch.eye(n, dtype=torch.bool, device=s.device)
        s_pos, s_neg = s[eye], s[~eye]
        ones = torch.ones_like(s_pos)
        loss = 0.5 * (
            contrastive_loss(s_pos, ones, margin) + contrastive_loss(s_neg, torch.zeros_like(s_neg), margin)
        )
        with torch.no_grad():
            acc = 0.5 * ((s_pos > margin / 2).float().mean() + (s_neg <= margin / 2).float().mean())
        return loss, float(acc)
    y = batch.y.to(emb.device)
    s = score_torch(emb[batch.a.to(emb.device)], emb[batch.b.to(emb.device)], weights)
    loss = contrastive_loss(s, y, margin)
    with torch.no_grad():
        acc = ((s > margin / 2).long() == y).float().mean()
    return loss, float(acc)
