"""Embedding one row range of a catalog into a shard's columns: the build, ``add`` and the
scale-out engines all write shards from this, so a shard holds the same columns whichever
path made it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["EmbeddedRows", "embed_rows"]


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
) -> EmbeddedRows | None:
    """Embed rows ``lo``–``hi − 1`` of ``catalog``; unreadable images are appended to
    ``skipped`` (row, reason) and left out. None when every image of the range was unreadable.
    ``advance(n)`` is called with the rows read after each batch (for progress bars)."""
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
