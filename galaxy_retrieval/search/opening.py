"""Opening an index version for search: its manifest, FAISS index, deleted rows and catalog.

A searcher answers from the files of the manifest's version it opened: a write makes new
ones, so a searcher open during an add, delete or compact keeps answering from its version.
:func:`open_version` reads and verifies the newest manifest (retrying when a writer replaced
it meanwhile); the other functions load one piece of that version each.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..errors import IndexFormatError
from ..index.candidates import load_faiss_index
from ..index.layout import MANIFEST_NAME
from ..index.manifest import Manifest, read_manifest
from ..index.metadata_map import open_metadata_table, shard_keys
from ..index.shards import check_shard_models
from ..index.tombstones import read_tombstones
from .lookup import CatalogLookup

__all__ = ["open_version", "load_faiss", "read_deleted", "open_lookup"]

T = TypeVar("T")


def open_version(path: Path, verify: bool | None, make: Callable[[Path, Manifest], T]) -> T:
    """``make(path, manifest)`` for the index's current manifest, verified first (``verify``:
    True hashes every file, False checks sizes only, None hashes when the index is under 2 GiB)."""
    attempts = 3
    while True:
        m = read_manifest(path)
        try:
            m.verify(path, full=verify)
            return make(path, m)
        except IndexFormatError:
            # a writer may have replaced the manifest and removed the files of the version
            # just read; that is a newer version to open, not a damaged index
            attempts -= 1
            if attempts == 0 or read_manifest(path).version == m.version:
                raise


def load_faiss(path: Path, manifest: Manifest) -> Any:
    """The version's FAISS index, refused unless it holds the manifest's count of vectors."""
    faiss_path = path / manifest.faiss_file
    index = load_faiss_index(faiss_path, manifest.faiss)
    if index.ntotal != manifest.count:
        raise IndexFormatError(f"{faiss_path}: holds {index.ntotal} vectors, manifest says {manifest.count}")
    return index


def read_deleted(path: Path, manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
    """(sorted positions of the deleted rows, a mask over all rows: True where deleted)."""
    deleted, _ = read_tombstones(path, manifest.tombstones, manifest.count)
    dead = np.zeros(manifest.count, bool)
    dead[deleted] = True
    return deleted, dead


def open_lookup(path: Path, manifest: Manifest, dead: np.ndarray) -> CatalogLookup:
    """The catalog of the version's shards (metadata, ids, positions on the sky)."""
    # a shard embedded by another model than the manifest's would answer with a mix of two
    # models while every file still matches its digest
    shard_paths = [path / s.file for s in manifest.shards]
    check_shard_models(shard_paths, (manifest.model or {}).get("sha256"), f"{path / MANIFEST_NAME}")
    # memory-mapped from the cache (index/metadata_map.py): file pages, not heap, so the
    # process's anonymous memory does not grow with the catalog's metadata; the writer of the
    # version wrote the cache entry, so opening only maps it
    table = open_metadata_table(shard_paths, shard_keys(manifest.shards), manifest.count)
    return CatalogLookup(path, manifest, table, dead)
