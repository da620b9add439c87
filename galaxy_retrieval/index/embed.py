"""Embedding one row range of a catalog into a shard's columns: the build, ``add`` and the
scale-out engines all write shards from this, so a shard holds the same columns whichever
path made it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import IndexFormatError
from .shards import MODEL_SHA_KEY, RANGE_KEY, write_shard

if TYPE_CHECKING:
    from ..ingest import IngestConfig, IngestStats

__all__ = ["EmbeddedRows", "embed_rows", "embed_shard", "index_precision"]


def index_precision(model_info: dict[str, Any] | None, precision: str | None = None) -> str:
    """The precision new images of an index are embedded in (queries, adds): ``precision``
    when the caller gives one, else the one its manifest records (how its vectors were
    made), else, for an index made before that was recorded, what the code did then (bf16
    on CUDA, float32 elsewhere). On a CPU without native bf16, following a bf16 index
    costs ~1.7× per image (emulated); ``fp32`` is then faster, its vectors within cosine
    0.9995 of the bf16 ones on real cutouts."""
    if precision is not None:
        return precision
    recorded = (model_info or {}).get("precision")
    if recorded is not None:
        return str(recorded)
    from ..model.device import pick_device, unrecorded_precision

    return unrecorded_precision(pick_device("auto"))


@dataclass(frozen=True)
class EmbeddedRows:
    """The readable objects of a row range: ids, catalog rows, vectors (n, D), and metadata
    columns (the catalog's own, plus ``source`` and, for image folders, ``filename``)."""

    ids: list[str]
    rows: np.ndarray
    vectors: np.ndarray
    metadata: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.ids)


def embed_rows(
    catalog: Any,
    embedder: Any,
    lo: int,
    hi: int,
    batch_size: int,
    skipped: list[tuple[int, str]],
    advance: Callable[[int], None] = lambda n: None,
    ingest: Any = None,
    ingest_stats: Any = None,
    box_store: Any = "open",
) -> EmbeddedRows | None:
    """Embed rows ``lo``–``hi − 1`` of ``catalog``; unreadable images are appended to
    ``skipped`` (row, reason) and left out. None when every image of the range was unreadable.
    ``advance(n)`` is called with the rows read after each batch (for progress bars).

    ``ingest`` (an :class:`~galaxy_retrieval.ingest.IngestConfig`): image folders go through
    the fast path (:mod:`galaxy_retrieval.ingest`: worker processes, reduced-size framing,
    the box store), unless the model suppresses sources (which needs the full images in
    this process). ``ingest_stats`` collects its stage times and box counts."""
    from ..ingest import can_prepare

    if ingest is not None and can_prepare(catalog) and getattr(embedder, "suppress", None) is None:
        return _embed_rows_fast(
            catalog, embedder, lo, hi, batch_size, skipped, advance, ingest, ingest_stats, box_store
        )
    ids: list[str] = []
    rows: list[np.ndarray] = []
    embs: list[np.ndarray] = []
    meta: dict[str, list[Any]] = {}
    for batch in catalog.iter_batches(batch_size, lo, hi):
        skipped.extend(batch.skipped)
        if len(batch):
            embs.append(embedder.embed(batch.images, batch_size=batch_size))
            ids.extend(batch.object_ids)
            rows.append(batch.rows)
            for k, v in batch.metadata.items():
                meta.setdefault(k, []).extend(v)
        advance(len(batch) + len(batch.skipped))
    if not embs:
        return None
    all_rows = np.concatenate(rows)
    meta["source"] = [catalog.source] * len(ids)
    names_of = getattr(catalog, "file_names", None)
    if names_of is not None and "filename" not in meta:  # image folders: which file each row is
        meta["filename"] = names_of(all_rows.tolist())
    return EmbeddedRows(ids, all_rows, np.concatenate(embs), meta)


def _embed_rows_fast(
    catalog: Any,
    embedder: Any,
    lo: int,
    hi: int,
    batch_size: int,
    skipped: list[tuple[int, str]],
    advance: Callable[[int], None],
    cfg: Any,
    stats: Any,
    store: Any,
) -> EmbeddedRows | None:
    from ..ingest import IngestStats, embed_prepared, prepare_rows, workers_embed

    stats = stats if stats is not None else IngestStats()
    mcfg = embedder.model_config
    rows: list[np.ndarray] = []
    embs: list[np.ndarray] = []
    in_workers = embedder if workers_embed(embedder, cfg) else None
    for pb in prepare_rows(
        catalog, np.arange(lo, hi), mcfg.image_size, mcfg.framing, cfg, stats, store, batch_size, in_workers
    ):
        skipped.extend(pb.skipped)
        if len(pb.rows):
            embs.append(
                pb.vectors if pb.vectors is not None else embed_prepared(embedder, pb.x01, cfg, stats)
            )
            rows.append(pb.rows)
        advance(len(pb.rows) + len(pb.skipped))
    if not embs:
        return None
    all_rows = np.concatenate(rows)
    # ids and metadata of the readable rows, read without the images
    (b,) = catalog.iter_batches(hi - lo, lo, hi, load_images=False)
    pos = (all_rows - lo).tolist()
    ids = [b.object_ids[i] for i in pos]
    meta: dict[str, list[Any]] = {k: [v[i] for i in pos] for k, v in b.metadata.items()}
    meta["source"] = [catalog.source] * len(ids)
    if "filename" not in meta:
        meta["filename"] = catalog.file_names(all_rows.tolist())
    return EmbeddedRows(ids, all_rows, np.concatenate(embs), meta)


def embed_shard(
    catalog: Any,
    embedder: Any,
    path: Path,
    lo: int,
    hi: int,
    batch_size: int,
    dtype: str,
    advance: Any = None,
    ingest: IngestConfig | None = None,
    ingest_stats: IngestStats | None = None,
    box_store: Any = "open",
    seconds: dict[str, float] | None = None,
) -> list[tuple[int, str]]:
    """Embed catalog rows [lo, hi) (:func:`embed_rows`) and write them as one shard,
    atomically, with its row range and model. The step of every engine (the local loop, a Ray
    actor): the same rows in the same batches make the same shard. Returns the skipped rows.
    ``seconds`` accumulates the time spent writing shards (``write_shards``)."""
    skipped: list[tuple[int, str]] = []
    got = embed_rows(
        catalog,
        embedder,
        lo,
        hi,
        batch_size,
        skipped,
        advance or (lambda n: None),
        ingest,
        ingest_stats,
        box_store,
    )
    t0 = time.perf_counter()
    if got is None:
        raise IndexFormatError(f"{catalog.path}: every image in rows {lo}–{hi - 1} was unreadable")
    write_shard(
        path,
        got.ids,
        got.rows,
        got.vectors,
        got.metadata,
        dtype=dtype,
        extra_schema_metadata={RANGE_KEY.decode(): f"{lo}:{hi}", MODEL_SHA_KEY.decode(): embedder.sha256},
    )
    if seconds is not None:
        seconds["write_shards"] = seconds.get("write_shards", 0.0) + time.perf_counter() - t0
    return skipped
