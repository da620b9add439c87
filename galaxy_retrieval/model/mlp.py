"""The transformer block's two-layer perceptron."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Mlp"]


class Mlp(nn.Module):
    """Linear(hidden, mlp_hidden) → GELU → Linear(mlp_hidden, hidden)."""

    def __init__(self, hidden: int, mlp_hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden, mlp_hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(mlp_hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))
