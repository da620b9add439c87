"""What every backbone is to the rest of the package: :class:`Backbone`, a typing protocol.

The training loop, checkpoints, the embedder, evaluation and explanations take any model
that has these members (the ViT of :mod:`.vit`, the polar CNN of :mod:`.polar`, or a
backbone registered with :func:`~.registry.register_backbone`); ViT-only calls
(``forward_features``, attention maps) check ``config.backbone`` first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from .config import ModelConfig

__all__ = ["Backbone", "count_parameters", "parameter_breakdown"]


@runtime_checkable
class Backbone(Protocol):
    """An ``nn.Module`` built from a :class:`ModelConfig` that maps normalised images
    (B, in_chans, S, S) to vectors (B, out_dim) with ``embed`` (also its ``forward``).

    ``counted_buffers``: names of fixed (non-trainable) tensors that the model's parameter
    count includes, as the paper counts the ViT's position table."""

    config: ModelConfig
    counted_buffers: tuple[str, ...]
    training: bool

    def embed(self, x: torch.Tensor) -> torch.Tensor: ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    # the nn.Module members the package uses
    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def named_children(self) -> Iterator[tuple[str, nn.Module]]: ...

    def get_buffer(self, target: str) -> torch.Tensor: ...

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any: ...

    def to(self, *args: Any, **kwargs: Any) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...


def count_parameters(model: Backbone) -> int:
    """Every trainable tensor plus the fixed tensors the model counts (``counted_buffers``):
    18,060,288 for the ViT ``paper`` preset, as the paper reports (see :mod:`.vit`)."""
    fixed = sum(model.get_buffer(name).numel() for name in model.counted_buffers)
    return sum(p.numel() for p in model.parameters()) + fixed


def parameter_breakdown(model: Backbone) -> dict[str, int]:
    """Counts by top-level part (the members of a module list one by one, ``block0``…),
    plus each counted fixed tensor; they sum to :func:`count_parameters`."""
    out: dict[str, int] = {}
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList):
            for i, sub in enumerate(child):
                out[f"{name.rstrip('s')}{i}"] = sum(p.numel() for p in sub.parameters())
        else:
            out[name] = sum(p.numel() for p in child.parameters())
    for name in model.counted_buffers:
        out[name] = model.get_buffer(name).numel()
    return out
