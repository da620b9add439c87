"""Label-free training of any backbone (the polar CNN, the GalaxIDNet ViT) with a contrastive
loss (paper §3.4–3.5)."""

from __future__ import annotations

from .augment import NEGATIVE_TRANSFORMS, POSITIVE_TRANSFORMS, AugmentConfig, PairAugmenter
from .config import TrainConfig
from .loop import TrainResult, train
from .reuse import resumable_with, same_config, trained_with
from .splits import split_indices
from .validate import validate

__all__ = [
    "train",
    "TrainConfig",
    "TrainResult",
    "validate",
    "split_indices",
    "trained_with",
    "resumable_with",
    "same_config",
    "AugmentConfig",
    "PairAugmenter",
    "POSITIVE_TRANSFORMS",
    "NEGATIVE_TRANSFORMS",
]
