"""Image files → model inputs (or vectors) on every core: a process pool decodes, frames
and, on the CPU, embeds, in order, while the calling process collects and writes.

:func:`prepare_rows` is the one loop; build-index, ``add``, evaluation and the training
set's pre-load all read image folders through it. Order and results do not depend on the
number of workers: each image is prepared by the same function, and results are yielded in
row order. An unreadable file is an :class:`~galaxy_retrieval.errors.ImageReadError` naming
it (raised, or skipped and reported with ``on_error="skip"``), exactly as the catalog's own
reader reports it.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..framing import Framing, FramingStats
from .boxes import BoxStore, file_key
from .config import IngestConfig
from .prepare import Prepared, prepare_files

if TYPE_CHECKING:
    import torch

__all__ = [
    "IngestStats",
    "PreparedBatch",
    "can_prepare",
    "prepare_rows",
    "embed_prepared",
    "open_box_store",
    "workers_embed",
]


@dataclass
class IngestStats:
    """CPU seconds per stage (summed over workers; ``embed_s`` is wall time when this
    process embeds, with its threads), wall seconds, and counts."""

    images: int = 0
    skipped: int = 0
    decode_s: float = 0.0
    framing_s: float = 0.0
    resize_s: float = 0.0
    hash_s: float = 0.0
    embed_s: float = 0.0
    wall_s: float = 0.0
    framing: FramingStats = field(default_factory=FramingStats)

    def add(self, p: Prepared) -> None:
        self.decode_s += p.decode_s
        self.framing_s += p.framing_s
        self.resize_s += p.resize_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "skipped": self.skipped,
            "decode_s": self.decode_s,
            "framing_s": self.framing_s,
            "resize_s": self.resize_s,
            "hash_s": self.hash_s,
            "embed_s": self.embed_s,
            "wall_s": self.wall_s,
            "boxes_measured": self.framing.measured,
            "boxes_reused": self.framing.reused,
            "fallback": self.framing.fallback,
        }


@dataclass(frozen=True)
class PreparedBatch:
    rows: np.ndarray  # int64 catalog rows of the readable images, increasing
    x01: torch.Tensor | None  # float32 (b, 3, S, S) in [0, 1]; None when the workers embedded
    skipped: list[tuple[int, str]]
    vectors: np.ndarray | None = None  # (b, D) float32 when the workers embedded


def can_prepare(catalog: Any) -> bool:
    """Whether ``catalog`` reads image files one per row (an image folder)."""
    return callable(getattr(catalog, "file_of", None)) and getattr(catalog, "kind", None) == "image-folder"


def open_box_store(framing: Framing, cfg: IngestConfig) -> BoxStore | None:
    root = cfg.box_dir()
    return None if root is None or framing.mode != "auto" else BoxStore(root, framing, cfg.measure_side)


_EMBEDDER: Any = None  # in a worker: the model it embeds with (inherited through fork)


def workers_embed(embedder: Any, cfg: IngestConfig) -> bool:
    """Whether the workers embed too (:attr:`IngestConfig.embed_in_workers`): a CPU model,
    and workers that inherit it by fork (or none at all)."""
    cpu = str(getattr(embedder, "device", "cpu")) == "cpu"
    return cfg.embed_in_workers and cpu and (cfg.pool_size() == 0 or _context().get_start_method() == "fork")


def _worker_init(embedder: Any = None) -> None:
    import torch

    global _EMBEDDER
    # one thread per worker: the workers are the parallelism (and a forked OpenMP pool is unsafe)
    torch.set_num_threads(1)
    _EMBEDDER = embedder


def _prepare_and_embed(
    paths: list[str], boxes: list, size: int, framing: Framing, measure_side: int, embedder: Any = None
):
    """A worker task that also embeds: the chunk's readable images in one model call, so
    every process decodes, frames and embeds (no stage waits on another process's core)."""
    import torch

    emb = embedder if embedder is not None else _EMBEDDER
    got = prepare_files(paths, boxes, size, framing, measure_side)
    xs = [p.x for p in got if p.error is None]
    t = time.process_time()  # CPU, as the other stages: a worker runs one thread
    vec = (
        emb.embed_float(torch.from_numpy(np.stack(xs)), len(xs)) if xs else np.zeros((0, emb.dim), np.float32)
    )
    embed_s = time.process_time() - t
    return (
        [
            Prepared(None, p.box, p.shape, p.measured, p.error, p.decode_s, p.framing_s, p.resize_s)
            for p in got
        ],
        vec,
        embed_s,
    )


def _context() -> mp.context.BaseContext:
    # fork: a worker starts in milliseconds with the parent's imports; spawn would import
    # torch again in each (seconds), more than a small folder takes to prepare
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


@dataclass(frozen=True)
class _Chunk:
    rows: np.ndarray  # catalog rows, increasing
    keys: list[bytes | None]  # each file's box-store key (None without a store)
    boxes: list  # each file's stored framing box (None: measured by the worker)
    result: Future | Any  # prepare_files' (or _prepare_and_embed's) result, or its future


class _Chunks:
    """The chunks of ``rows``, prepared in order: by a process pool kept
    ``2 × workers + 2`` chunks ahead of the caller, or here, one at a time, without one."""

    def __init__(
        self,
        catalog: Any,
        rows: np.ndarray,
        size: int,
        framing: Framing,
        cfg: IngestConfig,
        store: BoxStore | None,
        stats: IngestStats,
        embedder: Any,
        workers: int,
    ) -> None:
        self.catalog, self.size, self.framing, self.cfg, self.store, self.stats = (
            catalog,
            size,
            framing,
            cfg,
            store,
            stats,
        )
        self.embedder = embedder
        self.in_workers = embedder is not None
        init_args = (embedder,) if self.in_workers and workers else ()
        self.pool = (
            ProcessPoolExecutor(workers, mp_context=_context(), initializer=_worker_init, initargs=init_args)
            if workers
            else None
        )
        self.ahead = 2 * workers + 2 if self.pool else 1  # keep every worker busy while we embed
        self.pending: deque[_Chunk] = deque()
        self._it = iter([rows[i : i + cfg.chunk] for i in range(0, len(rows), cfg.chunk)])

    def _submit(self) -> bool:
        chunk = next(self._it, None)
        if chunk is None:
            return False
        t = time.process_time()
        store = self.store
        paths = [str(self.catalog.file_of(int(r))) for r in chunk]
        keys = [file_key(p) for p in paths] if store is not None else [None] * len(paths)
        boxes = [store.get(k) for k in keys] if store is not None else [None] * len(paths)
        self.stats.hash_s += time.process_time() - t
        args: tuple = (paths, boxes, self.size, self.framing, self.cfg.measure_side)
        fn = _prepare_and_embed if self.in_workers else prepare_files
        if self.in_workers and not self.pool:
            args = (*args, self.embedder)
        self.pending.append(
            _Chunk(chunk, keys, boxes, self.pool.submit(fn, *args) if self.pool else fn(*args))
        )
        return True

    def __iter__(self) -> Iterator[tuple[_Chunk, list[Prepared], np.ndarray | None]]:
        """(chunk, its prepared images, their vectors when the workers embed) in row order."""
        for _ in range(self.ahead):
            if not self._submit():
                break
        while self.pending:
            c = self.pending.popleft()
            results = c.result.result() if isinstance(c.result, Future) else c.result
            self._submit()
            vec = None
            if self.in_workers:
                results, vec, embed_s = results
                self.stats.embed_s += embed_s
            yield c, results, vec

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class _Collected:
    """The next batch, as it fills."""

    rows: list[int] = field(default_factory=list)
    xs: list[np.ndarray] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)


