"""Adds to an existing index: :func:`add_objects` embeds a catalog with the index's own model,
:func:`append_vectors` takes embeddings made elsewhere. Both follow the protocol of
:mod:`.versioning`: new shards, the vectors file extended (:mod:`.vectors`), the vectors added
to the FAISS index without training it again, manifest n+1 last.

Delete, compact and reindex are in :mod:`.maintenance`; they are named here too, where the
writes to an index used to live.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ..errors import CatalogError, CheckpointError, IndexFormatError
from ..progress import NULL_PROGRESS, Progress
from ..version import __version__
from .candidates import add_to_faiss_index, load_faiss_index, write_faiss_index
from .embed import embed_rows, index_precision
from .layout import EMBEDDINGS_DIR, MODEL_DIR
from .lock import directory_lock
from .maintenance import compact_index, delete_objects, reindex
from .manifest import Manifest, read_manifest
from .shards import MODEL_SHA_KEY, read_metadata_table, write_shard
from .tombstones import read_tombstones, write_tombstones
from .vectors import append_rows, can_append, extend_vectors, open_vectors, vectors_entry
from .versioning import (
    checked_root,
    commit_version,
    file_entry,
    open_for_write,
    refuse_ondisk,
    shard_entries,
    utc_now,
    versioned_name,
)

__all__ = [
    "AddResult",
    "add_objects",
    "append_vectors",
    # re-exported from .maintenance
    "delete_objects",
    "compact_index",
    "reindex",
]


@dataclass(frozen=True)
class AddResult:
    path: Path
    version: int
    added: int
    replaced: int  # existing objects superseded (upsert)
    skipped: list[tuple[int, str]]  # unreadable images (on_error="skip")
    seconds: float


# --------------------------------------------------------------------------- add


def add_objects(
    path: str | Path,
    catalog: Any,
    upsert: bool = False,
    batch_size: int = 128,
    progress: Progress = NULL_PROGRESS,
    ingest: Any = "default",
    precision: str | None = None,
) -> AddResult:
    """Embed ``catalog`` with the index's own model and append it: new shards, the vectors
    file extended, the vectors added to the FAISS index without training it again.

    An object id the index already answers with is refused by name, unless ``upsert``: then
    the old row is deleted (tombstoned) and the new one added. Everything that can be
    refused is checked before anything is written. ``ingest``: an image folder is read
    through the fast path (:class:`~galaxy_retrieval.ingest.IngestConfig`, as ``gr build-index``
    does; None: in this process only). ``precision``: the model's (``auto``, ``fp32``,
    ``bf16``); None: the one the index records (:func:`~.embed.index_precision`), so added
    vectors are made as the index's own. The add's entry in the manifest records it."""
    from ..ingest import IngestConfig
    from ..model import load_checkpoint

    if isinstance(ingest, str):
        ingest = IngestConfig()

    t0 = time.perf_counter()
    root = checked_root(path)
    n = len(catalog)
    if n == 0:
        raise CatalogError(f"{catalog.path}: the catalog holds no objects; nothing to add")
    new_ids = _unique_ids(list(catalog.object_ids()), str(catalog.path))
    with directory_lock(root):
        m = open_for_write(root)
        refuse_ondisk(root, m)
        if not (root / MODEL_DIR).is_dir():
            raise CheckpointError(
                f"{root}: the index has no model copy (built from shards), so new images cannot be embedded like its own"
            )
        embedder = load_checkpoint(root / MODEL_DIR, precision=index_precision(m.model, precision))
        want = (m.model or {}).get("sha256")
        if want and embedder.sha256 != want:
            raise CheckpointError(
                f"{root / MODEL_DIR}: model weights do not match the index manifest (sha256 {embedder.sha256[:12]}… vs {want[:12]}…)"
            )
        if embedder.dim != m.dim:
            raise CheckpointError(
                f"{root / MODEL_DIR}: embeds {embedder.dim} dimensions, the index holds {m.dim}"
            )
        state = _AddState.of(root, m, new_ids, upsert)
        try:
            new_paths, skipped = _embed_shards(root, m, embedder, catalog, batch_size, progress, ingest)
            if not new_paths:
                raise CatalogError(f"{catalog.path}: every image was unreadable; nothing added")
            version, added, replaced = _append(
                root, m, state, new_paths, catalog.source, {"precision": embedder.precision}
            )
        except Exception:
            # a refusal mid-way (an image the model cannot take, a full disk) leaves the
            # directory as it was; a kill leaves these files to the next write's sweep
            open_for_write(root)
            raise
    return AddResult(root, version, added, replaced, skipped, time.perf_counter() - t0)


def append_vectors(
    path: str | Path,
    object_ids: Sequence[str],
    embeddings: np.ndarray,
    metadata: dict[str, Sequence[Any]] | None = None,
    upsert: bool = False,
    source: str = "vectors",
) -> AddResult:
    """Append already-made embeddings (N, D) with their ids and metadata columns: the index
    side of :func:`add_objects`, for vectors computed elsewhere with the index's model (or
    for an index of foreign embeddings). A wrong dimension is refused before any write."""
    t0 = time.perf_counter()
    root = checked_root(path)
    x = np.asarray(embeddings)
    ids = _unique_ids([str(o) for o in object_ids], source)
    m0 = read_manifest(root)
    if x.ndim != 2 or x.shape[1] != m0.dim or len(x) != len(ids) or len(ids) == 0:
        raise IndexFormatError(
            f"{source}: {len(ids)} ids and embeddings of shape {x.shape}; the index {root} holds {m0.dim}-dimensional vectors"
        )
    if not np.isfinite(x).all():
        raise IndexFormatError(f"{source}: embeddings hold NaN or infinite values")
    with directory_lock(root):
        m = open_for_write(root)
        refuse_ondisk(root, m)
        state = _AddState.of(root, m, ids, upsert)
        try:
            dst = root / EMBEDDINGS_DIR / f"part-v{m.version + 1:05d}-00000.parquet"
            sha = (m.model or {}).get("sha256")
            meta = {**(metadata or {}), "source": [source] * len(ids)}
            write_shard(
                dst,
                ids,
                np.arange(len(ids)),
                x,
                meta,
                dtype=m.dtype,
                extra_schema_metadata={MODEL_SHA_KEY.decode(): sha} if sha else None,
            )
            version, added, replaced = _append(root, m, state, [dst], source)
        except Exception:
            open_for_write(root)
            raise
    return AddResult(root, version, added, replaced, [], time.perf_counter() - t0)


def _unique_ids(ids: list[str], where: str) -> list[str]:
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise CatalogError(f"{where}: object id {dup!r} appears more than once; ids must be unique")
    return ids


@dataclass
class _AddState:
    """What an add needs to know of the index before it writes: ids and live rows."""

    old_ids: list[str]
    is_dead: np.ndarray
    live_pos: dict[str, int]
    clash: list[str]

    @classmethod
    def of(cls, root: Path, m: Manifest, new_ids: list[str], upsert: bool) -> _AddState:
        table = read_metadata_table([root / s.file for s in m.shards])
        dead, _ = read_tombstones(root, m.tombstones, m.count)
        is_dead = np.zeros(m.count, bool)
        is_dead[dead] = True
        old_ids = table.column("object_id").to_pylist()
        live_pos = {oid: i for i, oid in enumerate(old_ids) if not is_dead[i]}
        clash = [oid for oid in new_ids if oid in live_pos]
        if clash and not upsert:
            more = f" and {len(clash) - 1} more" if len(clash) > 1 else ""
            raise IndexFormatError(
                f"{root}: object id {clash[0]!r}{more} is already in the index; replace existing objects, or leave them out"
            ).resolved_by("upsert")
        return cls(old_ids, is_dead, live_pos, clash)


def _embed_shards(
    root: Path,
    m: Manifest,
    embedder: Any,
    catalog: Any,
    batch_size: int,
    progress: Progress,
    ingest: Any = None,
) -> tuple[list[Path], list[tuple[int, str]]]:
    """Embed the catalog into shards of the next version (a kill leaves them unnamed by any
    manifest; the rerun removes and writes them again)."""
    from ..ingest import IngestStats, can_prepare, open_box_store

    fast = ingest if ingest is not None and can_prepare(catalog) and embedder.suppress is None else None
    store = open_box_store(embedder.model_config.framing, fast) if fast is not None else None
    stats = IngestStats()
    version = m.version + 1
    n = len(catalog)
    shard_rows = max(s.rows for s in m.shards) if m.shards else 8192
    new_paths: list[Path] = []
    skipped: list[tuple[int, str]] = []
    with progress.task("embedding", total=n, unit="img") as task:
        for lo in range(0, n, shard_rows):
            hi = min(n, lo + shard_rows)
            got = embed_rows(catalog, embedder, lo, hi, batch_size, skipped, task.advance, fast, stats, store)
            if got is None:
                continue
            dst = root / EMBEDDINGS_DIR / f"part-v{version:05d}-{len(new_paths):05d}.parquet"
            write_shard(
                dst,
                got.ids,
                got.rows,
                got.vectors,
                got.metadata,
                dtype=m.dtype,
                extra_schema_metadata={MODEL_SHA_KEY.decode(): embedder.sha256},
            )
            new_paths.append(dst)
    if fast is not None and embedder.model_config.framing.mode == "auto":
        progress.log(stats.framing.describe_reuse())
    return new_paths, skipped


def _append(
    root: Path,
    m: Manifest,
    st: _AddState,
    new_paths: list[Path],
    source: str,
    how: dict[str, Any] | None = None,
) -> tuple[int, int, int]:
    """The new shards are written: extend the vectors, add to FAISS, tombstone replaced rows,
    write the manifest. Returns (version, rows added, rows replaced)."""
    version = m.version + 1
    added_n = sum(pq.read_metadata(p).num_rows for p in new_paths)
    extra = _new_embeddings(new_paths, m.dim)
    if can_append(m.vectors):
        # appended after the old rows in the same file: readers of version n map only theirs
        vectors = _append_vectors(root, m.vectors, m.count, m.dim, extra)  # type: ignore[arg-type]
    else:  # a file of format 2 (whole-file digest): this version's file, rows copied once
        vec_out = root / versioned_name("vectors", version, ".npy")
        extend_vectors(
            open_vectors(root, m.vectors, m.count, m.dim, m.vectors_file), extra, vec_out, m.dim, m.dtype
        )
        vectors = vectors_entry(vec_out, m.dtype, m.count + added_n, m.dim)
    index = load_faiss_index(root / m.faiss_file, m.faiss)
    add_to_faiss_index(index, np.concatenate(extra), (m.faiss or {}).get("metric", "l2"))
    faiss_out = write_faiss_index(index, root / versioned_name("faiss", version, ".index"))
    tomb = m.tombstones
    if st.clash:
        is_dead = np.concatenate([st.is_dead, np.zeros(added_n, bool)])
        is_dead[[st.live_pos[oid] for oid in st.clash]] = True
        allpos = np.flatnonzero(is_dead)
        all_ids = st.old_ids + [
            oid
            for p in new_paths
            for oid in pq.read_table(p, columns=["object_id"]).column("object_id").to_pylist()
        ]
        tomb = write_tombstones(root, version, allpos, [all_ids[i] for i in allpos])
    count = m.count + added_n
    new = dataclasses.replace(
        m,
        version=version,
        updated=utc_now(),
        package_version=__version__,
        count=count,
        shards=m.shards + shard_entries(root, new_paths),
        vectors=vectors,
        faiss={**(m.faiss or {}), **file_entry(faiss_out), "ntotal": int(index.ntotal)},
        tombstones=tomb,
        catalog={
            **m.catalog,
            "added": [*m.catalog.get("added", []), {"source": source, "count": added_n, **(how or {})}],
        },
    )
    commit_version(root, m, new)
    return version, added_n, len(st.clash)


def _new_embeddings(new_shards: Sequence[Path], dim: int) -> list[np.ndarray]:
    from .shards import read_shard_embeddings

    extra = [read_shard_embeddings(p)[0] for p in new_shards]
    for p, e in zip(new_shards, extra):
        if e.shape[1] != dim:
            raise IndexFormatError(f"{p}: new embeddings have dimension {e.shape[1]}, the index {dim}")
    return extra


def _append_vectors(
    root: Path, entry: dict[str, Any], count: int, dim: int, extra: list[np.ndarray]
) -> dict[str, Any]:
    # a stage of its own: the kill tests stop an add right after it (tests/faults)
    return append_rows(root, entry, count, dim, extra)
