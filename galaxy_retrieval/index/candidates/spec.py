"""How to build the candidate index: :class:`IndexSpec`, the FAISS factory string it resolves
to at a catalog size (``auto``'s choice), and the one rule for the number of inverted lists."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ...errors import ConfigError

__all__ = ["IndexSpec", "resolve_factory", "auto_nlist", "nlist_of"]

_NAMED = ("auto", "flat", "hnsw", "ivf-pq")
# Catalog sizes where `auto` moves to the next kind of index.
_FLAT_MAX = 50_000
_AUTO_PCA = 64
# `auto` caps its inverted file at this many lists, so k-means work stops growing with N
# (4·√N would train 16,384 lists on 1M vectors at 10M, 32,768 on 2M at 100M): trained on
# 64·8,192 = 524,288 vectors. Measured at 10M × 256 (benchmarks/README.md §7): trained in
# 92 s on 2 shared cores, recall@10 0.981 at 2.95 ms p50 after the exact rerank. Past ~10M
# the lists grow instead (N/8,192 vectors each): a query scans more, no build trains longer.
_AUTO_NLIST_MAX = 8192


@dataclass(frozen=True)
class IndexSpec:
    """How to build the candidate index. ``kind``: auto | flat | hnsw | ivf-pq | a FAISS factory string."""

    kind: str = "auto"
    metric: str = "l2"  # "l2" | "cosine"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int | None = None  # IVF lists; default ≈ 4·√N (auto: at most 8,192)
    pq_m: int | None = None  # PQ sub-quantisers; default D/16 (capped to divide D)
    nprobe: int = 256  # with refine 2+: recall@10 ≥ 0.99 at 1M (benchmarks/README.md)
    seed: int = 0
    add_chunk: int = 65_536
    # Vectors sampled to train PCA/OPQ/IVF/PQ; default max(16384, 64·nlist). A PCA on
    # 2048-d or k-means on 4096 lists needs ~50k–100k, not the whole catalog.
    train_size: int | None = None
    # inverted lists in a file the searcher memory-maps (index/candidates/ondisk.py) instead of in RAM;
    # needs an IVF factory (``auto`` then always picks its IVF branch)
    ondisk: bool = False

    def __post_init__(self) -> None:
        if self.metric not in ("l2", "cosine"):
            raise ConfigError(f"index metric must be 'l2' or 'cosine', got {self.metric!r}")
        if (
            self.kind.lower() not in _NAMED
            and "," not in self.kind
            and self.kind not in ("Flat", "IDMap,Flat")
            and not self.kind[:1].isupper()
        ):
            raise ConfigError(
                f"the index kind must be one of {', '.join(_NAMED)} or a FAISS factory string (e.g. 'IVF1024,PQ64'), got {self.kind!r}"
            ).resolved_by("index_type")
        if self.train_size is not None and self.train_size < 1:
            raise ConfigError(f"train_size must be ≥ 1, got {self.train_size!r}")
        if self.ef_construction < 1:
            raise ConfigError(f"ef_construction must be ≥ 1, got {self.ef_construction!r}")
        # 0 or negative knobs were accepted, stored, and then broke every query (1 hit of 5,
        # or an overflow inside FAISS)
        for name in ("nprobe", "ef_search", "hnsw_m", "add_chunk"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be an integer ≥ 1, got {v!r}")
        if not isinstance(self.ondisk, bool):
            raise ConfigError(f"ondisk must be true or false, got {self.ondisk!r}")
        for name in ("nlist", "pq_m"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name} must be an integer ≥ 1, got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pq_m(dim: int, want: int | None) -> int:
    m = want or max(1, dim // 16)
    while dim % m:  # PQ needs m to divide D
        m -= 1
    return m


def resolve_factory(spec: IndexSpec, n: int, dim: int) -> tuple[str, str]:
    """The FAISS factory string for ``spec`` at this size, and a sentence saying why."""
    kind = spec.kind.lower()
    if kind == "auto":
        if n <= _FLAT_MAX and not spec.ondisk:
            kind, why = (
                "flat",
                f"{n:,} vectors ≤ {_FLAT_MAX:,}: an exact flat scan is fast enough and has recall 1",
            )
        else:
            # Measured (benchmarks/README.md): at 1M × 2048 this reaches recall@10 0.995 after
            # the exact rerank at ~1 ms p50 with 90 B/vector in RAM, while an HNSW graph stalled
            # at recall 0.7 on clustered data and builds far slower.
            nlist = spec.nlist or min(auto_nlist(n), _AUTO_NLIST_MAX)
            capped = spec.nlist is None and nlist < auto_nlist(n)
            pca = f"PCA{_AUTO_PCA}," if dim > 2 * _AUTO_PCA else ""
            return f"{pca}IVF{nlist},SQ8", (
                f"{n:,} vectors > {_FLAT_MAX:,}: {'PCA to 64 dimensions, ' if pca else ''}an inverted file of {nlist} lists "
                + (f"(capped: k-means work does not grow past {_AUTO_NLIST_MAX:,} lists) " if capped else "")
                + "with 8-bit scalar quantisation; the exact rerank restores full precision"
            )
    else:
        why = f"asked for {spec.kind!r}"
    if kind == "flat":
        return "Flat", why
    if kind == "hnsw":
        return f"HNSW{spec.hnsw_m},Flat", why
    if kind == "ivf-pq":
        nlist = spec.nlist or auto_nlist(n)
        return f"IVF{nlist},PQ{_pq_m(dim, spec.pq_m)}", why
    return spec.kind, why


def auto_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: 4·√n rounded to a power of two (FAISS' guideline of
    4–16·√n), at most 65,536, and at most n/39 so that k-means has its 39 training points per
    list. The one rule for every IVF the package builds (auto, ``ivf-pq``, the benchmarks)."""
    nlist = 1 << int(round(math.log2(4 * math.sqrt(max(n, 1)))))
    nlist = min(nlist, 65536)
    while nlist > 1 and nlist * 39 > n:
        nlist //= 2
    return max(1, nlist)


def nlist_of(factory: str) -> int:
    """The inverted lists a factory string names (``PCA64,IVF1024,SQ8`` → 1024); 1 without an IVF stage."""
    for part in factory.split(","):
        if part.startswith("IVF"):
            digits = "".join(ch for ch in part[3:] if ch.isdigit())
            if digits:
                return int(digits)
    return 1
