"""Several examples as one query: objects like all of the positives and unlike the negatives.

Each candidate's score is its mean score to the positives minus its mean score to the
negatives; its three terms are the means over the positives. Plain functions over arrays:
the searcher picks the candidates (a FAISS shortlist around the positives' mean, or every row).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

from ..score import ScoreWeights
from .exact import score_terms

__all__ = ["example_vectors", "rank_by_examples"]


def example_vectors(
    examples: Sequence[Any],
    position_of: Callable[[str], int],
    vectors: Any,
    embed: Callable[[Sequence[Any]], np.ndarray],
) -> tuple[np.ndarray, list[int]]:
    """(vectors (n, D), positions of the examples given by id): an id (a ``str``) is a stored
    vector, anything else an image, embedded in one batch."""
    vecs: list[np.ndarray | None] = []
    images: list[Any] = []
    positions: list[int] = []
    for e in examples:
        if isinstance(e, str):
            p = position_of(e)
            positions.append(p)
            vecs.append(np.asarray(vectors[p], np.float32))
        else:
            images.append(e)
            vecs.append(None)
    if images:
        emb = iter(embed(images))
        vecs = [v if v is not None else next(emb) for v in vecs]
    return np.stack(vecs).astype(np.float32), positions  # type: ignore[arg-type]


def rank_by_examples(
    xp: np.ndarray,
    xn: np.ndarray,
    vectors: Any,
    cand: np.ndarray,
    weights: ScoreWeights,
    k: int,
    leave_out: Collection[int] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top ``k`` of the candidate positions ``cand`` by the combined score: (scores (n,),
    positions (n,), terms (n, 3)), float32, n ≤ k; ``leave_out`` (the examples given by id)
    never come back. Ties go to the lower position."""
    w = np.array(weights.as_tuple(), np.float64)
    best_s: list[np.ndarray] = [np.empty(0)]
    best_p: list[np.ndarray] = [np.empty(0, np.int64)]
    best_t: list[np.ndarray] = [np.empty((0, 3))]
    step = max(1, (1 << 24) // max(1, xp.shape[1]))
    for lo in range(0, len(cand), step):  # blocks: an exact pass may cover every row
        c = np.asarray(cand[lo : lo + step], np.int64)
        rows = np.asarray(vectors[c])
        tp = np.stack(score_terms(xp, rows), axis=-1).astype(np.float64)  # (p, m, 3)
        score = (tp @ w).mean(axis=0)
        if len(xn):
            score = score - (np.stack(score_terms(xn, rows), axis=-1).astype(np.float64) @ w).mean(axis=0)
        best_s.append(score)
        best_p.append(c)
        best_t.append(tp.mean(axis=0))
    score, pos, terms = np.concatenate(best_s), np.concatenate(best_p), np.concatenate(best_t)
    keep = ~np.isin(pos, list(leave_out)) if leave_out else np.ones(len(pos), bool)
    score, pos, terms = score[keep], pos[keep], terms[keep]
    order = np.lexsort((pos, -score))[:k]  # score descending, ties → lower position
    return score[order].astype(np.float32), pos[order], terms[order].astype(np.float32)
