"""A rotation-invariant convolutional backbone on a polar resampling of the framed galaxy.

A galaxy has no preferred orientation, and on real survey cutouts the strongest classical
descriptor is rotation-invariant by construction (|FFT over angle| of a polar resampling,
:mod:`galaxy_retrieval.evaluate.descriptors`). A network trained from scratch on a couple of
thousand images must otherwise learn that invariance from augmentations alone, and the
paper's ViT on 8-pixel patches learns mostly colour and size. This backbone builds the
invariance in (the "rotation-invariant pooling" the quality issue asked to try):

    image (B, 3, S, S), framed on the galaxy
      ──resample──▶ (B, 3, S/2 radii, S angles) on rings around the centre
      ──▶ residual CNN whose convolutions wrap around in angle (circular padding) and
          see zeros beyond the centre and the edge in radius; strides halve both axes
      ──▶ mean over angle: a rotation about the centre is a cyclic shift in angle, which
          the circular convolutions carry along and the mean removes (``angle_pool``
          ``mean_max``: the maximum over angle beside it, invariant for the same reason)
      ──▶ flatten over radius (the radial structure stays: bulge, disc, arms, halo)
      ──▶ Linear(→ out_dim)                                   = embed → (B, out_dim)

Rotations by multiples of 360°/(S/2) (the angle step after the stem's stride) give the
same vector exactly; other angles up to interpolation. Flips reverse the angle axis, which
the mean ignores but the convolutions do not: flips are taught by the augmentations.

Config (:class:`~galaxy_retrieval.model.config.ModelConfig` with ``backbone="polar"``):
``image_size`` is the input side S, ``out_dim`` the vector length; its
:class:`~galaxy_retrieval.model.config.PolarSettings` give ``width``, the first stage's
channels (doubled by each of ``depth`` stages), ``angle_pool`` and ``cell_size``, only the
cell size of explanation maps (``gr explain --method similarity``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..descriptors import polar_grid
from .config import ModelConfig
from .registry import register_backbone

__all__ = ["PolarCNN", "polar_grid"]


class _CircularConv(nn.Module):
    """3×3 convolution, padded circularly along angle (width) and with zeros along radius."""

    def __init__(self, cin: int, cout: int, stride: int | tuple[int, int]) -> None:
        super().__init__()
        # the zeros along radius are the convolution's own padding; only the angle wraps
        self.conv = nn.Conv2d(cin, cout, 3, stride, padding=(1, 0), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one copy (a concatenation) instead of two padding passes: F.pad's circular mode
        # was a quarter of the model's CPU time at inference
        return self.conv(torch.cat([x[..., -1:], x, x[..., :1]], dim=-1))


class _Block(nn.Module):
    """A ResNet basic block (He et al. 2016) of circular convolutions."""

    def __init__(self, cin: int, cout: int, stride: int | tuple[int, int]) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _CircularConv(cin, cout, stride),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            _CircularConv(cout, cout, 1),
            nn.BatchNorm2d(cout),
        )
        same = cin == cout and stride in (1, (1, 1))
        self.skip = (
            nn.Identity()
            if same
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


@register_backbone("polar")
class PolarCNN(nn.Module):
    """``embed(x)``: (B, C, S, S) normalised float → (B, out_dim), as the ViT's."""

    counted_buffers: tuple[str, ...] = ()  # the polar grid is geometry, not a parameter

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        depth = config.settings.depth
        s, w = config.image_size, config.settings.width
        self.n_r, self.n_theta = s // 2, s
        # persistent=False: recomputed from the config, never read from a checkpoint
        self.register_buffer("grid", polar_grid(self.n_r, self.n_theta), persistent=False)
        layers: list[nn.Module] = [
            _CircularConv(config.in_chans, w, 1),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
        ]
        # the first stage halves the angle axis only (S angles → S/2, as many as radii)
        cin, stride = w, (1, 2)
        for i in range(depth):
            cout = w * 2**i
            layers.append(_Block(cin, cout, stride))
            cin, stride = cout, 2
        self.features = nn.Sequential(*layers)
        n_r_out = self.n_r
        for _ in range(depth - 1):
            n_r_out = (n_r_out - 1) // 2 + 1
        self.pool = config.settings.angle_pool
        n_stats = 2 if self.pool == "mean_max" else 1
        self.head = nn.Linear(n_stats * cin * n_r_out, config.out_dim)

    def polar(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) → (B, C, S/2 radii, S angles), bilinear, the border repeated past the edge."""
        return F.grid_sample(
            x,
            self.grid.to(x.dtype).expand(x.shape[0], -1, -1, -1),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        self.config.check_input(x)
        f = self.features(self.polar(x))
        pooled = f.mean(dim=3)  # (B, C, radii): invariant to rotation
        if self.pool == "mean_max":
            pooled = torch.cat([pooled, f.amax(dim=3)], dim=1)  # (B, 2C, radii): so is the max
        return self.head(pooled.flatten(1))

    forward = embed
