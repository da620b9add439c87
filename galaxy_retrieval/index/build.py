"""`gr build-index`: catalog → embeddings (Parquet shards) → vectors.npy → FAISS index → manifest.

Crash-safe and resumable. Shard *i* always covers catalog positions
``[i·shard_rows, (i+1)·shard_rows)`` and is embedded in the same fixed batches, so a rerun
after a kill skips the shards already on disk (each written atomically) and produces the same
bytes as an uninterrupted run. ``build-state.json`` records what is being built; a rerun with
a different checkpoint or catalog into the same directory is refused rather than mixed. The
manifest is written last, so a half-built directory is never taken for an index.

The manifest's score weights (what the searcher reranks with) are the checkpoint's —
learned ones when its training learned them (:attr:`Embedder.score_weights`) — unless
``BuildConfig.score_weights`` is given. Images are embedded exactly as the checkpoint's
training saw them, source suppression included (:attr:`Embedder.suppress`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import fnmatch
import ctypes
import ctypes.util
import errno
import json
import os
import re
import shutil
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..version import __version__
from ..ingest import IngestConfig, IngestStats, can_prepare, open_box_store
from ..errors import CatalogError, ConfigError, GalaxyRetrievalError, IndexBusyError, IndexFormatError, NoSpaceError
from ..paths import PROBE_PREFIX, check_output_dir, first_missing, remove_created_dirs
from ..progress import NULL_PROGRESS, Progress
from ..score import ScoreWeights
from ..atomic import TMP_SUFFIX, atomic_path, atomic_write_json, fsync_dir, reserve_space, sha256_file
from .candidates import IndexSpec, build_faiss_index, check_index_spec
from .embed import embed_rows
from .layout import (
    EMBEDDINGS_DIR,
    FAISS_DATA_FILE,
    FAISS_FILE,
    LOCK_NAME,
    MANIFEST_NAME,
    MODEL_DIR,
    SHARD_GLOB,
    STATE_FILE,
    VECTORS_FILE,
    VERSIONED_GLOBS,
    shard_name,
)
from .lock import directory_lock
from .manifest import Manifest, ShardEntry
from .ondisk import is_parts_dir
from .ray_engine import ENGINES, RayConfig
from .reference import REFERENCE_KEY, sample_reference
from .ray_engine import session as engine_session
from .shards import MODEL_SHA_KEY, RANGE_KEY, check_shard_models, read_shard_embeddings, write_shard
from .vectors import vectors_entry

__all__ = ["BuildConfig", "BuildResult", "build_index", "build_index_from_shards", "build_target"]



@dataclass(frozen=True)
class BuildConfig:
    dtype: str = "float32"  # storage of shards and vectors.npy: float32 | float16
    shard_rows: int = 8192
    batch_size: int = 128
    index: IndexSpec = field(default_factory=IndexSpec)
    # None: the checkpoint's (from shards: the source manifest's, else the paper's 1/3 each)
    score_weights: ScoreWeights | None = None
    overwrite: bool = False
    # who runs the embedding pass: "local" (this process) or "ray" (Ray Data actors, ray_engine.py);
    # both write the same shards, so either resumes the other's interrupted build
    engine: str = "local"
    ray: RayConfig | None = None  # with engine="ray"; None: a local Ray with one actor per CPU
    # image folders, local engine: the fast path (worker pool, reduced-size framing, box store);
    # None: every image decoded and framed in this process, as before
    ingest: IngestConfig | None = field(default_factory=IngestConfig)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}").resolved_by("engine")
        if isinstance(self.ingest, dict):  # a pipeline file's [build] ingest = {workers = 2, …}
            try:
                object.__setattr__(self, "ingest", IngestConfig(**self.ingest))
            except TypeError as e:
                raise ConfigError(f"build ingest: {e}") from None
        if self.ingest is not None and not isinstance(self.ingest, IngestConfig):
            raise ConfigError(f"ingest must be an IngestConfig or None, got {type(self.ingest).__name__}")
        if self.ray is not None and not isinstance(self.ray, RayConfig):
            raise ConfigError(f"ray must be a RayConfig or None, got {type(self.ray).__name__}")
        if self.score_weights is not None and not isinstance(self.score_weights, ScoreWeights):
            raise ConfigError(f"score_weights must be a ScoreWeights or None, got {type(self.score_weights).__name__}")
        if self.dtype not in ("float32", "float16"):
            raise ConfigError(f"dtype must be float32 or float16, got {self.dtype!r}").resolved_by("dtype")
        if self.shard_rows < 1 or self.batch_size < 1:
            raise ConfigError(f"shard_rows ({self.shard_rows}) and batch_size ({self.batch_size}) must be ≥ 1")


@dataclass(frozen=True)
class BuildResult:
    path: Path
    manifest: Manifest
    embedded_shards: int  # shards embedded by this run
    reused_shards: int  # shards found complete from an earlier, interrupted run
    skipped: list[tuple[int, str]]  # unreadable catalog images (with on_error="skip")
    seconds: dict[str, float]
    # the fast path's stage CPU seconds and box counts (None: not used)
    ingest: dict[str, Any] | None = None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _owned_entries(out: Path) -> tuple[list[Path], list[Path]]:
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
        if (p.name in top or versioned) and not p.is_dir():
            owned.append(p)
        elif _is_tmp_of(p.name, top) or _is_versioned_tmp(p.name) or (p.is_dir() and is_parts_dir(p.name)):
            owned.append(p)
        elif p.name in (MODEL_DIR, EMBEDDINGS_DIR) and p.is_dir() and not p.is_symlink():
            names = {"model.safetensors", "checkpoint.json"} if p.name == MODEL_DIR else None
            for q in sorted(p.iterdir()):
                ok = (q.name in names or _is_tmp_of(q.name, names)) if names is not None else (
                    _is_our_shard(q, named, interrupted) or fnmatch.fnmatch(q.name, ".part-*.parquet.*" + TMP_SUFFIX)
                )
                (owned if ok and q.is_file() else foreign).append(q)
            owned.append(p)
        else:
            foreign.append(p)
    return owned, foreign


# the shard names writers use: a build's part-NNNNN, an add's or compaction's part-vNNNNN-NNNNN
_BUILD_SHARD = re.compile(r"part-\d{5,}\.parquet")
_VERSION_SHARD = re.compile(r"part-v\d{5,}-\d{5,}\.parquet")


def _manifest_files(out: Path) -> set[str]:
    """The shard files ``out``'s manifest names (relative paths); empty without a readable one."""
    try:
        d = json.loads((out / MANIFEST_NAME).read_text())
        return {str(s["file"]) for s in d.get("shards", []) if isinstance(s, dict) and "file" in s}
    except (OSError, ValueError, TypeError, AttributeError):
        return set()


