"""The candidate indexes of a sweep: each name resolved to a FAISS factory up front, then
built (training on a sample) or loaded from the work directory's cache with the build time
it took, or the index directory's own FAISS index (``existing``)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json
from ..errors import ConfigError
from ..index.candidates import (
    IndexSpec,
    auto_nlist,
    build_faiss_index,
    check_factory,
    load_faiss_index,
    resolve_factory,
)
from ..index.manifest import read_manifest
from ..progress import Progress
from .config import RerankBenchConfig
from .datasets import BenchData, existing_faiss_file

__all__ = ["IndexBuild", "plan_indexes", "get_index", "knobs"]


@dataclass(frozen=True)
class IndexBuild:
    """One candidate index as built (or loaded from the work directory's cache)."""

    name: str  # as given in --indexes
    factory: str  # the FAISS factory string it resolved to
    metric: str
    build_s: float | None  # train + add, from the run that built it (None: not recorded)
    train_s: float | None
    add_s: float | None
    reused: bool  # loaded from the cache: build times are those of the earlier run
    index_bytes: int  # serialized size, ≈ its resident size in RAM
    ntotal: int
    train_size: int
    ef_construction: int
    file: str
    why: str = ""

    @property
    def index_bytes_per_vector(self) -> float:
        return self.index_bytes / max(self.ntotal, 1)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "index_bytes_per_vector": self.index_bytes_per_vector}


def knobs(index: Any) -> tuple[bool, bool]:
    """(has an IVF level, has an HNSW graph) — which of nprobe / efSearch mean something."""
    import faiss

    base = (
        faiss.downcast_index(index.index)
        if isinstance(index, faiss.IndexPreTransform)
        else faiss.downcast_index(index)
    )
    ivf = faiss.try_extract_index_ivf(base) if hasattr(faiss, "try_extract_index_ivf") else None
    return ivf is not None, getattr(base, "hnsw", None) is not None


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def plan_indexes(cfg: RerankBenchConfig, n: int, dim: int, metric: str) -> list[tuple[str, str]]:
    """(name, factory) of every index to run; each factory checked by FAISS up front."""
    out = []
    for name in cfg.indexes:
        if name.lower() == "existing":
            if cfg.index is None:
                raise ConfigError(
                    "the index type 'existing' (the index directory's own FAISS index) needs an index directory"
                ).resolved_by("index")
            out.append((name, "existing"))
            continue
        kind = name.replace("{nlist}", str(auto_nlist(n)))
        factory, _ = resolve_factory(IndexSpec(kind=kind, metric=metric), n, dim)
        check_factory(factory, dim, metric)
        out.append((name, factory))
    return out


def get_index(
    cfg: RerankBenchConfig, data: BenchData, name: str, factory: str, metric: str, progress: Progress
) -> tuple[Any, IndexBuild]:
    import faiss

    if factory == "existing":
        path = existing_faiss_file(data)
        info = (read_manifest(data.index_dir).faiss or {}) if data.index_dir else {}  # type: ignore[arg-type]
        index = load_faiss_index(path, info)
        return index, IndexBuild(
            name=name,
            factory=str(info.get("factory", "?")),
            metric=str(info.get("metric", "l2")),
            build_s=_num(info.get("build_seconds")),
            train_s=_num(info.get("train_seconds")),
            add_s=_num(info.get("add_seconds")),
            reused=True,
            index_bytes=path.stat().st_size,
            ntotal=int(index.ntotal),
            train_size=int((info.get("spec") or {}).get("train_size") or 0),
            ef_construction=int((info.get("spec") or {}).get("ef_construction") or 0),
            file=str(path),
            why="the index directory's own FAISS index",
        )
    train = min(cfg.train_size, data.n)
    spec = IndexSpec(
        kind=factory, metric=metric, ef_construction=cfg.ef_construction, train_size=train, seed=cfg.seed
    )
    stem = f"{_slug(factory)}-{metric}-train{train}-efc{cfg.ef_construction}-seed{cfg.seed}"
    path = Path(cfg.workdir) / "indexes" / data.key / f"{stem}.faiss"
    side = path.with_suffix(".json")
    info: dict[str, Any] | None = None
    if path.is_file() and side.is_file() and not cfg.rebuild:
        try:
            info = json.loads(side.read_text())
            index = faiss.read_index(str(path))
            if index.ntotal != data.n:
                info = None
            else:
                progress.log(f"{factory}: reusing {path} (built in {info['build_seconds']:.1f} s)")
        except (OSError, RuntimeError, ValueError, KeyError):
            info = None
    if info is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        info = build_faiss_index(data.vectors, spec, path, progress)
        atomic_write_json(side, info)
        index = faiss.read_index(str(path))
        reused = False
    else:
        reused = True
    return index, IndexBuild(
        name=name,
        factory=factory,
        metric=metric,
        build_s=float(info["build_seconds"]),
        train_s=_num(info.get("train_seconds")),
        add_s=_num(info.get("add_seconds")),
        reused=reused,
        index_bytes=path.stat().st_size,
        ntotal=int(index.ntotal),
        train_size=train,
        ef_construction=cfg.ef_construction,
        file=str(path),
        why=str(info.get("chosen_because", "")),
    )
