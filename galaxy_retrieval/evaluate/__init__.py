"""Measuring retrieval: ranking metrics, loose accuracy, and the evaluation of a checkpoint."""

from __future__ import annotations

from .metrics import average_precision_at_k, loose_accuracy, macro_average, ndcg_at_k, precision_at_k
from .retrieval import EvalReport, RetrievalScores, evaluate, exact_scores, exact_topk, pixel_features

__all__ = [
    "evaluate",
    "EvalReport",
    "RetrievalScores",
    "exact_scores",
    "exact_topk",
    "pixel_features",
    "precision_at_k",
    "average_precision_at_k",
    "ndcg_at_k",
    "macro_average",
    "loose_accuracy",
]