def _is_our_shard(q: Path, named: set[str], interrupted: bool) -> bool:
    """Whether ``embeddings/q`` is a shard an index writer wrote, not a user's file that merely
    matches ``part-*.parquet``: a writer's name, and named by the manifest, or part of an
    interrupted build, or carrying the metadata every writer stamps on its shards."""
    if not q.is_file() or q.is_symlink():
        return False
    if _VERSION_SHARD.fullmatch(q.name):
        return True
    if not _BUILD_SHARD.fullmatch(q.name):
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


def _check_out(out: Path, overwrite: bool, inputs: dict[str, Path | None]) -> None:
    """Refuse an output directory the build must not write into; read-only, so a refusal
    leaves the directory as it was."""
    if out.exists() and not out.is_dir():
        raise IndexFormatError(f"{out}: exists and is not a directory")
    check_output_dir(out)  # under a regular file, read-only, /proc: before the embedding pass
    for what, p in inputs.items():
        if p is not None and _inside(Path(p), out):
            raise IndexFormatError(f"{out}: contains the {what} {p} that this build reads; choose an output directory outside it")
    _, foreign = _owned_entries(out)
    if foreign:
        shown = ", ".join(str(f.relative_to(out)) for f in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise IndexFormatError(
            f"{out}: holds files that are not part of an index ({shown}); an index needs an empty or new directory"
        )
    if (out / MANIFEST_NAME).exists() and not overwrite:
        raise IndexFormatError(f"{out}: already holds a complete index; overwrite it, or choose another output directory").resolved_by("overwrite")


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Called with the directory's write lock held: clear what an earlier build left.

    With ``overwrite``, only the files the index owns are removed (never ``out`` itself nor
    anything around it). Temp files are always removed: under the lock no other writer can
    be writing them, so they are a killed run's litter (and may fill the disk)."""
    _check_out(out, overwrite, {})  # again, under the lock: another writer may have finished meanwhile
    owned, _ = _owned_entries(out)
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
    with _refusal_removes_new_dir(out), directory_lock(out):
        if not (overwrite and (out / MANIFEST_NAME).is_file()):
            _prepare_out(out, overwrite)
            _check_state(out, state)
            yield out
            return
        _check_out(out, True, {})  # again, under the lock
        real = out.resolve()  # a symlinked --out keeps its link; the folder it names is replaced
        if os.path.ismount(real):
            raise IndexFormatError(f"{out}: is a mount point, so a replacement cannot be switched in by renaming; build into a folder inside it")
        check_output_dir(real.parent)
        _remove_leftover(_sibling(real, OLD_SUFFIX))
        stage = _sibling(real, STAGE_SUFFIX)
        _clear_stale_stage(stage, state)
        with _refusal_removes_new_dir(stage), directory_lock(stage):
            _prepare_out(stage, False)
            _check_state(stage, state)
            yield stage
            _switch(real, stage)


def _clear_stale_stage(stage: Path, state: dict[str, Any]) -> None:
    """Keep a killed replacement of the same build (it resumes); remove any other one."""
    if not stage.exists() and not stage.is_symlink():
        return
    if stage.is_symlink() or not stage.is_dir() or _owned_entries(stage)[1]:
        raise IndexFormatError(f"{stage}: is in the way of the replacement build and is not one of its folders; move it away")
    try:
        same = json.loads((stage / STATE_FILE).read_text()) == state and not (stage / MANIFEST_NAME).exists()
    except (OSError, ValueError):
        same = False
    if not same:
        with directory_lock(stage):  # never under a build that is still running
            shutil.rmtree(stage)


def _remove_leftover(old: Path) -> None:
    """A replaced index whose removal was killed: only index files, removed under its lock."""
    if old.is_dir() and not old.is_symlink() and not _owned_entries(old)[1]:
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
    owned, foreign = _owned_entries(old)
    if not foreign:
        shutil.rmtree(old, ignore_errors=True)
        return
    for p in owned:
        if p.is_file() or p.is_symlink():
            p.unlink(missing_ok=True)


def _check_state(out: Path, state: dict[str, Any]) -> None:
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


def _shard_complete(path: Path, lo: int, hi: int, model_sha256: str) -> bool:
    """Whether ``path`` is this build's shard of rows [lo, hi), embedded by this model: a
    shard of another model (an earlier build, another writer) is embedded again."""
    if not path.is_file():
        return False
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError):
        return False  # unreadable: embed it again
    return meta.get(RANGE_KEY) == f"{lo}:{hi}".encode() and meta.get(MODEL_SHA_KEY) == model_sha256.encode()


