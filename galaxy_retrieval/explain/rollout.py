"""Attention rollout (Abnar & Zuidema 2020) for a mean-pooled ViT: where the model looks.

Paper §5 (future work) asks what a match was based on. Rollout follows how much of each
output token is made of each input patch, through every block's attention:

    Â_l = ½ · mean_h A_l,h + ½ · I          (the residual x + attn(x) keeps half of x)
    R   = Â_L ⋯ Â_2 · Â_1                    (row i: input patches that output token i holds)
    m_j = (1/N) Σ_i R[i, j]                  (the embedding is the mean of all N outputs)

Each Â is row-stochastic, so R is too and ``m`` sums to 1: the share of the embedding that
comes from patch j, and 1/N everywhere if no token attended to any other. The MLP and the
output head act on each token alone, so they move nothing between patches.

Heads are averaged, not max-fused: this model concatenates the heads with no output
projection, so head h mixes exactly its own 1/H of the hidden channels and the token mixing
of the whole attention sublayer, channel-averaged, *is* the mean of the heads. The mean of
row-stochastic matrices stays row-stochastic; a max needs renormalising and no longer
describes what the network computes.

The map is the same whatever the image is compared with; :mod:`.attribution` gives the
match-specific map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["attention_maps", "rollout", "rollout_maps"]


@torch.no_grad()
def attention_maps(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One forward pass: (per-patch outputs (B, N, D), [attention probs (B, H, N, N) per block]).

    The attention modules' inputs are caught with pre-hooks and their probabilities
    recomputed explicitly (``PerHeadAttention.attention_probs``); the fused kernel of the
    normal forward pass never materialises them."""
    inputs: list[torch.Tensor] = []
    handles = [
        blk.attn.register_forward_pre_hook(lambda _m, args: inputs.append(args[0])) for blk in model.blocks
    ]
    try:
        feats = model.forward_features(x)
    finally:
        for h in handles:
            h.remove()
    return feats, [blk.attn.attention_probs(a) for blk, a in zip(model.blocks, inputs)]


def rollout(attentions: Sequence[torch.Tensor], residual: float = 0.5) -> torch.Tensor:
    """Per-block attention probabilities, first block first, each (B, H, N, N) or (B, N, N),
    → (B, N) importance of each input patch to the mean-pooled embedding (rows sum to 1).

    ``residual`` is the weight given to the identity (½ in Abnar & Zuidema)."""
    if len(attentions) == 0:
        raise ValueError("rollout needs the attention of at least one block")
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual={residual} must lie in [0, 1]")

    def with_residual(a: torch.Tensor) -> torch.Tensor:
        a = a.float()
        if a.ndim == 4:
            a = a.mean(dim=1)
        a = (1.0 - residual) * a + residual * torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        return a / a.sum(dim=-1, keepdim=True)  # exact already for softmax rows; guards rounding

    r = with_residual(attentions[0])
    for a in attentions[1:]:
        r = with_residual(a) @ r
    return r.mean(dim=1)


def rollout_maps(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Normalised model input (B, C, S, S) → (B, grid, grid) rollout maps, each summing to 1."""
    _, attn = attention_maps(model, x)
    g = model.config.grid
    return rollout(attn).reshape(x.shape[0], g, g)
