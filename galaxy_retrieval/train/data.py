"""Catalog images at model resolution, in RAM when they fit, streamed otherwise.

Every image goes through steps 1–3 of the model's
:class:`~galaxy_retrieval.model.Preprocessing` (suppress → frame → resize), as the
checkpoint's :class:`~galaxy_retrieval.model.Embedder` does at search time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..catalog.base import Catalog
from ..errors import CatalogError
from ..framing import FramingStats
from ..ingest import IngestConfig, IngestStats, can_prepare, prepare_rows
from ..model.preprocess import Preprocessing
from ..progress import NULL_PROGRESS, Progress

__all__ = ["ImageStore", "read_rows", "model_inputs"]

_CHUNK = 256
# Reading a contiguous range and dropping unwanted rows beats fetching scattered rows
# (h5py selects each scattered row separately: ~25× slower per row on a 256² catalog)
# as soon as more than ~1 row in 20 of the range is wanted.
_DENSE = 0.05


def read_rows(catalog: Catalog, rows: np.ndarray, chunk: int = _CHUNK) -> Iterator[tuple[np.ndarray, Any]]:
    """Yield (catalog rows, images) for the given rows, in increasing row order.

    Dense row sets are read as contiguous ranges (``iter_batches``) and filtered; sparse
    ones by ``get_batch``. Unreadable images skipped by the catalog are simply absent."""
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if rows.size == 0:
        return
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    if rows.size / (hi - lo) >= _DENSE:
        want = np.zeros(hi - lo, dtype=bool)
        want[rows - lo] = True
        for b in catalog.iter_batches(chunk, start=lo, stop=hi):
            got = np.asarray(b.rows, dtype=np.int64)
            keep = want[got - lo]
            if keep.any():
                ims = (
                    b.images[keep]
                    if isinstance(b.images, np.ndarray)
                    else [im for im, k in zip(b.images, keep) if k]
                )
                yield got[keep], ims
    else:
        for i in range(0, rows.size, chunk):
            b = catalog.get_batch(rows[i : i + chunk])
            if len(b):
                yield np.asarray(b.rows, dtype=np.int64), b.images


def model_inputs(
    catalog: Any,
    rows: Sequence[int] | np.ndarray,
    pre: Preprocessing,
    batch: int = 256,
    stats: IngestStats | None = None,
    cfg: IngestConfig | None = IngestConfig(),
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """(catalog rows, float32 (b, 3, S, S) in [0, 1]) of the given rows after steps 1–3 of
    ``pre``, in increasing row order, unreadable images left out: the fast path for image
    folders (``cfg``), else the catalog's reader and :meth:`Preprocessing.to_float` in this
    process (HDF5 catalogs; source suppression, which needs the full images here)."""
    stats = stats if stats is not None else IngestStats()
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    size, framing = pre.image_size, pre.framing
    if cfg is not None and pre.suppress is None and can_prepare(catalog):
        # while the workers run, the caller's model calls get the cores they leave
        # (see IngestConfig.embed_threads); restored when the loop ends
        threads = torch.get_num_threads()
        torch.set_num_threads(cfg.embed_threads())
        try:
            for pb in prepare_rows(catalog, rows, size, framing, cfg, stats, batch=batch):
                if len(pb.rows):
                    yield pb.rows, pb.x01
        finally:
            torch.set_num_threads(threads)
        return
    for got, images in read_rows(catalog, rows, batch):
        x01 = pre.to_float(images, stats=stats.framing)
        stats.images += len(got)
        yield got, x01


class ImageStore:
    """The images at catalog positions ``rows`` after steps 1–3 of ``pre`` (suppressed,
    framed, resized to ``size = pre.image_size``).

    Decoding and resizing a 256² catalog image costs more than the small model's forward
    pass on it, so when ``len(rows)·3·size²`` bytes fit in ``preload_max_bytes`` the
    resized images are decoded once and kept as a uint8 tensor (2,000 images at 64² are
    25 MB). Otherwise each request reads and resizes its rows from the catalog.

    ``get(positions)`` takes positions into ``rows`` (0 … len−1) and returns uint8
    (b, 3, size, size). Unreadable images (catalogs opened with ``on_error="skip"``) are
    dropped from the store while pre-loading. Source suppression (``pre.suppress``) works
    on each full-resolution image before it is resized (once, while pre-loading; on every
    request when streaming).
    """

    def __init__(
        self,
        catalog: Catalog,
        rows: np.ndarray,
        pre: Preprocessing,
        preload_max_bytes: int = 2 << 30,
        progress: Progress = NULL_PROGRESS,
        name: str = "images",
    ) -> None:
        self.catalog = catalog
        self.pre = pre
        self.size = pre.image_size
        self.name = name
        self.framing_stats = FramingStats()
        self.rows = np.unique(np.asarray(rows, dtype=np.int64))
        self.preloaded = len(self.rows) * 3 * self.size * self.size <= preload_max_bytes
        self._data: torch.Tensor | None = None
        if self.preloaded:
            self._preload(progress, name)
        if len(self.rows) == 0:
            raise CatalogError(f"{catalog.path}: no readable images for the {name} set")

    def _preload(self, progress: Progress, name: str) -> None:
        parts, kept = [], []
        what = f"loading {name} at {self.size}²" + (
            " (suppressing sources)" if self.pre.suppress is not None else ""
        )
        # image folders go through the ingest fast path (worker processes, the box store)
        stats = IngestStats(framing=self.framing_stats)
        with progress.task(what, total=len(self.rows), unit="img") as t:
            for got, x01 in model_inputs(self.catalog, self.rows, self.pre, _CHUNK, stats):
                parts.append(x01.mul_(255.0).round_().to(torch.uint8))  # as Preprocessing.to_uint8
                kept.append(got)
                t.advance(len(got))
        st = self.framing_stats
        if self.pre.framing.mode == "auto" and (st.measured or st.reused):
            progress.log(f"{name}: {st.describe_reuse()}")
        self.rows = np.concatenate(kept) if kept else np.zeros(0, np.int64)
        self._data = (
            torch.cat(parts) if parts else torch.zeros((0, 3, self.size, self.size), dtype=torch.uint8)
        )

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, positions) -> torch.Tensor:
        pos = torch.as_tensor(positions, dtype=torch.long)
        if self._data is not None:
            return self._data[pos]
        b = self.catalog.get_batch(self.rows[pos.numpy()])
        if len(b) == 0:
            return torch.zeros((0, 3, self.size, self.size), dtype=torch.uint8)
        return self.pre.to_uint8(b.images)
