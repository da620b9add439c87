"""The life of an index directory as a build sees it: check it before the work, prepare it
under its lock, build a replacement beside a complete index and switch it in, assemble the
shards' vectors, finish with the manifest, and leave a refused new directory as it was.

Shared by every writer that makes a whole index (:mod:`.build`, :mod:`.foreign`, the Ray engine)
and by the versioned writes (:mod:`.versioning`, :mod:`.writes`, :mod:`.maintenance`), which read
what an index directory owns from here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as _dt
import errno
import fnmatch
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import TMP_SUFFIX, atomic_path, atomic_write_json, fsync_dir, reserve_space, sha256_file
from ..errors import GalaxyRetrievalError, IndexBusyError, IndexFormatError, NoSpaceError
from ..paths import PROBE_PREFIX, check_output_dir, first_missing, remove_created_dirs
from ..progress import Progress
from ..score import ScoreWeights
from ..version import __version__
from .candidates import build_faiss_index
from .candidates.ondisk import is_parts_dir
from .config import BuildConfig
from .layout import (
    EMBEDDINGS_DIR,
    FAISS_DATA_FILE,
    FAISS_FILE,
    LOCK_NAME,
    MANIFEST_NAME,
    MODEL_DIR,
    STATE_FILE,
    VECTORS_FILE,
    VERSIONED_GLOBS,
)
from .lock import directory_lock
from .manifest import Manifest, ShardEntry
from .metadata_map import prime_metadata_table, shard_keys
from .ray_engine import build_ondisk_ray
from .reference import REFERENCE_KEY, sample_reference
from .shards import read_shard_embeddings
from .vectors import vectors_entry

__all__ = [
    "BUILD_SHARD",
    "STAGE_SUFFIX",
    "OLD_SUFFIX",
    "owned_entries",
    "is_our_shard",
    "check_out",
    "prepare_out",
    "build_target",
    "check_state",
    "refusal_removes_new_dir",
    "assemble_vectors",
    "finish",
    "model_files_entry",
]


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def owned_entries(out: Path) -> tuple[list[Path], list[Path]]:
    """(files and folders of ``out`` an index build writes, everything else in it).

    Owned is what the layout of an index names (``indexes/README.md``): the manifest, the
    build state, vectors, FAISS file, the model copy, shards and the temp files of each, and
    the lock. Only these are ever deleted by an overwrite; anything else is the user's."""
    owned: list[Path] = []
    foreign: list[Path] = []
    if not out.is_dir():
        return owned, foreign
    top = {MANIFEST_NAME, STATE_FILE, VECTORS_FILE, FAISS_FILE, FAISS_DATA_FILE, LOCK_NAME}
    named = _manifest_files(out)
    interrupted = (out / STATE_FILE).is_file() and not (out / MANIFEST_NAME).is_file()
    for p in sorted(out.iterdir()):
        if p.name.startswith(PROBE_PREFIX):  # another writer checking the directory right now
            continue
        versioned = any(fnmatch.fnmatch(p.name, g) for g in VERSIONED_GLOBS)
        if (
            (p.name in top or versioned)
            and not p.is_dir()
            or _is_tmp_of(p.name, top)
            or _is_versioned_tmp(p.name)
            or (p.is_dir() and is_parts_dir(p.name))
        ):
            owned.append(p)
        elif p.name in (MODEL_DIR, EMBEDDINGS_DIR) and p.is_dir() and not p.is_symlink():
            names = {"model.safetensors", "checkpoint.json"} if p.name == MODEL_DIR else None
            for q in sorted(p.iterdir()):
                ok = (
                    (q.name in names or _is_tmp_of(q.name, names))
                    if names is not None
                    else (
                        is_our_shard(q, named, interrupted)
                        or fnmatch.fnmatch(q.name, ".part-*.parquet.*" + TMP_SUFFIX)
                    )
                )
                (owned if ok and q.is_file() else foreign).append(q)
            owned.append(p)
        else:
            foreign.append(p)
    return owned, foreign


# the shard names writers use: a build's part-NNNNN, an add's or compaction's part-vNNNNN-NNNNN
BUILD_SHARD = re.compile(r"part-\d{5,}\.parquet")
_VERSION_SHARD = re.compile(r"part-v\d{5,}-\d{5,}\.parquet")


def _manifest_files(out: Path) -> set[str]:
    """The shard files ``out``'s manifest names (relative paths); empty without a readable one."""
    try:
        d = json.loads((out / MANIFEST_NAME).read_text())
        return {str(s["file"]) for s in d.get("shards", []) if isinstance(s, dict) and "file" in s}
    except (OSError, ValueError, TypeError, AttributeError):
        return set()


