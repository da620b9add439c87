"""A residual, layer-normalised transformer block (paper §3.3), pre-norm as in ViT."""

from __future__ import annotations

import torch
from torch import nn

from .attention import PerHeadAttention
from .mlp import Mlp

__all__ = ["Block"]


class Block(nn.Module):
    """x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, hidden: int, num_heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden)
        self.attn = PerHeadAttention(hidden, num_heads)
        self.norm2 = nn.LayerNorm(hidden)
        self.mlp = Mlp(hidden, mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
