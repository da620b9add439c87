"""Do neighbours share physical parameters? Rank correlation between queries and results.

Class labels say whether a neighbour is "the same kind"; on the synthetic catalog we also
know what every galaxy was drawn with (axis ratio, Sérsic index, spiral-arm pitch, …), so
we can ask a finer question: when the query is rounder, are its neighbours rounder too?

For a parameter ``v`` and the top-k neighbours ``I`` (Q, k) of queries ``q`` (Q,), we pool
every (query, neighbour) pair and take Spearman's rank correlation of
``(v[q], v[I[q, j]])``. ρ = 1 means neighbours are ordered exactly like their queries,
0 means neighbours carry no information about the query's value (random neighbours), and a
method that only finds the right *class* already gets part of the way where classes differ
in the parameter. Pairs where either side is undefined (NaN, or masked out by ``valid``,
e.g. arm pitch of a galaxy without arms) are dropped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["rankdata", "spearman", "ParameterAgreement", "parameter_agreement"]


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``, ties given their average rank (as scipy.stats.rankdata)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # boundaries of runs of equal values
    starts = np.r_[0, np.flatnonzero(np.diff(xs)) + 1]
    ends = np.r_[starts[1:], len(xs)]
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's ρ: Pearson correlation of the ranks (NaN when either side is constant)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"spearman needs equal lengths, got {a.shape} and {b.shape}")
    if len(a) < 2:
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


@dataclass(frozen=True)
class ParameterAgreement:
    rho: float  # Spearman ρ over pooled (query, neighbour) pairs
    n_pairs: int  # pairs used
    n_dropped: int  # pairs with an undefined value on either side
    k: int

    def to_dict(self) -> dict[str, float | int]:
        return {"rho": self.rho, "n_pairs": self.n_pairs, "n_dropped": self.n_dropped, "k": self.k}


def parameter_agreement(
    query_rows: np.ndarray,
    neighbours: np.ndarray,
    values: np.ndarray,
    k: int = 10,
    valid: np.ndarray | None = None,
) -> ParameterAgreement:
    """Spearman ρ between ``values`` of each query and of its top-``k`` ``neighbours``.

    ``query_rows`` (Q,) and ``neighbours`` (Q, ≥k) index ``values`` (N,); ``valid`` (N,)
    bool marks where the parameter is defined (default: not NaN)."""
    q = np.asarray(query_rows, dtype=np.int64)
    nb = np.asarray(neighbours, dtype=np.int64)
    if nb.ndim != 2 or nb.shape[0] != len(q):
        raise ValueError(f"neighbours must be (len(query_rows), k), got {nb.shape} for {len(q)} queries")
    if not 1 <= k <= nb.shape[1]:
        raise ValueError(f"k={k} must be between 1 and {nb.shape[1]}")
    v = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(v) if valid is None else (np.asarray(valid, bool) & ~np.isnan(v))
    a = np.repeat(q, k)
    b = nb[:, :k].ravel()
    keep = ok[a] & ok[b] & (b >= 0)
    rho = spearman(v[a[keep]], v[b[keep]]) if keep.sum() >= 2 else float("nan")
    return ParameterAgreement(rho=rho, n_pairs=int(keep.sum()), n_dropped=int((~keep).sum()), k=k)
