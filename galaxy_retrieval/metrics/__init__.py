"""How good a ranking is: precision, AP and nDCG against labels (:mod:`.ranking`), the
paper's loose accuracy (:mod:`.loose`), and recall against exact ground truth with the
speed/recall Pareto front (:mod:`.recall`). Depends only on :mod:`galaxy_retrieval.score`."""

from __future__ import annotations

from .loose import loose_accuracy, split_loose_accuracy
from .ranking import average_precision_at_k, macro_average, ndcg_at_k, precision_at_k
from .recall import pareto_front, percentile_ms, recall_at, recall_at_tie_aware

__all__ = [
    "precision_at_k",
    "average_precision_at_k",
    "ndcg_at_k",
    "macro_average",
    "loose_accuracy",
    "split_loose_accuracy",
    "recall_at",
    "recall_at_tie_aware",
    "pareto_front",
    "percentile_ms",
]