def is_our_shard(q: Path, named: set[str], interrupted: bool) -> bool:
    """Whether ``embeddings/q`` is a shard an index writer wrote, not a user's file that merely
    matches ``part-*.parquet``: a writer's name, and named by the manifest, or part of an
    interrupted build, or carrying the metadata every writer stamps on its shards."""
    if not q.is_file() or q.is_symlink():
        return False
    if _VERSION_SHARD.fullmatch(q.name):
        return True
    if not BUILD_SHARD.fullmatch(q.name):
        return False
    if f"{EMBEDDINGS_DIR}/{q.name}" in named or interrupted:
        return True
    try:
        meta = pq.read_schema(q).metadata or {}
    except (pa.ArrowInvalid, OSError):
        return False
    return any(k.startswith(b"galaxy_retrieval.") for k in meta)


def _is_tmp_of(name: str, targets: set[str]) -> bool:
    """``name`` is an :func:`atomic_path` temp file of one of ``targets`` (``.NAME.PID.tmp``)."""
    if not (name.startswith(".") and name.endswith(TMP_SUFFIX)):
        return False
    stem, _, pid = name[1 : -len(TMP_SUFFIX)].rpartition(".")
    return pid.isdigit() and stem in targets


def _is_versioned_tmp(name: str) -> bool:
    if not (name.startswith(".") and name.endswith(TMP_SUFFIX)):
        return False
    stem, _, pid = name[1 : -len(TMP_SUFFIX)].rpartition(".")
    return pid.isdigit() and any(fnmatch.fnmatch(stem, g) for g in VERSIONED_GLOBS)


def _inside(p: Path, root: Path) -> bool:
    p, root = p.resolve(), root.resolve()
    return p == root or root in p.parents


def check_out(out: Path, overwrite: bool, inputs: dict[str, Path | None]) -> None:
    """Refuse an output directory the build must not write into; read-only, so a refusal
    leaves the directory as it was."""
    if out.exists() and not out.is_dir():
        raise IndexFormatError(f"{out}: exists and is not a directory")
    check_output_dir(out)  # under a regular file, read-only, /proc: before the embedding pass
    for what, p in inputs.items():
        if p is not None and _inside(Path(p), out):
            raise IndexFormatError(
                f"{out}: contains the {what} {p} that this build reads; choose an output directory outside it"
            )
    _, foreign = owned_entries(out)
    if foreign:
        shown = ", ".join(str(f.relative_to(out)) for f in foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise IndexFormatError(
            f"{out}: holds files that are not part of an index ({shown}); an index needs an empty or new directory"
        )
    if (out / MANIFEST_NAME).exists() and not overwrite:
        raise IndexFormatError(
            f"{out}: already holds a complete index; overwrite it, or choose another output directory"
        ).resolved_by("overwrite")


def prepare_out(out: Path, overwrite: bool) -> None:
    """Called with the directory's write lock held: clear what an earlier build left.

    With ``overwrite``, only the files the index owns are removed (never ``out`` itself nor
    anything around it). Temp files are always removed: under the lock no other writer can
    be writing them, so they are a killed run's litter (and may fill the disk)."""
    check_out(out, overwrite, {})  # again, under the lock: another writer may have finished meanwhile
    owned, _ = owned_entries(out)
    discard = overwrite and ((out / MANIFEST_NAME).exists() or (out / STATE_FILE).exists())
    for p in owned:
        if p.name == LOCK_NAME:
            continue
        if discard or p.name.endswith(TMP_SUFFIX):
            if p.is_dir():
                if is_parts_dir(p.name):  # a killed on-disk build's parts
                    shutil.rmtree(p, ignore_errors=True)
                continue  # emptied below; the folders themselves go once empty
            p.unlink(missing_ok=True)
    if discard:
        for d in (out / MODEL_DIR, out / EMBEDDINGS_DIR):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()


STAGE_SUFFIX = ".gr-new"  # the sibling a replacement is built in: .NAME.gr-new
OLD_SUFFIX = ".gr-old"  # where the replaced index waits for removal without an atomic exchange


def _sibling(out: Path, suffix: str) -> Path:
    return out.parent / f".{out.name}{suffix}"


@contextmanager
def build_target(out: Path, overwrite: bool, state: dict[str, Any]) -> Iterator[Path]:
    """The directory a build writes into, with every lock held; on success the build is ``out``.

    A new directory or an interrupted build is built in place (a rerun resumes it). Replacing
    a complete index (``overwrite``) builds beside it, in ``.NAME.gr-new``, and only a
    finished build is switched in by renaming, the old index removed after: a build that
    fails or is killed leaves the old index whole and queryable (a rerun resumes the
    replacement). ``state`` (what is built) is recorded in ``build-state.json``."""
    with refusal_removes_new_dir(out), directory_lock(out):
        if not (overwrite and (out / MANIFEST_NAME).is_file()):
            prepare_out(out, overwrite)
            check_state(out, state)
            yield out
            return
        check_out(out, True, {})  # again, under the lock
        real = out.resolve()  # a symlinked --out keeps its link; the folder it names is replaced
        if os.path.ismount(real):
            raise IndexFormatError(
                f"{out}: is a mount point, so a replacement cannot be switched in by renaming; build into a folder inside it"
            )
        check_output_dir(real.parent)
        _remove_leftover(_sibling(real, OLD_SUFFIX))
        stage = _sibling(real, STAGE_SUFFIX)
        _clear_stale_stage(stage, state)
        with refusal_removes_new_dir(stage), directory_lock(stage):
            prepare_out(stage, False)
            check_state(stage, state)
            yield stage
            _switch(real, stage)


def _clear_stale_stage(stage: Path, state: dict[str, Any]) -> None:
    """Keep a killed replacement of the same build (it resumes); remove any other one."""
    if not stage.exists() and not stage.is_symlink():
        return
    if stage.is_symlink() or not stage.is_dir() or owned_entries(stage)[1]:
        raise IndexFormatError(
            f"{stage}: is in the way of the replacement build and is not one of its folders; move it away"
        )
    try:
        same = json.loads((stage / STATE_FILE).read_text()) == state and not (stage / MANIFEST_NAME).exists()
    except (OSError, ValueError):
        same = False
    if not same:
        with directory_lock(stage):  # never under a build that is still running
            shutil.rmtree(stage)


def _remove_leftover(old: Path) -> None:
    """A replaced index whose removal was killed: only index files, removed under its lock."""
    if old.is_dir() and not old.is_symlink() and not owned_entries(old)[1]:
        with directory_lock(old):
            shutil.rmtree(old)


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux renameat2 RENAME_EXCHANGE); False where the
    kernel, libc or file system cannot, so the caller falls back to two renames."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(a))


