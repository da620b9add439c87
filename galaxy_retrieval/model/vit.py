"""The GalaxIDNet vision transformer (paper §3.3).

    image (B, 3, S, S) ──patchify──▶ (B, P, 3·p·p) ──Linear──▶ (B, P, hidden)
        + fixed 2-D sin/cos position table (a buffer, not learned)
        ──▶ depth × [x + PerHeadAttention(LN(x)); x + MLP(LN(x))]
        ──▶ Linear(hidden, out_dim) per patch          = forward_features → (B, P, out_dim)
        ──▶ mean over patches                           = embed            → (B, out_dim)

No class token, no final LayerNorm, no attention output projection: the paper's count of
18,060,288 "trainable parameters" for the ``paper`` preset comes out exactly with this
architecture when the fixed position table is counted as well (the published code kept it
as a tensor in the module), which :func:`~.backbone.count_parameters` reproduces:

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
from .config import ModelConfig
from .patch_embed import PatchEmbed
from .pos_embed import sincos_position_table
from .registry import register_backbone

__all__ = ["GalaxIDNetViT"]


@register_backbone("vit")
class GalaxIDNetViT(nn.Module):
    """Per-patch features with ``forward_features``; one vector per image with ``embed``.
    Its shape is ``config.settings`` (:class:`~.config.ViTSettings`)."""

    #: the paper's parameter count includes the fixed position table
    counted_buffers: tuple[str, ...] = ("pos_table",)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        vs = config.settings
        self.patch_embed = PatchEmbed(vs.patch_size, config.in_chans, vs.hidden)
        # persistent=False: recomputed from the config, never read from a checkpoint
        self.register_buffer("pos_table", sincos_position_table(config.grid, vs.hidden), persistent=False)
        self.blocks = nn.ModuleList(Block(vs.hidden, vs.num_heads, vs.mlp_hidden) for _ in range(vs.depth))
        self.head = nn.Linear(vs.hidden, config.out_dim)

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
