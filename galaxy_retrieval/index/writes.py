"""Writes to an existing index: delete (tombstones), compact, reindex, add.

Every write follows one protocol (``indexes/README.md``, "Writes"):

1. take the directory's write lock (:mod:`.lock`): one writer at a time, a second one fails
   fast with :class:`IndexBusyError`;
2. write the files of version n+1 under new names (``embeddings/part-vNNNNN-*.parquet``,
   ``vectors-vNNNNN.npy``, ``faiss-vNNNNN.index``, ``deleted-vNNNNN.parquet``), each atomically;
   an add instead appends its rows to the vectors file after version n's (:mod:`.vectors`);
3. write manifest n+1 atomically, last; only then remove the files version n alone used.

A kill at any point before step 3 leaves manifest n, whose files are all still there (and
whose vector rows are untouched), so the index answers as before, and a rerun writes the same
names again after truncating what the killed add appended. A searcher opened on version n
keeps its memory maps and in-memory copies after the files are removed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import fnmatch
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import TMP_SUFFIX, atomic_path, sha256_file
from ..errors import CatalogError, CheckpointError, IndexFormatError, QueryError
from ..progress import NULL_PROGRESS, Progress
from ..version import __version__
from .candidates import IndexSpec, add_to_faiss_index, build_faiss_index, load_faiss_index, write_faiss_index
from .directory import assemble_vectors, is_our_shard
from .embed import embed_rows
from .filters import select_positions
from .layout import EMBEDDINGS_DIR, FAISS_FILE, MODEL_DIR, SHARD_GLOB, VECTORS_FILE, VERSIONED_GLOBS
from .lock import directory_lock
from .manifest import FORMAT_VERSION, Manifest, ShardEntry, read_manifest
from .shards import MODEL_SHA_KEY, RANGE_KEY, read_metadata_table, write_shard
from .tombstones import read_tombstones, write_tombstones
from .vectors import append_rows, can_append, extend_vectors, open_vectors, repair_vectors, vectors_entry

__all__ = [
    "DeleteResult",
    "CompactResult",
    "AddResult",
    "delete_objects",
    "compact_index",
    "reindex",
    "add_objects",
    "append_vectors",
    "read_id_list",
]


@dataclass(frozen=True)
class DeleteResult:
    path: Path
    version: int  # the index's version after the call (unchanged when nothing was deleted)
    deleted: int  # rows deleted by this call
    already_deleted: int  # asked for, but deleted by an earlier call
    not_found: tuple[str, ...]  # ids asked for that the index never held
    live: int  # objects the index answers with now
    dry_run: bool = False  # nothing was written: ``deleted`` and ``ids`` say what would be
    ids: tuple[str, ...] = ()  # the object ids deleted by this call (or that would be)


@dataclass(frozen=True)
class CompactResult:
    path: Path
    version: int
    removed: int  # deleted rows dropped from the files
    count: int


@dataclass(frozen=True)
class AddResult:
    path: Path
    version: int
    added: int
    replaced: int  # existing objects superseded (upsert)
    skipped: list[tuple[int, str]]  # unreadable images (on_error="skip")
    seconds: float


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _vname(stem: str, version: int, ext: str) -> str:
    return f"{stem}-v{version:05d}{ext}"


def _open_for_write(root: Path) -> Manifest:
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


def _commit(root: Path, old: Manifest, new: Manifest) -> Manifest:
    """Write ``new`` as the index's manifest, then remove the files only ``old`` named."""
    new = dataclasses.replace(new, format_version=FORMAT_VERSION)  # a write may use this package's layout
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


def _refuse_ondisk(root: Path, m: Manifest) -> None:
    """Versioned rewrites copy the FAISS file; an on-disk index's inverted lists are a second,
    large file those rewrites do not carry yet, so they are refused rather than half-done."""
    if (m.faiss or {}).get("ondisk"):
        raise IndexFormatError(
            f"{root}: the index keeps its inverted lists on disk; adds, compaction and reindexing need a new build of it"
        )


def _checked_root(path: str | Path) -> Path:
    root = Path(path)
    read_manifest(root)  # before the lock: taking it would create a missing directory
    return root


# --------------------------------------------------------------------------- delete