def _assemble_vectors(shard_paths: list[Path], dim: int, dtype: str, out: Path, progress: Progress) -> tuple[np.ndarray, list[int], list[str]]:
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


def _finish(
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
    t0 = time.perf_counter()
    vectors, rows, ids = _assemble_vectors(shard_paths, dim, dtype, out / VECTORS_FILE, progress)
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise IndexFormatError(f"{out / EMBEDDINGS_DIR}: object_id {dup!r} appears in more than one row")
    seconds["assemble"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if cfg.engine == "ray" and cfg.index.ondisk:  # the parts filled by parallel Ray tasks
        from .ray_engine import build_ondisk_ray

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
        ShardEntry(file=f"{EMBEDDINGS_DIR}/{p.name}", rows=pq.read_metadata(p).num_rows, bytes=p.stat().st_size, sha256=sha256_file(p))
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
        extra={"seconds": {k: round(v, 3) for k, v in seconds.items()}, **({REFERENCE_KEY: reference.to_dict()} if reference else {})},
        model_files=model_files_entry(out),
    )
    seconds["hash"] = time.perf_counter() - t0
    manifest.write(out)
    (out / STATE_FILE).unlink(missing_ok=True)
    return manifest


def model_files_entry(out: Path) -> dict[str, dict[str, Any]] | None:
    """Size and sha256 of each file of the index's model copy (what queries preprocess and
    embed with), for the manifest; None when the index has no model copy."""
    d = out / MODEL_DIR
    files = {f"{MODEL_DIR}/{n}": d / n for n in ("model.safetensors", "checkpoint.json") if (d / n).is_file()}
    return {rel: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for rel, p in files.items()} or None


def build_index(
    checkpoint: str | Path,
    catalog: Any,
    out: str | Path,
    cfg: BuildConfig = BuildConfig(),
    progress: Progress = NULL_PROGRESS,
) -> BuildResult:
    """Embed ``catalog`` with the checkpoint, write shards, and build the index directory.

    Everything that can be checked before the embedding pass is (catalog size, duplicate ids,
    FAISS factory and knobs, the output directory); a refusal of a build this call started
    in a new directory removes that directory again. One writer at a time: the directory's
    lock (:mod:`.lock`) is held throughout."""
    from ..model import load_checkpoint

    out = Path(out)
    embedder = load_checkpoint(checkpoint)
    n = len(catalog)
    if n == 0:
        raise CatalogError(f"{catalog.path}: the catalog holds no objects; nothing to index")
    check_index_spec(cfg.index, n, embedder.dim)
    _check_unique_ids(catalog)
    _check_out(out, cfg.overwrite, {"catalog": Path(catalog.path), **({"checkpoint": Path(checkpoint)} if cfg.overwrite else {})})
    with build_target(out, cfg.overwrite, _build_state(embedder, catalog, n, cfg)) as dst, engine_session(cfg):
        res = _build_locked(Path(checkpoint), embedder, catalog, n, dst, cfg, progress)
    return dataclasses.replace(res, path=out)


def _build_state(embedder: Any, catalog: Any, n: int, cfg: BuildConfig) -> dict[str, Any]:
    """What a build is building: a rerun resumes only the same one."""
    state = {
        "checkpoint_sha256": embedder.sha256,
        "catalog": catalog.source,
        "catalog_count": n,
        "shard_rows": cfg.shard_rows,
        "batch_size": cfg.batch_size,
        "dtype": cfg.dtype,
    }
    if embedder.suppress is not None:  # part of what the vectors are
        state["suppress_sources"] = embedder.suppress.to_dict()
    fast = _fast_ingest(cfg, catalog, embedder)
    if fast is not None:  # where boxes are measured and how the model is batched: part of the vectors too
        state["ingest"] = fast.to_dict()
    return state


def _fast_ingest(cfg: BuildConfig, catalog: Any, embedder: Any) -> IngestConfig | None:
    """The ingest fast path's settings when this build takes it: the local engine, an image
    folder, and a model that does not suppress sources (which needs the full images here)."""
    local = cfg.engine == "local" and cfg.ingest is not None
    return cfg.ingest if local and can_prepare(catalog) and embedder.suppress is None else None


def _check_unique_ids(catalog: Any) -> None:
    """Duplicate object ids would only surface after the whole embedding pass; look first."""
    seen: set[str] = set()
    for oid in catalog.object_ids():
        if oid in seen:
            raise CatalogError(f"{catalog.path}: object id {oid!r} appears more than once; ids must be unique")
        seen.add(oid)


@contextmanager
def _refusal_removes_new_dir(out: Path) -> Iterator[None]:
    """A build refused in a new or empty directory leaves it as it was (a directory it created
    goes). An interrupted build (Ctrl-C, kill) or a full disk keeps its finished shards, so a
    rerun resumes; so does a refusal in a directory that already held a build."""
    top = first_missing(out)
    fresh = top is not None or not _owned_entries(out)[0]
    try:
        yield
    except GalaxyRetrievalError as e:
        if fresh and not isinstance(e, (NoSpaceError, IndexBusyError)) and out.is_dir():
            owned, foreign = _owned_entries(out)
            if not foreign:
                for p in owned:
                    if p.is_file():
                        p.unlink(missing_ok=True)
                for d in (out / MODEL_DIR, out / EMBEDDINGS_DIR):
                    if d.is_dir() and not any(d.iterdir()):
                        d.rmdir()
                remove_created_dirs(out, top)
        raise


def _build_locked(
    checkpoint: Path, embedder: Any, catalog: Any, n: int, out: Path, cfg: BuildConfig, progress: Progress
) -> BuildResult:
    fast = _fast_ingest(cfg, catalog, embedder)
    _copy_model(checkpoint, out / MODEL_DIR, embedder)

    shard_dir = out / EMBEDDINGS_DIR
    shard_dir.mkdir(exist_ok=True)
    nshards = -(-n // cfg.shard_rows)
    shard_paths: list[Path] = []
    reused = 0
    skipped: list[tuple[int, str]] = []
    t0 = time.perf_counter()
    pending: list[tuple[int, int, int]] = []
    for i in range(nshards):
        lo, hi = i * cfg.shard_rows, min(n, (i + 1) * cfg.shard_rows)
        path = shard_dir / shard_name(i)
        shard_paths.append(path)
        if _shard_complete(path, lo, hi, embedder.sha256):
            reused += 1
        else:
            pending.append((i, lo, hi))
    done = n - sum(hi - lo for _, lo, hi in pending)
    stats = IngestStats()
    shard_seconds: dict[str, float] = {}
    if cfg.engine == "ray":  # the same shards, embedded by a pool of Ray actors
        from .ray_engine import embed_shards_ray

        skipped.extend(embed_shards_ray(checkpoint, catalog, shard_dir, pending, cfg, embedder, progress, done))
    else:
        store = open_box_store(embedder.model_config.framing, fast) if fast is not None and pending else None
        with progress.task("embedding", total=n, unit="img") as task:
            if done:
                task.advance(done)
            for i, lo, hi in pending:
                skipped.extend(
                    embed_shard(catalog, embedder, shard_dir / shard_name(i), lo, hi, cfg.batch_size, cfg.dtype, task.advance,
                                ingest=fast, ingest_stats=stats, box_store=store, seconds=shard_seconds)
                )
    embedded = len(pending)
    seconds = {"embed": time.perf_counter() - t0, **shard_seconds}
    if fast is not None and pending and embedder.model_config.framing.mode == "auto":
        progress.log(stats.framing.describe_reuse())
    for stale in shard_dir.glob(SHARD_GLOB):  # from a longer catalog of an earlier attempt
        if stale not in shard_paths and _BUILD_SHARD.fullmatch(stale.name):
            stale.unlink()
    catalog_info = {"source": catalog.source, "path": str(Path(catalog.path).resolve()), "kind": catalog.kind, "count": n, "skipped": len(skipped)}
    names = getattr(catalog, "label_names", None)
    if names:  # so results are captioned with the catalog's own class names
        catalog_info["label_names"] = {str(k): v for k, v in names.items()}
    weights = cfg.score_weights if cfg.score_weights is not None else embedder.score_weights
    manifest = _finish(out, shard_paths, embedder.dim, cfg.dtype, cfg, weights, embedder.manifest_info(), catalog_info, progress, seconds)
    return BuildResult(out, manifest, embedded, reused, skipped, seconds, stats.to_dict() if fast is not None and pending else None)


def embed_shard(
    catalog: Any, embedder: Any, path: Path, lo: int, hi: int, batch_size: int, dtype: str, advance: Any = None,
    ingest: IngestConfig | None = None, ingest_stats: IngestStats | None = None, box_store: Any = "open",
    seconds: dict[str, float] | None = None,
) -> list[tuple[int, str]]:
    """Embed catalog rows [lo, hi) (:func:`.embed.embed_rows`) and write them as one shard,
    atomically, with its row range and model. The step of every engine (the local loop, a Ray
    actor): the same rows in the same batches make the same shard. Returns the skipped rows.
    ``seconds`` accumulates the time spent writing shards (``write_shards``)."""
    skipped: list[tuple[int, str]] = []
    got = embed_rows(catalog, embedder, lo, hi, batch_size, skipped, advance or (lambda n: None), ingest, ingest_stats, box_store)
    t0 = time.perf_counter()
    if got is None:
        raise IndexFormatError(f"{catalog.path}: every image in rows {lo}–{hi - 1} was unreadable")
    write_shard(
        path,
        got.ids,
        got.rows,
        got.vectors,
        got.metadata,
        dtype=dtype,
        extra_schema_metadata={RANGE_KEY.decode(): f"{lo}:{hi}", MODEL_SHA_KEY.decode(): embedder.sha256},
    )
    if seconds is not None:
        seconds["write_shards"] = seconds.get("write_shards", 0.0) + time.perf_counter() - t0
    return skipped


def build_index_from_shards(
    shards: str | Path,
    out: str | Path,
    cfg: BuildConfig = BuildConfig(),
    progress: Progress = NULL_PROGRESS,
    catalog_info: dict[str, Any] | None = None,
) -> BuildResult:
    """Build the vectors and FAISS index from existing shards (e.g. written on a cluster);
    no model needed. Shards are copied into ``out`` so the index stays self-contained."""
    src = Path(shards)
    if not src.is_dir():
        raise IndexFormatError(f"{src}: not a directory of Parquet shards")
    paths = sorted(src.glob(SHARD_GLOB))
    if not paths:
        raise IndexFormatError(f"{src}: no shards named part-NNNNN.parquet")
    dim, dtype, count = _shards_layout(paths)
    out = Path(out)
    src_manifest = src.parent / MANIFEST_NAME if src.name == EMBEDDINGS_DIR else src / MANIFEST_NAME
    model_info, src_weights = _source_manifest(src_manifest)
    check_shard_models(paths, (model_info or {}).get("sha256"), str(src_manifest))
    if cfg.score_weights is not None:
        weights = cfg.score_weights
    else:
        try:
            weights = ScoreWeights.from_dict(src_weights) if src_weights else ScoreWeights()
        except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise IndexFormatError(f"{src_manifest}: invalid score_weights {src_weights!r} ({e})") from None
    check_index_spec(cfg.index, count, dim)
    in_place = src.resolve() == (out / EMBEDDINGS_DIR).resolve()
    # the source shards may be this index's own (a cluster wrote them into out/embeddings);
    # an overwrite would delete them before they are read
    _check_out(out, cfg.overwrite, {"source shards": src} if cfg.overwrite or not in_place else {})
    final = out
    state = {"from_shards": str(src.resolve()), "n_shards": len(paths), "dtype": dtype}
    with build_target(final, cfg.overwrite, state) as out, engine_session(cfg):
        dst_dir = out / EMBEDDINGS_DIR
        dst_dir.mkdir(exist_ok=True)
        copied: list[Path] = []
        for p in paths:
            dst = dst_dir / p.name
            if not in_place:
                with atomic_path(dst) as tmp:
                    shutil.copyfile(p, tmp)
            copied.append(dst)
        if model_info and (src_manifest.parent / MODEL_DIR).is_dir() and src_manifest.parent.resolve() != out.resolve():
            _copy_model(src_manifest.parent / MODEL_DIR, out / MODEL_DIR, None)
        catalog_info = catalog_info or {"source": f"shards:{src.resolve()}", "path": None, "kind": "shards", "count": count}
        manifest = _finish(out, copied, dim, dtype, cfg, weights, model_info, catalog_info, progress, {})
    return BuildResult(final, manifest, 0, len(copied), [], {})


def _shards_layout(paths: list[Path]) -> tuple[int, str, int]:
    """(dimension, dtype, total rows) of externally written shards; each is checked to be a
    readable Parquet file with the contract's columns before anything is written."""
    dims: set[tuple[int, str]] = set()
    count = 0
    for p in paths:
        try:
            schema = pq.read_schema(p)
            count += pq.read_metadata(p).num_rows
        except (pa.ArrowInvalid, OSError) as e:
            raise IndexFormatError(f"{p}: not a readable Parquet shard ({e})") from None
        for name in ("object_id", "row", "embedding"):
            if name not in schema.names:
                raise IndexFormatError(f"{p}: shard lacks the {name!r} column")
        emb_type = schema.field("embedding").type
        # list<float> is what DuckDB and Polars write for an array column: accepted, its
        # length read from the first row (every row is checked when the vectors are assembled)
        listy = pa.types.is_list(emb_type) or pa.types.is_large_list(emb_type)
        if not (pa.types.is_fixed_size_list(emb_type) or listy) or emb_type.value_type not in (pa.float16(), pa.float32(), pa.float64()):
            raise IndexFormatError(f"{p}: 'embedding' must be fixed_size_list<float>[D] or list<float>, found {emb_type}")
        if listy:
            first = pq.ParquetFile(p).read_row_group(0, columns=["embedding"]).column("embedding")
            size = len(first[0].values) if len(first) and first[0].is_valid else 0
        else:
            size = emb_type.list_size
        dims.add((size, "float16" if emb_type.value_type == pa.float16() else "float32"))
        if len(dims) > 1:
            raise IndexFormatError(f"{p}: embeddings of {emb_type}, but {paths[0]} has {sorted(dims)[0]}; shards must agree")
    if count == 0:
        raise IndexFormatError(f"{paths[0].parent}: the shards hold no rows; nothing to index")
    (dim, dtype), = dims
    return dim, dtype, count


def _source_manifest(path: Path) -> tuple[dict[str, Any] | None, Any]:
    """(model info, score weights) of the manifest beside source shards, if there is one."""
    if not path.is_file():
        return None, None
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        d = {}
    d = d if isinstance(d, dict) else {}
    model_info = d.get("model") if isinstance(d.get("model"), dict) else None
    # the weights the shards' model is scored with: the manifest's, else its model's
    return model_info, d.get("score_weights") or (model_info or {}).get("score_weights")


def _copy_model(checkpoint: Path, dst: Path, embedder: Any) -> None:
    """Copy the checkpoint's weights and config next to the index (self-describing index)."""
    src = Path(getattr(embedder, "path", None) or checkpoint)
    src_dir = src if src.is_dir() else src.parent
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "checkpoint.json"):
        f = src_dir / name
        if f.is_file():
            with atomic_path(dst / name) as tmp:
                shutil.copyfile(f, tmp)


