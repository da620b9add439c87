"""The catalog contract: anything that yields (object_id, uint8 H×W×C image, metadata).

A catalog has ``len()``, random access by position, and streams batches in chunks so that a
catalog larger than RAM works. Images are always uint8 with three axes (H, W, C); readers
convert grayscale, RGBA and 16-bit inputs rather than rejecting them.
"""

from __future__ import annotations

import abc
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["Record", "Batch", "Catalog", "CatalogInfo", "OnError"]

OnError = Literal["fail", "skip"]


@dataclass(frozen=True)
class Record:
    """One catalog object."""

    object_id: str
    image: np.ndarray  # uint8 (H, W, C)
    metadata: dict[str, Any]
    row: int  # position in the catalog


@dataclass(frozen=True)
class Batch:
    """A chunk of consecutive (or requested) catalog objects.

    ``images`` is an ndarray (B, H, W, C) when every image has the same shape (HDF5), else a
    list of (H, W, C) arrays (image folders). ``metadata`` maps column → list of B values
    (``None`` where missing). ``rows`` are the catalog positions of the objects actually
    returned: with ``on_error="skip"`` unreadable images are dropped, so rows can have gaps.
    """

    object_ids: list[str]
    images: np.ndarray | list[np.ndarray]
    metadata: dict[str, list[Any]]
    rows: np.ndarray  # int64 (B,)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (row, "path: reason")

    def __len__(self) -> int:
        return len(self.object_ids)


@dataclass(frozen=True)
class CatalogInfo:
    """What ``gr info`` prints."""

    path: str
    kind: str
    count: int
    image_shape: tuple[int, ...] | None  # None when images differ in shape
    dtype: str
    columns: list[str]
    label_counts: dict[Any, int] | None
    label_names: dict[int, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Catalog(abc.ABC):
    """Base class of every catalog reader."""

    #: short name of the reader ("galaxy10-hdf5", "image-folder")
    kind: str = "catalog"

    def __init__(self, path: str, on_error: OnError = "fail") -> None:
        self.path = str(path)
        self.on_error: OnError = on_error

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @property
    @abc.abstractmethod
    def columns(self) -> list[str]:
        """Metadata column names (``label``, ``ra``, ``dec``, …)."""

    @abc.abstractmethod
    def get_batch(self, rows: Sequence[int]) -> Batch:
        """The objects at the given positions (any order; returned in the order asked)."""

    @property
    def source(self) -> str:
        """A string that names where this catalog came from (kept in index manifests)."""
        return f"{self.kind}:{self.path}"

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """(H, W, C) when all images share one shape, else None."""
        return None

    def labels(self) -> np.ndarray | None:
        """All labels as int64 (-1 where missing), or None if the catalog has no labels.

        Used only to *measure* retrieval (never to train)."""
        return None

    def object_ids(self) -> list[str]:
        """All object ids in catalog order."""
        return [oid for b in self.iter_batches(4096, load_images=False) for oid in b.object_ids]

    def __getitem__(self, row: int) -> Record:
        n = len(self)
        if not -n <= row < n:
            raise IndexError(f"row {row} out of range for catalog of {n} objects")
        row = row % n
        b = self.get_batch([row])
        if len(b) == 0:  # skipped as unreadable
            raise IndexError(f"row {row} of {self.path} is unreadable: {b.skipped[0][1]}")
        return Record(b.object_ids[0], b.images[0], {k: v[0] for k, v in b.metadata.items()}, row)

    def iter_batches(
        self, batch_size: int = 256, start: int = 0, stop: int | None = None, load_images: bool = True
    ) -> Iterator[Batch]:
        """Stream the catalog in chunks of ``batch_size`` positions."""
        stop = len(self) if stop is None else min(stop, len(self))
        for lo in range(start, stop, batch_size):
            yield self._read_range(lo, min(lo + batch_size, stop), load_images)

    def _read_range(self, lo: int, hi: int, load_images: bool) -> Batch:
        return self.get_batch(range(lo, hi))

    def info(self) -> CatalogInfo:
        labels = self.labels()
        counts = None
        if labels is not None:
            counts = dict(sorted(Counter(int(x) for x in labels if x >= 0).items()))
        return CatalogInfo(
            path=self.path,
            kind=self.kind,
            count=len(self),
            image_shape=self.image_shape,
            dtype="uint8",
            columns=self.columns,
            label_counts=counts,
        )

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles."""

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