def _switch(out: Path, stage: Path) -> None:
    """Make the finished build in ``stage`` the index at ``out``, then remove the old one.

    With an atomic exchange there is no moment without an index at ``out``; without one, a
    kill between the two renames leaves the old index whole at ``.NAME.gr-old``."""
    os.chmod(stage, stat.S_IMODE(out.stat().st_mode))  # the folder keeps the user's permissions
    fsync_dir(stage)
    if _exchange(stage, out):
        old = stage
    else:
        old = _sibling(out, OLD_SUFFIX)
        os.rename(out, old)
        os.rename(stage, out)
    fsync_dir(out.parent)
    # only what the old index owned goes; files a user put there meanwhile stay with the folder
    owned, foreign = owned_entries(old)
    if not foreign:
        shutil.rmtree(old, ignore_errors=True)
        return
    for p in owned:
        if p.is_file() or p.is_symlink():
            p.unlink(missing_ok=True)


def check_state(out: Path, state: dict[str, Any]) -> None:
    """Refuse to resume a build of something else into the same directory."""
    p = out / STATE_FILE
    if p.exists():
        try:
            old = json.loads(p.read_text())
        except json.JSONDecodeError:
            old = None
        if old is not None and old != state:
            diff = sorted(k for k in set(old) | set(state) if old.get(k) != state.get(k))
            raise IndexFormatError(
                f"{out}: holds an interrupted build of something else (differs in {', '.join(diff)}); "
                "overwrite it, or choose another output directory"
            ).resolved_by("overwrite")
    atomic_write_json(p, state)


@contextmanager
def refusal_removes_new_dir(out: Path) -> Iterator[None]:
    """A build refused in a new or empty directory leaves it as it was (a directory it created
    goes). An interrupted build (Ctrl-C, kill) or a full disk keeps its finished shards, so a
    rerun resumes; so does a refusal in a directory that already held a build."""
    top = first_missing(out)
    fresh = top is not None or not owned_entries(out)[0]
    try:
        yield
    except GalaxyRetrievalError as e:
        if fresh and not isinstance(e, (NoSpaceError, IndexBusyError)) and out.is_dir():
            owned, foreign = owned_entries(out)
            if not foreign:
                for p in owned:
                    if p.is_file():
                        p.unlink(missing_ok=True)
                for d in (out / MODEL_DIR, out / EMBEDDINGS_DIR):
                    if d.is_dir() and not any(d.iterdir()):
                        d.rmdir()
                remove_created_dirs(out, top)
        raise


