"""Multi-head self-attention with per-head query/key/value projections (paper §3.3).

The paper's network gives each head its own ``Linear(d_head, d_head)`` for q, k and v,
applied to that head's slice of the hidden vector (not a full ``Linear(hidden, 3·hidden)``),
and concatenates the heads' outputs without a further output projection. That is what
makes the parameter count come out at the reported 18,060,288 (see ``vit.py``).

The 3 × heads small linears are stored as one (3, heads, d, d) weight and applied with a
single einsum, which is the same function as 3·heads separate ``nn.Linear`` modules but one
kernel call. Attention runs for every image of the batch (the published code applied it to
the first image only).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PerHeadAttention"]


class PerHeadAttention(nn.Module):
    def __init__(self, hidden: int, num_heads: int) -> None:
        super().__init__()
        if hidden % num_heads:
            raise ValueError(f"hidden={hidden} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = hidden // num_heads
        d = self.head_dim
        # weight[t, h] is the (out, in) matrix of projection t ∈ {q, k, v} of head h
        self.qkv_weight = nn.Parameter(torch.empty(3, num_heads, d, d))
        self.qkv_bias = nn.Parameter(torch.empty(3, num_heads, d))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # the initialisation nn.Linear(d, d) would give each small projection
        bound = 1.0 / math.sqrt(self.head_dim)
        nn.init.uniform_(self.qkv_weight, -bound, bound)
        nn.init.uniform_(self.qkv_bias, -bound, bound)

    def project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, hidden) → (3, B, H, N, d): every head's queries, keys and values."""
        b, n, _ = x.shape
        xh = x.reshape(b, n, self.num_heads, self.head_dim)
        # (B, N, H, d) × (3, H, d_out, d_in) → (3, B, H, N, d_out)
        qkv = torch.einsum("bnhi,thoi->tbhno", xh, self.qkv_weight.to(xh.dtype))
        return qkv + self.qkv_bias.to(qkv.dtype)[:, None, :, None, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.project_qkv(x).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, d), softmax(qkᵀ/√d)·v
        return out.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim)

    def attention_probs(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, hidden) → (B, H, N, N): softmax(qkᵀ/√d), the weights ``forward`` applies
        to the values (row i: how much token i reads from each token). Materialised here,
        never in ``forward``, which leaves it to the fused kernel; for explanations only."""
        q, k, _ = self.project_qkv(x).unbind(0)
        logits = (q.float() @ k.float().transpose(-2, -1)) / math.sqrt(self.head_dim)
        return logits.softmax(dim=-1)
