"""The GalaxIDNet vision transformer (paper §3.3).

    image (B, 3, S, S) ──patchify──▶ (B, P, 3·p·p) ──Linear──▶ (B, P, hidden)
        + fixed 2-D sin/cos position table (a buffer, not learned)
        ──▶ depth × [x + PerHeadAttention(LN(x)); x + MLP(LN(x))]
        ──▶ Linear(hidden, out_dim) per patch          = forward_features → (B, P, out_dim)
        ──▶ mean over patches                           = embed            → (B, out_dim)

No class token, no final LayerNorm, no attention output projection: the paper's count of
18,060,288 "trainable parameters" for the ``paper`` preset comes out exactly with this
architecture when the fixed position table is counted as well (the published code kept it
as a tensor in the module), which :func:`count_parameters` reproduces:

    =================================================  ==========
    patch encoder   Linear(16·16·3 = 768 → 1024)         787,456
    position table  196 patches × 1024 (fixed)           200,704
    per block (×3)  LayerNorm(1024) ×2                     4,096
                    q, k, v per head: 3 × 4 × (256·256+256) 789,504
                    MLP 1024 → 2048 → 1024 (with biases)  4,197,376
                    block total                        4,990,976
    3 blocks                                          14,972,928
    output head     Linear(1024 → 2048)                2,099,200
    total                                             18,060,288
    =================================================  ==========

The search over candidate layouts (class token or not, 196 or 197 table rows, output
projection or not, MLP width, biases, final LayerNorm) that pins this down left a few
layouts with the same total; this is the one with no extra tokens or norms, which also
matches the text ("linear encoder … residual layer-normalized blocks … output vector of
2048 per patch").
"""

from __future__ import annotations

import torch
from torch import nn

from .block import Block
from .config import ViTConfig
from .patch_embed import PatchEmbed
from .pos_embed import sincos_position_table

__all__ = ["GalaxIDNetViT", "build_model", "count_parameters", "parameter_breakdown"]


class GalaxIDNetViT(nn.Module):
    """Per-patch features with ``forward_features``; one vector per image with ``embed``."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config.patch_size, config.in_chans, config.hidden)
        # persistent=False: recomputed from the config, never read from a checkpoint
        self.register_buffer("pos_table", sincos_position_table(config.grid, config.hidden), persistent=False)
        self.blocks = nn.ModuleList(
            Block(config.hidden, config.num_heads, config.mlp_hidden) for _ in range(config.depth)
        )
        self.head = nn.Linear(config.hidden, config.out_dim)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) normalised float → (B, P, out_dim) per-patch outputs."""
        self.config.check_input(x)
        h = self.patch_embed(x) + self.pos_table.to(x.dtype)
        for blk in self.blocks:
            h = blk(h)
        return self.head(h)

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """Mean over patch outputs: one vector per object, whatever the patch count."""
        return features.mean(dim=1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) → (B, out_dim)."""
        return self.pool(self.forward_features(x))

    forward = embed


def build_model(config: ViTConfig, seed: int | None = None) -> nn.Module:
    """A freshly initialised model of ``config.backbone`` (the ViT, or the polar CNN of
    :mod:`galaxy_retrieval.model.polar`); with ``seed`` the initial weights depend on it
    only (the global RNG is restored afterwards), so "untrained, same seed" is reproducible."""
    from .polar import PolarCNN

    cls = PolarCNN if config.backbone == "polar" else GalaxIDNetViT
    if seed is None:
        return cls(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return cls(config)


def count_parameters(model: GalaxIDNetViT) -> int:
    """The paper's parameter count: every trainable tensor plus the fixed position table.

    ``sum(p.numel() for p in model.parameters()) + model.pos_table.numel()``; 18,060,288
    for the ``paper`` preset (breakdown in the module docstring)."""
    return sum(p.numel() for p in model.parameters()) + model.pos_table.numel()


def parameter_breakdown(model: GalaxIDNetViT) -> dict[str, int]:
    """Counts by part, summing to :func:`count_parameters`."""
    out = {
        "patch_embed": sum(p.numel() for p in model.patch_embed.parameters()),
        "pos_table": model.pos_table.numel(),
    }
    for i, blk in enumerate(model.blocks):
        out[f"block{i}"] = sum(p.numel() for p in blk.parameters())
    out["head"] = sum(p.numel() for p in model.head.parameters())
    return out