def _collect(out: _Collected, c: _Chunk, results: list[Prepared], chunks: _Chunks) -> None:
    """Add a chunk's readable images to ``out``: unreadable ones are raised or skipped (as the
    catalog's ``on_error`` says), boxes measured now are put in the store."""
    stats, store = chunks.stats, chunks.store
    for r, k, had, p in zip(c.rows, c.keys, c.boxes, results):
        stats.add(p)
        if p.error is not None:
            if chunks.catalog.on_error == "fail":
                raise p.error
            out.skipped.append((int(r), str(p.error)))
            continue
        if chunks.framing.mode == "auto":
            if had is None:
                stats.framing.measured += 1
                if store is not None:
                    store.put(k, p.shape, p.box)
            else:
                stats.framing.reused += 1
        stats.framing.add([p.box])
        out.rows.append(int(r))
        out.xs.append(p.x)


def prepare_rows(
    catalog: Any,
    rows: Sequence[int] | np.ndarray,
    size: int,
    framing: Framing,
    cfg: IngestConfig = IngestConfig(),
    stats: IngestStats | None = None,
    store: BoxStore | None | str = "open",
    batch: int = 256,
    embedder: Any = None,
) -> Iterator[PreparedBatch]:
    """Yield the model inputs of catalog ``rows`` (an image folder) in batches of up to
    ``batch`` readable images, in row order. ``store``: the box store ("open": the one
    ``cfg`` names; boxes measured here are added to it at the end). With ``embedder`` (on
    the CPU, where workers are forked), the workers embed too and the batches carry
    ``vectors`` instead of ``x01``: each chunk of ``cfg.chunk`` images is one model call,
    whichever process makes it, so the vectors do not depend on the number of workers."""
    stats = stats if stats is not None else IngestStats()
    if isinstance(store, str):
        store = open_box_store(framing, cfg)
    rows = np.asarray(rows, dtype=np.int64)
    workers = cfg.pool_size()
    if len(rows) < 2 * cfg.chunk:
        workers = 0  # a pool costs more than it saves
    wall0 = time.perf_counter()
    in_workers = (
        embedder is not None
        and str(getattr(embedder, "device", "cpu")) == "cpu"
        and (not workers or _context().get_start_method() == "fork")
    )
    if embedder is not None and not in_workers:
        raise ValueError(
            "prepare_rows(embedder=…) needs a CPU model and forked workers; embed the batches' x01 instead"
        )
    chunks = _Chunks(catalog, rows, size, framing, cfg, store, stats, embedder, workers)
    out = _Collected()
    try:
        for c, results, vec in chunks:
            if vec is not None:
                out.vectors.append(vec)
            _collect(out, c, results, chunks)
            if len(out.rows) >= batch or (not chunks.pending and (out.rows or out.skipped)):
                yield _emit(
                    out.rows, out.xs, out.skipped, size, catalog, stats, out.vectors if in_workers else None
                )
                out = _Collected()
    finally:
        chunks.close()
        if store is not None:
            store.flush()
        stats.wall_s += time.perf_counter() - wall0


