"""Evaluating a checkpoint: retrieval against held-out labels beside classical baselines.
The metrics themselves live in :mod:`galaxy_retrieval.metrics`."""

from __future__ import annotations

from .descriptors import morphology_features, pixel_features, polar_fourier_features, standardize
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
]
