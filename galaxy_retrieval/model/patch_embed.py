"""Linear patch encoder: flattened patches with all colour channels kept (paper §3.3)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PatchEmbed"]


class PatchEmbed(nn.Module):
    """Cut (B, C, S, S) into non-overlapping p×p patches, flatten each with its channels
    (C·p·p values, so a patch encodes position and colour together) and map it linearly
    to the hidden size: one ``Linear(C·p·p, hidden)`` shared by all patches."""

    def __init__(self, patch_size: int, in_chans: int, hidden: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(patch_size * patch_size * in_chans, hidden)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) → (B, P, C·p·p), patches row-major, values ordered (C, p, p)."""
        b, c, h, w = x.shape
        p = self.patch_size
        x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, (h // p) * (w // p), c * p * p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.patchify(x))
