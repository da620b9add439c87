"""Writes that add no rows to an existing index: delete (tombstones), compact (drop the deleted
rows from the files), reindex (train the FAISS index again). Each follows the protocol of
:mod:`.versioning`; adds are in :mod:`.writes`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_path, sha256_file
from ..errors import CatalogError, IndexFormatError, QueryError
from ..progress import NULL_PROGRESS, Progress
from ..version import __version__
from .candidates import IndexSpec, add_to_faiss_index, build_faiss_index, load_faiss_index, write_faiss_index
from .directory import assemble_vectors
from .filters import select_positions
from .layout import EMBEDDINGS_DIR
from .lock import directory_lock
from .manifest import Manifest
from .shards import RANGE_KEY, read_metadata_table
from .tombstones import read_tombstones, write_tombstones
from .vectors import open_vectors, vectors_entry
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
    "DeleteResult",
    "CompactResult",
    "delete_objects",
    "compact_index",
    "reindex",
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
        raise QueryError(
            "give either object ids or a filter condition to delete, not both or neither"
        ).resolved_by("object_ids", "where")
    root = checked_root(path)
    with directory_lock(root):
        m = open_for_write(root)
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
            m, version=version, updated=utc_now(), package_version=__version__, tombstones=entry
        )
        commit_version(root, m, new)
    return DeleteResult(
        root, version, int(len(fresh)), already, tuple(not_found), new.live_count, False, fresh_ids
    )


# --------------------------------------------------------------------------- compact


def compact_index(path: str | Path, progress: Progress = NULL_PROGRESS) -> CompactResult:
    """Rewrite shards, vectors and the FAISS index without the deleted rows.

    The FAISS index keeps its trained quantiser (emptied and refilled, not retrained);
    positions are renumbered, so the tombstone list goes."""
    import faiss

    root = checked_root(path)
    with directory_lock(root):
        m = open_for_write(root)
        refuse_ondisk(root, m)
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
            new_paths, m.dim, m.dtype, root / versioned_name("vectors", version, ".npy"), progress
        )
        index = load_faiss_index(root / m.faiss_file, m.faiss)
        index = faiss.clone_index(index)
        index.reset()
        metric = (m.faiss or {}).get("metric", "l2")
        add_to_faiss_index(index, vectors, metric)
        faiss_out = write_faiss_index(index, root / versioned_name("faiss", version, ".index"))
        new = dataclasses.replace(
            m,
            version=version,
            updated=utc_now(),
            package_version=__version__,
            count=len(ids),
            shards=shard_entries(root, new_paths),
            vectors=vectors_entry(
                root / versioned_name("vectors", version, ".npy"), m.dtype, len(ids), m.dim
            ),
            faiss={**(m.faiss or {}), **file_entry(faiss_out), "ntotal": int(index.ntotal)},
            tombstones=None,
        )
        commit_version(root, m, new)
    return CompactResult(root, version, int(len(dead)), len(ids))


# --------------------------------------------------------------------------- reindex


def reindex(path: str | Path, spec: IndexSpec | None = None, progress: Progress = NULL_PROGRESS) -> Manifest:
    """Train and fill the FAISS index again from the stored vectors (default: with the spec
    it was built with), e.g. after adds unbalanced the inverted lists. Deleted rows stay
    in it as before; the searcher's selector skips them."""
    root = checked_root(path)
    with directory_lock(root):
        m = open_for_write(root)
        refuse_ondisk(root, m)
        if spec is None:
            spec = IndexSpec(**(m.faiss or {}).get("spec", {}))
        vectors = open_vectors(root, m.vectors, m.count, m.dim, m.vectors_file)
        version = m.version + 1
        out = root / versioned_name("faiss", version, ".index")
        info = build_faiss_index(vectors, spec, out, progress)
        new = dataclasses.replace(
            m,
            version=version,
            updated=utc_now(),
            package_version=__version__,
            faiss={**info, "bytes": out.stat().st_size, "sha256": sha256_file(out)},
        )
        return commit_version(root, m, new)
