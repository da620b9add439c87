"""Galaxy10 DECaLS-layout HDF5 catalogs, streamed in chunks (the real file is 2.5 GB).

Layout: ``images`` (N, H, W, C) uint8 (256×256×3 for Galaxy10), optional 1-D datasets of
length N (``ans`` = class, ``ra``, ``dec``, ``redshift``, ``pxscale``, or any other), and
optionally ``object_id`` (strings or integers; ``objid``, ``id_str``… are recognised, see
:mod:`.columns`). Without one an object's id is its row number.
String columns (``split``, ``label_source``…) come back as ``str``. A file attribute
``label_names`` (a JSON list, index = class code) names the classes; without it, labels
that fit are taken to be Galaxy10 classes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CatalogError
from .base import Batch, Catalog, CatalogInfo, OnError
from .columns import resolve_columns
from .galaxy10 import GALAXY10_CLASSES
from .images import to_uint8_rgb

__all__ = ["HDF5Catalog"]


def _decode(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


class HDF5Catalog(Catalog):
    kind = "galaxy10-hdf5"

    def __init__(
        self, path: str | Path, on_error: OnError = "fail", columns: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(str(path), on_error)
        import h5py

        self._h5py = h5py
        self._fh = None
        self._pid = -1
        f = self._file()
        if "images" not in f:
            raise CatalogError(f"{self.path}: HDF5 file has no 'images' dataset (expected Galaxy10 layout)")
        ds = f["images"]
        if not isinstance(ds, h5py.Dataset):
            raise CatalogError(f"{self.path}: 'images' is a group, expected a dataset")
        if ds.ndim not in (3, 4):
            raise CatalogError(
                f"{self.path}: 'images' has shape {ds.shape}; expected (N, H, W, C) or (N, H, W)"
            )
        if ds.ndim == 4 and ds.shape[3] not in (1, 3, 4):
            raise CatalogError(
                f"{self.path}: 'images' has {ds.shape[3]} channels in shape {ds.shape}; expected 1, 3 or 4"
            )
        if ds.dtype not in (np.uint8, np.uint16):
            raise CatalogError(f"{self.path}: 'images' has dtype {ds.dtype}; expected uint8 (or uint16)")
        self._n = int(ds.shape[0])
        self._raw_shape = tuple(int(x) for x in ds.shape[1:])
        self._needs_conversion = ds.dtype != np.uint8 or ds.ndim == 3 or ds.shape[3] != 3
        # Galaxy10 calls the class column `ans`; here it is `label` (and `RA` is `ra`…).
        one_d = []
        for name, obj in f.items():
            if name == "images" or not isinstance(obj, h5py.Dataset) or obj.ndim != 1:
                continue
            if obj.shape[0] != self._n:
                raise CatalogError(
                    f"{self.path}: dataset '{name}' has {obj.shape[0]} rows but 'images' has {self._n}"
                )
            one_d.append(name)
        self.column_map = resolve_columns(one_d, columns, where=self.path)
        self._columns: dict[str, str] = {}  # public name -> dataset name
        self._id_dataset: str | None = None
        for name in one_d:
            public = self.column_map.canonical(name)
            if public == "object_id":
                self._id_dataset = name
            else:
                self._columns[public] = name
        self._has_ids = self._id_dataset is not None
        self.label_names = self._read_label_names(f)

    def _read_label_names(self, f) -> dict[int, str] | None:
        # "class_names": what `gr synth` writes
        attr = next((a for a in ("label_names", "class_names") if a in f.attrs), None)
        if attr is None:
            return None
        raw = _decode(f.attrs[attr])
        try:
            names = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CatalogError(
                f"{self.path}: attribute {attr!r} must be a JSON list of class names, got {str(raw)[:80]!r}"
            )
        return dict(enumerate(names))

    # h5py handles must not cross fork(): reopen in each process (DataLoader workers).
    def _file(self):
        if self._fh is None or self._pid != os.getpid():
            try:
                self._fh = self._h5py.File(self.path, "r")
            except FileNotFoundError:
                raise CatalogError(f"{self.path}: no such file") from None
            except OSError as e:
                raise CatalogError(f"{self.path}: not a readable HDF5 file ({e})") from None
            self._pid = os.getpid()
        return self._fh

    def __getstate__(self) -> dict[str, Any]:
        # pickled to other processes (Ray actors): the handle stays here, the copy reopens
        return {**self.__dict__, "_fh": None, "_pid": -1}

    def __len__(self) -> int:
        return self._n

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        h, w = self._raw_shape[:2]
        return (h, w, 3)

    def labels(self) -> np.ndarray | None:
        if "label" not in self._columns:
            return None
        return np.asarray(self._file()[self._columns["label"]][:], dtype=np.int64)

    def column(self, name: str) -> np.ndarray:
        """A whole metadata column (small: one value per object)."""
        if name not in self._columns:
            raise CatalogError(
                f"{self.path}: no column {name!r}; columns are {', '.join(self.columns) or 'none'}"
            )
        ds = self._file()[self._columns[name]]
        if self._h5py.check_string_dtype(ds.dtype) is not None:
            return np.asarray(ds.asstr()[:], dtype=object)
        return np.asarray(ds[:])

    def object_ids(self) -> list[str]:
        if self._has_ids:
            return [str(_decode(v)) for v in self._file()[self._id_dataset][:]]
        return [str(i) for i in range(self._n)]

    def _read(self, sel) -> Batch:
        f = self._file()
        if isinstance(sel, slice):
            rows = np.arange(sel.start, sel.stop, dtype=np.int64)
            images = f["images"][sel]
            meta = {k: [_decode(v) for v in f[d][sel]] for k, d in self._columns.items()}
            ids = (
                [str(_decode(v)) for v in f[self._id_dataset][sel]]
                if self._has_ids
                else [str(r) for r in rows]
            )
        else:
            rows = np.asarray(sel, dtype=np.int64)
            if rows.size and (rows.min() < 0 or rows.max() >= self._n):
                raise IndexError(f"rows out of range for catalog of {self._n} objects")
            # h5py fancy indexing needs increasing unique indices: read sorted, then reorder.
            uniq, inverse = np.unique(rows, return_inverse=True)
            images = f["images"][uniq][inverse] if uniq.size else np.zeros((0, *self._raw_shape), np.uint8)
            meta = {
                k: [_decode(v) for v in f[d][uniq][inverse]] if uniq.size else []
                for k, d in self._columns.items()
            }
            if self._has_ids:
                ids = [str(_decode(v)) for v in f[self._id_dataset][uniq][inverse]] if uniq.size else []
            else:
                ids = [str(r) for r in rows]
        if self._needs_conversion:
            images = (
                np.stack([to_uint8_rgb(im) for im in images])
                if len(images)
                else np.zeros((0, *self.image_shape), np.uint8)
            )
        return Batch(object_ids=ids, images=images, metadata=meta, rows=rows)

    def get_batch(self, rows: Sequence[int]) -> Batch:
        return self._read(list(rows))

    def _read_range(self, lo: int, hi: int, load_images: bool) -> Batch:
        if not load_images:
            f = self._file()
            ids = (
                [str(_decode(v)) for v in f[self._id_dataset][lo:hi]]
                if self._has_ids
                else [str(r) for r in range(lo, hi)]
            )
            meta = {k: [_decode(v) for v in f[d][lo:hi]] for k, d in self._columns.items()}
            return Batch(ids, np.zeros((0,), np.uint8), meta, np.arange(lo, hi, dtype=np.int64))
        return self._read(slice(lo, hi))

    def info(self) -> CatalogInfo:
        base = super().info()
        f = self._file()
        extra: dict[str, Any] = {"groups": [k for k, v in f.items() if isinstance(v, self._h5py.Group)]}
        if self.column_map.describe():
            extra["columns_renamed"] = self.column_map.describe()
        for k in ("generator", "seed", "provenance", "license", "citation"):
            if k in f.attrs:
                extra[k] = _decode(f.attrs[k])
        names = self.label_names
        # an unnamed file with the ten Galaxy10 classes (the public Galaxy10 DECaLS file);
        # any other unnamed labels stay numbers rather than borrow Galaxy10's names
        if (
            names is None
            and base.label_counts is not None
            and sorted(base.label_counts) == list(range(len(GALAXY10_CLASSES)))
        ):
            names = {i: GALAXY10_CLASSES[i] for i in base.label_counts}
        return CatalogInfo(**{**base.__dict__, "label_names": names, "extra": extra})

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
