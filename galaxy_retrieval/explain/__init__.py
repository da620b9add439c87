"""What a match was based on (paper §5, future work): patch maps over the query and its hits.

    from galaxy_retrieval.explain import explain_query
    explain_query("indexes/demo", "q.png", "why.png", k=6)            # similarity (default)
    explain_query("indexes/demo", "q.png", "where.png", method="rollout")

``similarity`` (:mod:`.attribution`): integrated gradients of the score s(q, r) over each
image's patches — specific to the pair, signed, and summing to how much more similar the
image is than an empty cutout. ``rollout`` (:mod:`.rollout`): attention rollout adapted to
mean pooling — where an embedding draws from, the same whatever it is compared with.
"""

from __future__ import annotations

from ..viz.explain import explain_sheet, sheet_size
from .attribution import SimilarityMaps, similarity_maps, sky_baseline
from .query import METHODS, ExplainResult, explain_query
from .rollout import attention_maps, rollout, rollout_maps

__all__ = [
    "METHODS",
    "ExplainResult",
    "explain_query",
    "attention_maps",
    "rollout",
    "rollout_maps",
    "SimilarityMaps",
    "similarity_maps",
    "sky_baseline",
    "explain_sheet",
    "sheet_size",
]