def _emit(
    rows: list[int],
    xs: list[np.ndarray],
    skipped: list[tuple[int, str]],
    size: int,
    catalog: Any,
    stats: IngestStats,
    vectors: list[np.ndarray] | None = None,
) -> PreparedBatch:
    import torch

    stats.images += len(rows)
    stats.skipped += len(skipped)
    if skipped and isinstance(getattr(catalog, "skipped", None), list):
        catalog.skipped.extend(skipped)  # as the catalog's own reader records them
    if vectors is not None:
        return PreparedBatch(np.asarray(rows, dtype=np.int64), None, skipped, np.concatenate(vectors))
    x = torch.from_numpy(np.stack(xs)) if xs else torch.zeros((0, 3, size, size))
    return PreparedBatch(np.asarray(rows, dtype=np.int64), x, skipped)


def embed_prepared(
    embedder: Any, x01: torch.Tensor, cfg: IngestConfig, stats: IngestStats | None = None
) -> np.ndarray:
    """Model inputs → vectors, ``cfg.model_batch`` images per model call."""
    import torch

    t = time.perf_counter()
    threads = torch.get_num_threads()
    want = cfg.embed_threads()
    if want != threads:
        torch.set_num_threads(want)
    try:
        out = (
            embedder.embed_float(x01, cfg.model_batch)
            if len(x01)
            else np.zeros((0, embedder.dim), np.float32)
        )
    finally:
        if want != threads:
            torch.set_num_threads(threads)
    if stats is not None:
        stats.embed_s += time.perf_counter() - t
    return out
