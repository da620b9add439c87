"""What `gr rerank-benchmark` sweeps: :class:`RerankBenchConfig`, the command line's list
syntax (``"1,2,5"``, FAISS factory strings with commas) and where the result JSON goes."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .datasets import SyntheticSpec

__all__ = [
    "RerankBenchConfig",
    "parse_index_list",
    "parse_int_list",
    "default_result_path",
    "DEFAULT_INDEXES",
]

#: A PCA to 64 dimensions (the data's intrinsic dimension is low) in front of an inverted file
#: with 8-bit codes (64 bytes per vector), and in front of an HNSW graph. ``{nlist}`` in a
#: factory string becomes the catalog size's list count (see :func:`auto_nlist`).
DEFAULT_INDEXES = ("PCA64,IVF{nlist},SQ8", "PCA64,HNSW32")
_NAMED = ("flat", "hnsw", "ivf-pq", "auto", "existing")


def _ints(name: str, values: Sequence[int], low: int = 1) -> tuple[int, ...]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ConfigError(f"{name} values must be integers ≥ {low}, got {v!r}").resolved_by(name)
        out.append(int(v))
    if not out:
        raise ConfigError(f"{name} needs at least one value").resolved_by(name)
    return tuple(dict.fromkeys(out))  # in order, without repeats


@dataclass(frozen=True)
class RerankBenchConfig:
    """What to benchmark. Give exactly one of ``index`` (an index directory) or ``synthetic``
    (a catalog size); ``dim``, ``dtype`` and ``seed`` describe the synthetic catalog. The list
    fields (``k``, ``indexes``, ``refine``, ``nprobe``, ``ef_search``) also accept the
    command line's text, e.g. ``refine="1,2,5"``."""

    index: Path | None = None
    synthetic: int | None = None
    dim: int = 2048
    dtype: str = "float32"
    workdir: Path = Path("data/bench")
    queries: int = 1000
    k: tuple[int, ...] = (10,)
    indexes: tuple[str, ...] = DEFAULT_INDEXES
    refine: tuple[int, ...] = (1, 2, 5, 10, 20)
    nprobe: tuple[int, ...] = (32, 64, 128, 256, 512)
    ef_search: tuple[int, ...] = (64, 128, 256, 512)
    metric: str | None = None  # shortlist metric: l2 | cosine; default l2 (synthetic) or the index's
    ef_construction: int = 40
    train_size: int = 100_000
    threads: int | None = None  # default: every usable core
    latency_queries: int | None = None  # queries timed one at a time; default min(queries, 1000)
    exact_queries: int = 3  # exact one-query scans timed (median)
    cold: bool = False
    readahead: bool = False  # with cold: keep the OS readahead on the catalog mapping (default: MADV_RANDOM)
    rebuild: bool = False
    seed: int = 0
    out_json: Path | None = None  # default: default_result_path(config)
    write_json: bool = True

    def __post_init__(self) -> None:
        if (self.index is None) == (self.synthetic is None):
            raise ConfigError(
                "give either an index directory or a synthetic catalog size (exactly one of them)"
            ).resolved_by("index", "synthetic")
        if self.synthetic is not None:
            SyntheticSpec(n=self.synthetic, dim=self.dim, dtype=self.dtype, seed=self.seed)  # validates
        if isinstance(self.queries, bool) or not isinstance(self.queries, int) or self.queries < 1:
            raise ConfigError(
                f"the query count must be a positive integer, got {self.queries!r}"
            ).resolved_by("queries")
        # List fields take sequences or command-line text ("1,2,5"; see parse_index_list).
        for name in ("k", "refine", "nprobe", "ef_search"):
            object.__setattr__(self, name, parse_int_list(getattr(self, name), name.replace("_", "-")))
        object.__setattr__(self, "indexes", parse_index_list(self.indexes))
        if self.metric not in (None, "l2", "cosine"):
            raise ConfigError(f"the shortlist metric must be l2 or cosine, got {self.metric!r}").resolved_by(
                "metric"
            )
        for name in ("ef_construction", "train_size", "exact_queries"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}").resolved_by(name)
        for name in ("threads", "latency_queries"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name} must be a positive integer, got {v!r}").resolved_by(name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {
            k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in d.items()
        }


def parse_index_list(values: str | Sequence[str]) -> tuple[str, ...]:
    """Index types from command-line text, in order.

    FAISS factory strings contain commas, so: ``;`` always separates entries
    (``"flat;PCA128,HNSW32"``); a double-quoted entry may hold commas
    (``flat,hnsw,"PCA128,HNSW32,Flat"``); otherwise a comma-separated list of the names
    flat, hnsw, ivf-pq, auto, existing is split, and anything else is one factory string.
    Several values (a repeated option) are concatenated."""
    items: list[str] = []
    for value in [values] if isinstance(values, str) else list(values):
        text = value.strip()
        if ";" in text:
            parts = text.split(";")
        elif '"' in text:
            try:
                parts = next(csv.reader([text], skipinitialspace=True, strict=True))
            except csv.Error as e:
                raise ConfigError(f"index type {value!r}: {e}").resolved_by("indexes") from None
        elif all(p.strip().lower() in _NAMED for p in text.split(",")):
            parts = text.split(",")
        else:
            parts = [text]
        items.extend(p.strip() for p in parts)
    if not items or any(not p for p in items):
        raise ConfigError(f"the index types have an empty entry: {values!r}").resolved_by("indexes")
    return tuple(dict.fromkeys(items))


def parse_int_list(text: str | Sequence[int], name: str) -> tuple[int, ...]:
    """``"1,2,5"`` → (1, 2, 5), for the list options; a :class:`ConfigError` names a bad value."""
    if not isinstance(text, str):
        return _ints(name, list(text))
    vals = []
    for part in text.split(","):
        part = part.strip()
        try:
            vals.append(int(part))
        except ValueError:
            raise ConfigError(
                f"{name} must be comma-separated integers (e.g. 1,2,5), got {text!r}"
            ).resolved_by(name) from None
    return _ints(name, vals)


def _size_tag(n: int) -> str:
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def default_result_path(cfg: RerankBenchConfig) -> Path:
    """``benchmarks/results/rerank_synth-1M-d2048-float32.json`` or ``rerank_index-NAME.json``
    (relative to the working directory), with ``-cold`` for cold-cache runs."""
    if cfg.synthetic is not None:
        tag = f"synth-{_size_tag(cfg.synthetic)}-d{cfg.dim}-{cfg.dtype}"
    else:
        tag = f"index-{Path(cfg.index).name}"  # type: ignore[arg-type]
    return Path("benchmarks/results") / f"rerank_{tag}{'-cold' if cfg.cold else ''}.json"
