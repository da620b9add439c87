"""Catalog readers: Galaxy10-layout HDF5 files and image folders (+ CSV); the FIRST importer."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..errors import CatalogError
from .base import Batch, Catalog, CatalogInfo, OnError, Record
from .columns import ALIASES, ColumnMap, parse_column_mapping, resolve_columns
from .first import FIRST_CLASSES, import_first
from .folder import FolderCatalog
from .galaxy10 import GALAXY10_CLASSES, GALAXY10_SHORT
from .hdf5 import HDF5Catalog
from .images import read_image, to_uint8_rgb

__all__ = [
    "open_catalog",
    "Catalog",
    "Batch",
    "Record",
    "CatalogInfo",
    "OnError",
    "HDF5Catalog",
    "FolderCatalog",
    "GALAXY10_CLASSES",
    "GALAXY10_SHORT",
    "FIRST_CLASSES",
    "import_first",
    "read_image",
    "ALIASES",
    "ColumnMap",
    "parse_column_mapping",
    "resolve_columns",
    "to_uint8_rgb",
]

_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")


def open_catalog(
    path: str | Path,
    metadata: str | Path | None = None,
    on_error: OnError = "fail",
    columns: Mapping[str, str] | None = None,
) -> Catalog:
    """Open an HDF5 file or an image folder as a :class:`Catalog`.

    ``metadata`` names a CSV (or a Parquet table) for an image folder (otherwise a CSV in the
    folder is used).
    ``columns`` maps raw column names to catalog names (``{"RA": "ra", "z": "redshift"}``)
    beyond the spellings recognised anyway (:data:`~.columns.ALIASES`).
    ``on_error="skip"`` drops unreadable images while streaming and records them in
    ``catalog.skipped``; ``"fail"`` stops at the first one.
    """
    if on_error not in ("fail", "skip"):
        raise CatalogError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    p = Path(path)
    if not p.exists():
        raise CatalogError(f"{p}: no such file or directory")
    if p.is_dir():
        return FolderCatalog(p, metadata=metadata, on_error=on_error, columns=columns)
    if metadata is not None:
        raise CatalogError(
            f"{metadata}: a metadata table applies to image folders, but {p} is a file"
        ).resolved_by("metadata")
    import h5py

    if p.suffix.lower() in _HDF5_SUFFIXES or h5py.is_hdf5(p):
        if not h5py.is_hdf5(p):
            raise CatalogError(f"{p}: not a valid HDF5 file (truncated or corrupt?)")
        return HDF5Catalog(p, on_error=on_error, columns=columns)
    raise CatalogError(f"{p}: not a catalog (expected a Galaxy10-layout HDF5 file or a folder of images)")