def read_id_list(path: str | Path) -> list[str]:
    """Object ids from a text file, one per line (blank lines and ``#`` comments skipped)."""
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CatalogError(
            f"{p}: cannot read the id list ({e.strerror if isinstance(e, OSError) else e})"
        ) from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def delete_objects(
    path: str | Path, object_ids: Sequence[str] | None = None, where: str | None = None, dry_run: bool = False
) -> DeleteResult:
    """Mark objects deleted, by id or by a SQL condition over the metadata columns.

    Writes the next version's tombstone list and manifest; the vectors, shards and FAISS
    index are untouched until :func:`compact_index`. Ids the index never held are returned
    in ``not_found`` (not an error: a delete list is often a superset). ``dry_run``: write
    nothing, return what would be deleted."""
    if (object_ids is None) == (where is None):
        raise QueryError("give either object ids or a filter condition to delete, not both or neither")
    root = _checked_root(path)
    with directory_lock(root):
        m = _open_for_write(root)
        table = read_metadata_table([root / s.file for s in m.shards])
        dead, _ = read_tombstones(root, m.tombstones, m.count)
        is_dead = np.zeros(m.count, bool)
        is_dead[dead] = True
        ids = table.column("object_id").to_pylist()
        not_found: list[str] = []
        if object_ids is not None:
            pos_of = {oid: i for i, oid in enumerate(ids)}
            want = []
            for oid in dict.fromkeys(str(o) for o in object_ids):
                p = pos_of.get(oid)
                if p is None:
                    not_found.append(oid)
                else:
                    want.append(p)
            positions = np.asarray(sorted(want), np.int64)
        else:
            names = (m.catalog or {}).get("label_names") or None
            positions = select_positions(
                table, where, label_names={int(k): v for k, v in names.items()} if names else None
            )  # type: ignore[arg-type]
        fresh = positions[~is_dead[positions]]
        already = len(positions) - len(fresh)
        fresh_ids = tuple(ids[i] for i in fresh)
        if len(fresh) == 0 or dry_run:
            return DeleteResult(
                root, m.version, int(len(fresh)), already, tuple(not_found), m.live_count, dry_run, fresh_ids
            )
        is_dead[fresh] = True
        allpos = np.flatnonzero(is_dead)
        version = m.version + 1
        entry = write_tombstones(root, version, allpos, [ids[i] for i in allpos])
        new = dataclasses.replace(
            m, version=version, updated=_now(), package_version=__version__, tombstones=entry
        )
        _commit(root, m, new)
    return DeleteResult(
        root, version, int(len(fresh)), already, tuple(not_found), new.live_count, False, fresh_ids
    )


# --------------------------------------------------------------------------- compact


def compact_index(path: str | Path, progress: Progress = NULL_PROGRESS) -> CompactResult:
    """Rewrite shards, vectors and the FAISS index without the deleted rows.

    The FAISS index keeps its trained quantiser (emptied and refilled, not retrained);
    positions are renumbered, so the tombstone list goes."""
    import faiss

    root = _checked_root(path)
    with directory_lock(root):
        m = _open_for_write(root)
        _refuse_ondisk(root, m)
        dead, _ = read_tombstones(root, m.tombstones, m.count)
        if len(dead) == 0:
            return CompactResult(root, m.version, 0, m.count)
        if len(dead) == m.count:
            raise IndexFormatError(
                f"{root}: every object is deleted; compaction would leave an empty index (build a new one instead)"
            )
        is_dead = np.zeros(m.count, bool)
        is_dead[dead] = True
        version = m.version + 1
        new_paths: list[Path] = []
        off = 0
        for s in m.shards:
            t = pq.read_table(root / s.file)
            keep = ~is_dead[off : off + s.rows]
            off += s.rows
            if not keep.any():
                continue
            t = t.filter(pa.array(keep))
            meta = dict(t.schema.metadata or {})
            meta.pop(RANGE_KEY, None)  # no longer the build's row range: never resumed from
            t = t.replace_schema_metadata(meta)
            dst = root / EMBEDDINGS_DIR / f"part-v{version:05d}-{len(new_paths):05d}.parquet"
            with atomic_path(dst) as tmp:
                pq.write_table(t, tmp, compression="zstd" if m.dtype == "float16" else "snappy")
            new_paths.append(dst)
        vectors, _, ids = assemble_vectors(
            new_paths, m.dim, m.dtype, root / _vname("vectors", version, ".npy"), progress
        )
        index = load_faiss_index(root / m.faiss_file, m.faiss)
        index = faiss.clone_index(index)
        index.reset()
        metric = (m.faiss or {}).get("metric", "l2")
        add_to_faiss_index(index, vectors, metric)
        faiss_out = write_faiss_index(index, root / _vname("faiss", version, ".index"))
        new = dataclasses.replace(
            m,
            version=version,
            updated=_now(),
            package_version=__version__,
            count=len(ids),
            shards=_entries(root, new_paths),
            vectors=vectors_entry(root / _vname("vectors", version, ".npy"), m.dtype, len(ids), m.dim),
            faiss={**(m.faiss or {}), **_file_entry(faiss_out), "ntotal": int(index.ntotal)},
            tombstones=None,
        )
        _commit(root, m, new)
    return CompactResult(root, version, int(len(dead)), len(ids))


