"""Measuring retrieval: ranking metrics, loose accuracy, and the evaluation of a checkpoint."""

from __future__ import annotations

from .descriptors import morphology_features, pixel_features, polar_fourier_features, standardize
from ..metrics import average_precision_at_k, loose_accuracy, macro_average, ndcg_at_k, precision_at_k, split_loose_accuracy
from .retrieval import BASELINES, EvalReport, RetrievalScores, evaluate

__all__ = [
    "evaluate",
    "EvalReport",
    "RetrievalScores",
    "BASELINES",
    "pixel_features",
    "polar_fourier_features",
    "morphology_features",
    "standardize",
    "precision_at_k",
    "average_precision_at_k",
    "ndcg_at_k",
    "macro_average",
    "loose_accuracy",
    "split_loose_accuracy",
]