def assemble_vectors(
    shard_paths: list[Path], dim: int, dtype: str, out: Path, progress: Progress
) -> tuple[np.ndarray, list[int], list[str]]:
    """Concatenate the shards' embeddings into one .npy (memory-mapped, written atomically)."""
    counts = [pq.read_metadata(p).num_rows for p in shard_paths]
    n = sum(counts)
    rows: list[int] = []
    ids: list[str] = []
    with atomic_path(out) as tmp:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=(n, dim))
        # the memmap's file is sparse: on a full disk the first write into it is a SIGBUS
        reserve_space(tmp, tmp.stat().st_size)
        pos = 0
        with progress.task("assembling vectors", total=n, unit="vec") as t:
            for p in shard_paths:
                emb, r, oid = read_shard_embeddings(p)
                if emb.shape[1] != dim:
                    raise IndexFormatError(f"{p}: embedding dimension {emb.shape[1]}, expected {dim}")
                mm[pos : pos + len(emb)] = emb
                pos += len(emb)
                rows.extend(r.tolist())
                ids.extend(oid)
                t.advance(len(emb))
        mm.flush()
        del mm
    return np.load(out, mmap_mode="r"), rows, ids


def finish(
    out: Path,
    shard_paths: list[Path],
    dim: int,
    dtype: str,
    cfg: BuildConfig,
    weights: ScoreWeights,
    model_info: dict[str, Any] | None,
    catalog_info: dict[str, Any],
    progress: Progress,
    seconds: dict[str, float],
) -> Manifest:
    """Make an index of the shards in ``out``: their vectors, the FAISS index, the score
    reference, then the manifest, written last (every whole-index build ends here)."""
    t0 = time.perf_counter()
    vectors, rows, ids = assemble_vectors(shard_paths, dim, dtype, out / VECTORS_FILE, progress)
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise IndexFormatError(f"{out / EMBEDDINGS_DIR}: object_id {dup!r} appears in more than one row")
    seconds["assemble"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if cfg.engine == "ray" and cfg.index.ondisk:  # the parts filled by parallel Ray tasks
        faiss_info = build_ondisk_ray(vectors, cfg, out / FAISS_FILE, progress)
    else:
        faiss_info = build_faiss_index(vectors, cfg.index, out / FAISS_FILE, progress)
    seconds["faiss"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # what a score means here: hits get their percentile among random pairs (reference.py)
    reference = sample_reference(vectors, weights)
    seconds["score_reference"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    entries = tuple(
        ShardEntry(
            file=f"{EMBEDDINGS_DIR}/{p.name}",
            rows=pq.read_metadata(p).num_rows,
            bytes=p.stat().st_size,
            sha256=sha256_file(p),
        )
        for p in shard_paths
    )
    vec = out / VECTORS_FILE
    faiss_file = out / FAISS_FILE
    manifest = Manifest(
        dim=dim,
        dtype=dtype,
        count=len(ids),
        shards=entries,
        score_weights=weights.to_dict(),
        model=model_info,
        catalog=catalog_info,
        faiss={**faiss_info, "bytes": faiss_file.stat().st_size, "sha256": sha256_file(faiss_file)},
        vectors=vectors_entry(vec, dtype, len(ids), dim),  # segmented: adds append to it
        created=_now(),
        package_version=__version__,
        extra={
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
            **({REFERENCE_KEY: reference.to_dict()} if reference else {}),
        },
        model_files=model_files_entry(out),
    )
    seconds["hash"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # the searcher's memory-mapped metadata table, written now so the first open only maps it
    prime_metadata_table([out / e.file for e in entries], shard_keys(entries))
    seconds["metadata_cache"] = time.perf_counter() - t0
    manifest.write(out)
    (out / STATE_FILE).unlink(missing_ok=True)
    return manifest


def model_files_entry(out: Path) -> dict[str, dict[str, Any]] | None:
    """Size and sha256 of each file of the index's model copy (what queries preprocess and
    embed with), for the manifest; None when the index has no model copy."""
    d = out / MODEL_DIR
    files = {f"{MODEL_DIR}/{n}": d / n for n in ("model.safetensors", "checkpoint.json") if (d / n).is_file()}
    return {rel: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for rel, p in files.items()} or None
