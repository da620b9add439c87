"""The protocol of every write to an existing index (:mod:`.maintenance`: delete, compact,
reindex; :mod:`.writes`: add), and the helpers its steps share.

Every write follows one protocol (``indexes/README.md``, "Writes"):

1. take the directory's write lock (:mod:`.lock`): one writer at a time, a second one fails
   fast with :class:`IndexBusyError`;
2. write the files of version n+1 under new names (``embeddings/part-vNNNNN-*.parquet``,
   ``vectors-vNNNNN.npy``, ``faiss-vNNNNN.index``, ``deleted-vNNNNN.parquet``), each atomically;
   an add instead appends its rows to the vectors file after version n's (:mod:`.vectors`);
3. write manifest n+1 atomically, last (after the searcher's metadata cache entry of its
   shards, :mod:`.metadata_map`); only then remove the files version n alone used.

A kill at any point before step 3 leaves manifest n, whose files are all still there (and
whose vector rows are untouched), so the index answers as before, and a rerun writes the same
names again after truncating what the killed add appended. A searcher opened on version n
keeps its memory maps and in-memory copies after the files are removed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import fnmatch
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ..atomic import TMP_SUFFIX, sha256_file
from ..errors import IndexFormatError
from .directory import is_our_shard
from .layout import EMBEDDINGS_DIR, FAISS_FILE, SHARD_GLOB, VECTORS_FILE, VERSIONED_GLOBS
from .manifest import FORMAT_VERSION, Manifest, ShardEntry, read_manifest
from .metadata_map import prime_metadata_table, shard_keys
from .vectors import repair_vectors

__all__ = [
    "utc_now",
    "versioned_name",
    "open_for_write",
    "commit_version",
    "refuse_ondisk",
    "checked_root",
    "file_entry",
    "shard_entries",
]


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def versioned_name(stem: str, version: int, ext: str) -> str:
    return f"{stem}-v{version:05d}{ext}"


def open_for_write(root: Path) -> Manifest:
    """The current manifest, read under the lock; leftovers of killed writes are removed: no
    writer is running, so every index file the manifest does not name is one (a version that
    never got its manifest, or the previous version's files when a kill came between the new
    manifest and their removal — the build's own vectors.npy, faiss.index and part-NNNNN
    shards included), and so is every temp file."""
    m = read_manifest(root)
    keep = {s.file for s in m.shards} | {
        p["file"]
        for p in (m.vectors, m.faiss, m.tombstones, (m.faiss or {}).get("ondisk"))
        if p and p.get("file")
    }
    top = (*VERSIONED_GLOBS, VECTORS_FILE, FAISS_FILE)
    for d, globs in ((root, top), (root / EMBEDDINGS_DIR, ("part-v*-*.parquet", SHARD_GLOB))):
        if not d.is_dir():
            continue
        for p in d.iterdir():
            rel = str(p.relative_to(root))
            name = p.name
            ours = any(fnmatch.fnmatch(name, g) for g in globs)
            if (
                ours
                and d.name == EMBEDDINGS_DIR
                and fnmatch.fnmatch(name, SHARD_GLOB)
                and not fnmatch.fnmatch(name, "part-v*-*.parquet")
            ):
                ours = is_our_shard(p, set(), False)  # a user's part-*.parquet stays
            stale = ours and rel not in keep
            tmp = name.startswith(".") and name.endswith(TMP_SUFFIX)
            if p.is_file() and (stale or tmp):
                p.unlink(missing_ok=True)
    repair_vectors(root, m.vectors, m.count, m.dim)  # rows a killed add appended past this version
    return m


def commit_version(root: Path, old: Manifest, new: Manifest) -> Manifest:
    """Write ``new`` as the index's manifest, then remove the files only ``old`` named."""
    new = dataclasses.replace(new, format_version=FORMAT_VERSION)  # a write may use this package's layout
    # the searcher's memory-mapped metadata of the new version, before it is published: its
    # first open then maps it instead of writing it (a delete keeps the shards, so the key)
    prime_metadata_table([root / s.file for s in new.shards], shard_keys(new.shards))
    new.write(root)
    now = {s.file for s in new.shards} | {
        p["file"] for p in (new.vectors, new.faiss, new.tombstones) if p and p.get("file")
    }
    before = {s.file for s in old.shards} | {
        p["file"] for p in (old.vectors, old.faiss, old.tombstones) if p and p.get("file")
    }
    for rel in sorted(before - now):
        (root / rel).unlink(missing_ok=True)
    return new


def refuse_ondisk(root: Path, m: Manifest) -> None:
    """Versioned rewrites copy the FAISS file; an on-disk index's inverted lists are a second,
    large file those rewrites do not carry yet, so they are refused rather than half-done."""
    if (m.faiss or {}).get("ondisk"):
        raise IndexFormatError(
            f"{root}: the index keeps its inverted lists on disk; adds, compaction and reindexing need a new build of it"
        )


def checked_root(path: str | Path) -> Path:
    root = Path(path)
    read_manifest(root)  # before the lock: taking it would create a missing directory
    return root


def file_entry(p: Path) -> dict[str, Any]:
    return {"file": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)}


def shard_entries(root: Path, paths: Sequence[Path]) -> tuple[ShardEntry, ...]:
    return tuple(
        ShardEntry(
            file=str(p.relative_to(root)),
            rows=pq.read_metadata(p).num_rows,
            bytes=p.stat().st_size,
            sha256=sha256_file(p),
        )
        for p in paths
    )
