"""FAISS factory strings checked before any heavy work, and FAISS' errors in one line."""

from __future__ import annotations

import re
from typing import Any

from ...errors import ConfigError
from .spec import IndexSpec, nlist_of, resolve_factory

__all__ = ["faiss_message", "check_factory", "check_index_spec", "is_ivf"]


def faiss_message(e: Exception) -> str:
    """The reason in a FAISS exception, without its 'Error in <C++ signature> at <file>:<line>:' prefix."""
    text = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    m = re.search(r"\.(?:cpp|h):\d+: (.*)$", text)
    return m.group(1) if m else text


def check_factory(factory: str, dim: int, metric: str = "l2") -> Any:
    """An empty FAISS index for ``factory`` in dimension ``dim``; a :class:`ConfigError` naming
    the string and FAISS' reason if FAISS cannot build it (checked before any heavy work)."""
    import faiss

    if metric not in ("l2", "cosine"):
        raise ConfigError(f"index metric must be 'l2' or 'cosine', got {metric!r}")
    try:
        return faiss.index_factory(
            int(dim), factory, faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
        )
    except RuntimeError as e:
        raise ConfigError(f"FAISS cannot build {factory!r} for dimension {dim}: {faiss_message(e)}") from None


def check_index_spec(spec: IndexSpec, n: int, dim: int) -> str:
    """Everything about ``spec`` that can fail at this catalog size and dimension, checked
    before the embedding pass rather than after it: the factory string is one FAISS can
    build, and an inverted file has no more lists than there are vectors to train it.
    Returns the factory string."""
    factory, _ = resolve_factory(spec, n, dim)
    index = check_factory(factory, dim, spec.metric)
    if spec.ondisk and not is_ivf(index):
        raise ConfigError(
            f"{factory}: on-disk inverted lists need an inverted-file (IVF) index, e.g. auto or ivf-pq"
        ).resolved_by("index_type")
    nlist = nlist_of(factory)
    if n < nlist:
        raise ConfigError(
            f"{factory}: {n} vectors are fewer than the {nlist} inverted lists; use a flat or HNSW index, or fewer lists"
        ).resolved_by("index_type")
    return factory


def is_ivf(index: Any) -> bool:
    import faiss

    return faiss.try_extract_index_ivf(index) is not None
