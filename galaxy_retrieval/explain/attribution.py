"""Which patches made two galaxies similar: integrated gradients of the paper's score.

For a pair (q, r) the score s(q, r) (§3.6, ``galaxy_retrieval.score``) is attributed to the
patches of one image, the other image's embedding held fixed, with integrated gradients
(Sundararajan et al. 2017):

    a_j = Σ_{pixels in patch j} (x − x₀) · (1/m) Σ_{t=1..m} ∂s(embed(x₀ + α_t (x − x₀)), e_other)/∂x
    α_t = (t − ½)/m

The baseline x₀ is the same cutout with nothing in it: every pixel set to the image's own
median per channel, which for a cutout centred on one galaxy is the sky level. Then the
maps are complete: Σ_j a_j = s(x, ·) − s(x₀, ·) up to the midpoint rule's error, so each
patch's value is its share of "how much more similar than an empty cutout". Positive
patches pull the two galaxies together; negative ones count against the match.

Why not the plain gradient × input: at an exact duplicate (a catalog image given as the
query) the score is at its maximum, its gradient there is zero for the cosine term and a
direction without meaning for the distance terms. The integral runs mostly through images
that are not duplicates, so it stays informative. The patch encoder is linear, so summing
pixel attributions over a patch equals gradient × input on that patch's token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..score import ScoreWeights, score_torch

__all__ = ["SimilarityMaps", "sky_baseline", "similarity_maps"]


@dataclass(frozen=True)
class SimilarityMaps:
    maps: torch.Tensor  # (B, grid, grid) score attributed to each patch
    scores: torch.Tensor  # (B,) the objective at the image
    baseline_scores: torch.Tensor  # (B,) the objective at the blank-sky baseline; maps sum to scores − this


def sky_baseline(x: torch.Tensor) -> torch.Tensor:
    """(B, C, S, S) → the same shape, every pixel the image's median per channel."""
    med = x.flatten(2).median(dim=-1).values
    return med[:, :, None, None].expand_as(x).contiguous()


def _objective(
    model: nn.Module, x: torch.Tensor, targets: torch.Tensor, weights: ScoreWeights
) -> torch.Tensor:
    """(B,) mean over the T targets of s(embed(x_b), targets[b, t])."""
    e = model.embed(x).float()
    return score_torch(e[:, None, :], targets, weights).mean(dim=1)


def similarity_maps(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    weights: ScoreWeights = ScoreWeights(),
    steps: int = 32,
    baseline: torch.Tensor | None = None,
    batch_size: int = 128,
) -> SimilarityMaps:
    """Integrated-gradients maps of the score of each image against fixed embeddings.

    ``x``: normalised model input (B, C, S, S). ``targets``: (B, D) — image b is scored
    against targets[b] — or (B, T, D), scored by its mean score against T embeddings (the
    query against all its hits). ``baseline`` defaults to :func:`sky_baseline`. Model calls
    are batched ``batch_size`` images at a time over all steps and images."""
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    b = x.shape[0]
    tg = targets.detach().float()
    if tg.ndim == 2:
        tg = tg[:, None, :]
    if tg.ndim != 3 or tg.shape[0] != b:
        raise ValueError(f"targets must be (B, D) or (B, T, D) with B={b}, got {tuple(targets.shape)}")
    x = x.detach().float()
    x0 = sky_baseline(x) if baseline is None else baseline.detach().float().expand_as(x)
    delta = x - x0
    alphas = (torch.arange(steps, dtype=torch.float32, device=x.device) + 0.5) / steps
    # every (step, image) pair as one flat batch; the model treats images independently
    path_t = alphas.repeat_interleave(b)
    path_i = torch.arange(b, device=x.device).repeat(steps)
    grad_sum = torch.zeros_like(x)
    with torch.enable_grad():
        for lo in range(0, len(path_t), batch_size):
            t, i = path_t[lo : lo + batch_size], path_i[lo : lo + batch_size]
            xi = (x0[i] + t[:, None, None, None] * delta[i]).requires_grad_(True)
            (g,) = torch.autograd.grad(_objective(model, xi, tg[i], weights).sum(), xi)
            grad_sum.index_add_(0, i, g)
    attr = grad_sum / steps * delta
    p = model.config.cell_size
    g_ = model.config.grid
    maps = attr.reshape(b, attr.shape[1], g_, p, g_, p).sum(dim=(1, 3, 5))
    with torch.no_grad():
        scores = _objective(model, x, tg, weights)
        base = _objective(model, x0, tg, weights)
    return SimilarityMaps(maps.detach(), scores, base)