def _file_entry(p: Path) -> dict[str, Any]:
    return {"file": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)}


def _entries(root: Path, paths: Sequence[Path]) -> tuple[ShardEntry, ...]:
    return tuple(
        ShardEntry(
            file=str(p.relative_to(root)),
            rows=pq.read_metadata(p).num_rows,
            bytes=p.stat().st_size,
            sha256=sha256_file(p),
        )
        for p in paths
    )


# --------------------------------------------------------------------------- reindex


def reindex(path: str | Path, spec: IndexSpec | None = None, progress: Progress = NULL_PROGRESS) -> Manifest:
    """Train and fill the FAISS index again from the stored vectors (default: with the spec
    it was built with), e.g. after adds unbalanced the inverted lists. Deleted rows stay
    in it as before; the searcher's selector skips them."""
    root = _checked_root(path)
    with directory_lock(root):
        m = _open_for_write(root)
        _refuse_ondisk(root, m)
        if spec is None:
            spec = IndexSpec(**(m.faiss or {}).get("spec", {}))
        vectors = open_vectors(root, m.vectors, m.count, m.dim, m.vectors_file)
        version = m.version + 1
        out = root / _vname("faiss", version, ".index")
        info = build_faiss_index(vectors, spec, out, progress)
        new = dataclasses.replace(
            m,
            version=version,
            updated=_now(),
            package_version=__version__,
            faiss={**info, "bytes": out.stat().st_size, "sha256": sha256_file(out)},
        )
        return _commit(root, m, new)


# --------------------------------------------------------------------------- add


def add_objects(
    path: str | Path,
    catalog: Any,
    upsert: bool = False,
    batch_size: int = 128,
    progress: Progress = NULL_PROGRESS,
    ingest: Any = "default",
) -> AddResult:
    """Embed ``catalog`` with the index's own model and append it: new shards, the vectors
    file extended, the vectors added to the FAISS index without training it again.

    An object id the index already answers with is refused by name, unless ``upsert``: then
    the old row is deleted (tombstoned) and the new one added. Everything that can be
    refused is checked before anything is written. ``ingest``: an image folder is read
    through the fast path (:class:`~galaxy_retrieval.ingest.IngestConfig`, as ``gr build-index``
    does; None: in this process only)."""
    from ..ingest import IngestConfig
    from ..model import load_checkpoint

    if isinstance(ingest, str):
        ingest = IngestConfig()

    t0 = time.perf_counter()
    root = _checked_root(path)
    n = len(catalog)
    if n == 0:
        raise CatalogError(f"{catalog.path}: the catalog holds no objects; nothing to add")
    new_ids = _unique_ids(list(catalog.object_ids()), str(catalog.path))
    with directory_lock(root):
        m = _open_for_write(root)
        _refuse_ondisk(root, m)
        if not (root / MODEL_DIR).is_dir():
            raise CheckpointError(
                f"{root}: the index has no model copy (built from shards), so new images cannot be embedded like its own"
            )
        embedder = load_checkpoint(root / MODEL_DIR)
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
            version, added, replaced = _append(root, m, state, new_paths, catalog.source)
        except Exception:
            # a refusal mid-way (an image the model cannot take, a full disk) leaves the
            # directory as it was; a kill leaves these files to the next write's sweep
            _open_for_write(root)
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
    root = _checked_root(path)
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
        m = _open_for_write(root)
        _refuse_ondisk(root, m)
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
            _open_for_write(root)
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
    root: Path, m: Manifest, st: _AddState, new_paths: list[Path], source: str
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
        vec_out = root / _vname("vectors", version, ".npy")
        extend_vectors(
            open_vectors(root, m.vectors, m.count, m.dim, m.vectors_file), extra, vec_out, m.dim, m.dtype
        )
        vectors = vectors_entry(vec_out, m.dtype, m.count + added_n, m.dim)
    index = load_faiss_index(root / m.faiss_file, m.faiss)
    add_to_faiss_index(index, np.concatenate(extra), (m.faiss or {}).get("metric", "l2"))
    faiss_out = write_faiss_index(index, root / _vname("faiss", version, ".index"))
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
        updated=_now(),
        package_version=__version__,
        count=count,
        shards=m.shards + _entries(root, new_paths),
        vectors=vectors,
        faiss={**(m.faiss or {}), **_file_entry(faiss_out), "ntotal": int(index.ntotal)},
        tombstones=tomb,
        catalog={**m.catalog, "added": [*m.catalog.get("added", []), {"source": source, "count": added_n}]},
    )
    _commit(root, m, new)
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
