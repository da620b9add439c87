"""`SearchOptions`: the settings of one search, shared by every query path.

    s.query(object_id="42", options=SearchOptions(k=20, nprobe=64))
    s.query(object_id="42", k=20, nprobe=64)           # the same: keywords fold into the options

``refine`` is the shortlist factor: FAISS returns ``k × refine`` candidates, the exact score
re-orders them, and the top ``k`` are returned (LanceDB's ``refine_factor``). ``exact=True``
bypasses FAISS and scans every vector: the ground truth. ``nprobe`` (IVF lists opened) and
``ef_search`` (HNSW beam) override the index's stored defaults for this call only; an index
without that level ignores them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Literal

from ..errors import QueryError

__all__ = ["ORDERS", "Order", "SearchOptions", "search_options"]

Order = Literal["most", "least"]
ORDERS: tuple[str, ...] = ("most", "least")


@dataclass(frozen=True)
class SearchOptions:
    k: int = 10  # hits per query
    refine: int = 10  # FAISS shortlists k × refine candidates for the exact rerank
    exact: bool = False  # scan every vector instead of the FAISS shortlist (ground truth)
    nprobe: int | None = None  # IVF lists opened per query (None: the index's stored default)
    ef_search: int | None = None  # HNSW search breadth (None: the index's stored default)
    # one boolean expression over the metadata columns (index/filters.py), e.g. "label = 3"
    where: str | None = None
    order: Order = "most"  # "least": the k least similar (an exact scan), least first
    # drop a hit within this angle of the query's position or of a better hit, and refill
    min_separation_arcsec: float | None = None

    def __post_init__(self) -> None:
        # whole numbers from numpy (np.int64) are fine; stored as int so FAISS and JSON take them
        object.__setattr__(self, "k", _whole("k", self.k))
        object.__setattr__(self, "refine", _whole("refine", self.refine))
        if self.nprobe is not None:
            object.__setattr__(self, "nprobe", _whole("nprobe", self.nprobe))
        if self.ef_search is not None:
            object.__setattr__(self, "ef_search", _whole("ef_search", self.ef_search))
        if not isinstance(self.exact, bool) and self.exact not in (True, False):  # numpy's bool_ is fine
            raise QueryError(f"exact must be True or False, got {self.exact!r}")
        object.__setattr__(self, "exact", bool(self.exact))
        if self.where is not None and not isinstance(self.where, str):
            raise QueryError(f"where must be one condition as text, got {type(self.where).__name__}")
        if self.order not in ORDERS:
            raise QueryError(f"order must be 'most' or 'least', got {self.order!r}")
        sep = self.min_separation_arcsec
        if sep is not None:
            if isinstance(sep, bool) or not isinstance(sep, Real) or not (math.isfinite(sep) and sep > 0):
                raise QueryError(f"minimum separation {sep!r} arcsec must be > 0")
            object.__setattr__(self, "min_separation_arcsec", float(sep))

    @property
    def least(self) -> bool:
        return self.order == "least"


FIELDS = frozenset(f.name for f in dataclasses.fields(SearchOptions))


def search_options(
    options: SearchOptions | None = None, overrides: Mapping[str, Any] | None = None
) -> SearchOptions:
    """``options`` (default: :class:`SearchOptions`) with keyword ``overrides`` folded in: the
    one place where a searcher method's ``k=``, ``nprobe=`` … become the options of the call."""
    base = options if options is not None else SearchOptions()
    if not isinstance(base, SearchOptions):
        raise QueryError(f"options must be a SearchOptions, got {type(base).__name__}")
    if not overrides:
        return base
    unknown = sorted(set(overrides) - FIELDS)
    if unknown:  # a misspelt keyword, as Python reports one
        known = ", ".join(sorted(FIELDS))
        raise TypeError(f"unexpected search option(s) {', '.join(unknown)}; the options are {known}")
    return dataclasses.replace(base, **overrides)


def _whole(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, Integral):
        raise QueryError(f"{name} must be a whole number, got {v!r}")
    if v < 1:
        raise QueryError(f"{name} must be ≥ 1, got {v}")
    return int(v)
