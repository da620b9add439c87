"""An inverted-file (IVF) candidate index whose inverted lists stay on disk.

FAISS' own out-of-core mechanism (``faiss.contrib.ondisk``, ``OnDiskInvertedLists``): the
index is trained once on a sample; each part of the catalog is added to a copy of the trained,
empty index (independently: these are the parallel tasks of a distributed build); the parts'
inverted lists are then merged into one data file that the searcher memory-maps read-only.
The quantiser (and any PCA) is small and lives in RAM; the codes and ids of the lists are
file-backed pages that the kernel can drop, so a searcher's resident memory does not grow
with the catalog.

Files (in the index directory):

    faiss.index      the trained quantiser and the lists' offsets/sizes (FAISS "ilod")
    faiss.ivfdata    the inverted lists themselves (codes + int64 ids), memory-mapped

The index file records the data file's absolute path (FAISS opens it by that name). An
index directory that was moved or copied is opened with ``IO_FLAG_ONDISK_SAME_DIR``, which
makes FAISS look for the data file beside the index file instead.

Crash safety: :func:`merge_parts` writes both files under temporary names, fsyncs them and
renames the data file first, the index file second; the caller's manifest comes last. A
directory without the manifest naming both files (with their sizes and digests) is never
opened as an index.

Building in one process (what ``IndexSpec(ondisk=True)`` does) and building with parts
filled elsewhere give the same index: parts are added with their global ids, and merging
appends each part's lists in part order, which is the order a sequential add fills them.
"""

from __future__ import annotations

import mmap
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import TMP_SUFFIX, is_no_space, sha256_file
from ...errors import ConfigError, IndexFormatError, NoSpaceError
from ...progress import NULL_PROGRESS, Progress
from .factory import check_factory, faiss_message
from .params import shortlist_vectors
from .record import build_record
from .spec import IndexSpec, resolve_factory
from .training import set_kmeans_seed, training_sample

__all__ = [
    "DATA_SUFFIX",
    "data_file_for",
    "train_ivf",
    "save_trained",
    "fill_part",
    "merge_parts",
    "open_ondisk",
    "build_ondisk_index",
    "part_ranges",
    "parts_dir_for",
    "is_parts_dir",
    "lists_mapping",
    "advise_lists",
    "set_prefetch",
]

DATA_SUFFIX = ".ivfdata"
PARTS_MARK = ".parts."
# rows per part in a one-process build: each part is one FAISS add into a copy of the
# trained index (its codes held in RAM until written), so this bounds the build's memory
PART_ROWS = 1 << 20
# searches fault the lists in from the scanning thread (see set_prefetch)
PREFETCH_THREADS = 0


def data_file_for(index_file: str | Path) -> Path:
    """The inverted-list data file that belongs to ``index_file`` (``faiss.index`` →
    ``faiss.ivfdata``)."""
    p = Path(index_file)
    return p.with_name(p.stem + DATA_SUFFIX)


def _ivf(index: Any) -> Any:
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        raise ConfigError(
            f"on-disk inverted lists need an inverted-file (IVF) index, got {type(faiss.downcast_index(index)).__name__}"
        ).resolved_by("index_type")
    return ivf


def train_ivf(sample: np.ndarray, *, factory: str, metric: str = "l2", seed: int = 0) -> Any:
    """A trained, empty FAISS index for ``factory`` (which must contain an IVF stage),
    trained on ``sample`` (n, D); vectors are normalised first for ``metric="cosine"``."""
    import faiss

    index = check_factory(factory, sample.shape[1], metric)
    _ivf(index)
    xt = shortlist_vectors(sample, metric)
    faiss.seed_global_rng = seed  # type: ignore[attr-defined]
    set_kmeans_seed(index, seed)
    try:
        index.train(xt)
    except RuntimeError as e:
        raise ConfigError(f"{factory}: training on {len(xt):,} vectors failed: {faiss_message(e)}") from None
    return index


def _write_index(index: Any, path: Path) -> None:
    """Write ``index`` to ``path`` under a temp name, fsync, rename."""
    import faiss

    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        try:
            faiss.write_index(index, str(tmp))
        except RuntimeError as e:
            if "No space left on device" in str(e):
                raise NoSpaceError(path) from None
            raise
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """FAISS' on-disk lists printf progress lines ("resizing …", "updating ondisk filename
    …") to the C stdout; send them to stderr so a command's stdout (JSON) stays clean."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        _libc_flush()
        os.dup2(saved, 1)
        os.close(saved)


def _libc_flush() -> None:
    import ctypes

    try:
        ctypes.CDLL(None).fflush(None)  # the C library's buffer, written while fd 1 was stderr
    except (OSError, AttributeError):
        pass


def save_trained(index: Any, path: str | Path) -> Path:
    """Write a trained, empty index (atomically): the input of :func:`fill_part` and
    :func:`merge_parts`, shipped to every worker of a distributed build."""
    import faiss

    if index.ntotal:
        index = faiss.clone_index(index)
        index.reset()
    path = Path(path)
    _write_index(index, path)
    return path


def _read_plain(path: Path) -> Any:
    import faiss

    if not path.is_file():
        raise IndexFormatError(f"{path}: FAISS index file missing")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as e:
        raise IndexFormatError(
            f"{path}: not a readable FAISS index ({str(e).strip().splitlines()[-1]})"
        ) from None


def fill_part(
    trained_path: str | Path,
    vectors: np.ndarray,
    ids: np.ndarray,
    part_path: str | Path,
    *,
    metric: str = "l2",
    chunk: int = 65_536,
) -> Path:
    """Add ``vectors`` (n, D; any float dtype, a memmap works) with ``ids`` (their global
    positions, int64) to a copy of the trained index and write it to ``part_path``
    (atomically). Independent of every other part: safe to run in parallel tasks."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if len(ids) != len(vectors):
        raise IndexFormatError(f"{part_path}: {len(vectors)} vectors but {len(ids)} ids")
    index = _read_plain(Path(trained_path))
    if index.ntotal:
        raise IndexFormatError(f"{trained_path}: the trained index is not empty ({index.ntotal} vectors)")
    for lo in range(0, len(ids), chunk):
        index.add_with_ids(shortlist_vectors(vectors[lo : lo + chunk], metric), ids[lo : lo + chunk])
    part_path = Path(part_path)
    _write_index(index, part_path)
    return part_path


def merge_parts(
    trained_path: str | Path, part_paths: Sequence[str | Path], out: str | Path, *, nprobe: int | None = None
) -> dict[str, Any]:
    """Merge the parts' inverted lists into ``out`` (an index file, e.g. ``faiss.index``)
    plus its data file (``faiss.ivfdata``), in part order. Reads the parts memory-mapped, so
    the catalog never has to fit in RAM. Returns what the manifest records (``file``,
    ``ntotal``, and ``ondisk``: the data file's name, bytes and sha256).

    Written crash-safe: the data file under a temp name (FAISS writes it in place), both
    files fsynced, renamed data first, index second; nothing names them complete until the
    caller writes its manifest."""
    import faiss

    out = Path(out)
    data = data_file_for(out)
    trained = _read_plain(Path(trained_path))
    if trained.ntotal:
        raise IndexFormatError(f"{trained_path}: the trained index is not empty ({trained.ntotal} vectors)")
    ivf = _ivf(trained)
    parts: list[Any] = []
    lists = faiss.InvertedListsPtrVector()
    for p in part_paths:
        p = Path(p)
        if not p.is_file():
            raise IndexFormatError(f"{p}: index part missing")
        try:
            part = faiss.read_index(str(p), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError as e:
            raise IndexFormatError(
                f"{p}: not a readable FAISS index part ({str(e).strip().splitlines()[-1]})"
            ) from None
        pivf = _ivf(part)
        if pivf.nlist != ivf.nlist or pivf.code_size != ivf.code_size:
            raise IndexFormatError(
                f"{p}: a part of another index ({pivf.nlist} lists of {pivf.code_size}-byte codes, the trained one has {ivf.nlist} of {ivf.code_size})"
            )
        parts.append(part)  # keeps the part's memory map alive until the merge is done
        lists.push_back(pivf.invlists)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_data = data.with_name(f".{data.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        invlists = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(tmp_data))
        try:
            with _stdout_to_stderr():
                ntotal = invlists.merge_from_multiple(lists.data(), lists.size(), False, False)
        except RuntimeError as e:
            if "No space left" in str(e) or "ftruncate" in str(e):
                raise NoSpaceError(data) from None
            raise
        # FAISS opens the data file by the name the index file records: the final one
        invlists.filename = str(data.resolve())
        trained.ntotal = ivf.ntotal = ntotal
        ivf.replace_invlists(invlists, True)
        invlists.this.disown()
        if nprobe is not None:
            ivf.nprobe = int(nprobe)
        _fsync(tmp_data)
        os.replace(tmp_data, data)
        _write_index(trained, out)
    except OSError as e:
        if is_no_space(e):
            raise NoSpaceError(data) from None
        raise
    finally:
        tmp_data.unlink(missing_ok=True)
        del parts
    return {
        "file": out.name,
        "ntotal": int(ntotal),
        "ondisk": {
            "file": data.name,
            "bytes": data.stat().st_size,
            "sha256": sha256_file(data),
            "path": str(data.resolve()),
        },
    }


def open_ondisk(path: str | Path, info: dict[str, Any] | None = None) -> Any:
    """Open an index written by :func:`merge_parts`: the quantiser in RAM, the inverted
    lists memory-mapped read-only from the data file beside ``path``."""
    import faiss

    path = Path(path)
    data = data_file_for(path) if not info or not info.get("file") else path.with_name(info["file"])
    if not path.is_file():
        raise IndexFormatError(f"{path}: FAISS index file missing")
    if not data.is_file():
        raise IndexFormatError(f"{data}: the on-disk inverted lists of {path.name} are missing")
    flags = faiss.IO_FLAG_READ_ONLY
    recorded = (info or {}).get("path")
    if not recorded or Path(recorded) != data.resolve():
        # moved or copied since the build: look beside the index file (FAISS prints a line
        # saying so; only a relocated index pays it)
        flags |= faiss.IO_FLAG_ONDISK_SAME_DIR
    try:
        with _stdout_to_stderr():
            index = faiss.read_index(str(path), flags)
    except RuntimeError as e:
        raise IndexFormatError(
            f"{path}: not a readable on-disk FAISS index ({str(e).strip().splitlines()[-1]})"
        ) from None
    set_prefetch(index, PREFETCH_THREADS)
    # a probe reads a few scattered lists; the kernel's default read-around of a fault (up to
    # read_ahead_kb, 8 MB here) made cold queries 2× slower at 1M (benchmarks/README.md)
    advise_lists(index, mmap.MADV_RANDOM)
    return index


def set_prefetch(index: Any, threads: int) -> None:
    """Threads FAISS starts on every search to fault the probed lists in ahead of the scan.

    FAISS' default (32) creates them per query: 2.7 ms of thread start-up per query measured
    here, 10× the search itself when the lists are page-cached. Prefetching pays only when
    the lists are cold (parallel reads); see benchmarks/README.md (scale_ondisk)."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    lists = faiss.downcast_InvertedLists(ivf.invlists) if ivf is not None else None
    if isinstance(lists, faiss.OnDiskInvertedLists):
        lists.prefetch_nthread = int(threads)


def parts_dir_for(index_file: str | Path) -> Path:
    """The temporary folder of a one-process build's parts, beside the index file; a killed
    build leaves it, and the next build into the directory removes it."""
    p = Path(index_file)
    return p.with_name(f".{p.name}{PARTS_MARK}{os.getpid()}{TMP_SUFFIX}")


def is_parts_dir(name: str) -> bool:
    return name.startswith(".") and PARTS_MARK in name and name.endswith(TMP_SUFFIX)


def lists_mapping(index: Any) -> tuple[int, int] | None:
    """(address, bytes) of the memory map holding an on-disk index's inverted lists, or None
    for lists in RAM: for ``madvise`` (benchmarks evict it to measure cold queries)."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    lists = faiss.downcast_InvertedLists(ivf.invlists) if ivf is not None else None
    if not isinstance(lists, faiss.OnDiskInvertedLists) or lists.ptr is None:
        return None
    return int(lists.ptr), int(lists.totsize)


def advise_lists(index: Any, advice: int) -> bool:
    """``madvise(advice)`` over the inverted lists' memory map (e.g. ``mmap.MADV_RANDOM``,
    ``mmap.MADV_DONTNEED``); False when the index has no on-disk lists or the call failed."""
    import ctypes

    where = lists_mapping(index)
    if where is None or where[1] == 0:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    return libc.madvise(ctypes.c_void_p(where[0]), ctypes.c_size_t(where[1]), int(advice)) == 0


def part_ranges(n: int, rows: int = PART_ROWS) -> list[tuple[int, int]]:
    """Consecutive position ranges [lo, hi) covering ``n`` rows, ``rows`` at a time."""
    return [(lo, min(n, lo + rows)) for lo in range(0, n, max(1, rows))]


# fills the parts: (trained index file, position ranges, folder for the parts) → part files
# in range order. The default runs them one after another in this process; a distributed
# build passes one that runs them as parallel tasks.
PartFiller = Callable[[Path, list[tuple[int, int]], Path], list[Path]]


def build_ondisk_index(
    vectors: np.ndarray,
    spec: IndexSpec,
    out: str | Path,
    progress: Progress = NULL_PROGRESS,
    fill_parts: PartFiller | None = None,
    part_rows: int | None = None,
) -> dict[str, Any]:
    """Train on a sample of ``vectors`` (N, D; a memmap works), fill parts of
    ``part_rows`` rows, merge them into ``out`` + its data file. The same training sample
    and seed as the in-RAM build (:func:`~.build.build_faiss_index`), so both give the
    same lists. Returns the manifest's ``faiss`` entry (without the index file's own bytes
    and sha256, which the caller adds like for any FAISS file)."""
    out = Path(out)
    n, dim = vectors.shape
    factory, why = resolve_factory(spec, n, dim)
    t0 = time.perf_counter()
    progress.log(f"candidate index: {factory}, inverted lists on disk ({why})")
    with progress.task("training index", total=None, unit="vec"):
        xt = training_sample(vectors, spec, factory)
        index = train_ivf(xt, factory=factory, metric=spec.metric, seed=spec.seed)
        del xt
    train_s = time.perf_counter() - t0
    ranges = part_ranges(n, part_rows or PART_ROWS)
    # parts and the trained file go beside the output (same file system: no copy of GBs
    # through /tmp), in a folder whose name marks it as temporary
    work_dir = parts_dir_for(out)
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    try:
        trained = save_trained(index, work_dir / "trained.index")
        if fill_parts is None:

            def fill_parts(trained: Path, ranges: list[tuple[int, int]], folder: Path) -> list[Path]:
                paths = []
                with progress.task("adding to index", total=n, unit="vec") as t:
                    for i, (lo, hi) in enumerate(ranges):
                        ids = np.arange(lo, hi, dtype=np.int64)
                        paths.append(
                            fill_part(
                                trained,
                                vectors[lo:hi],
                                ids,
                                folder / f"part-{i:05d}.index",
                                metric=spec.metric,
                                chunk=spec.add_chunk,
                            )
                        )
                        t.advance(hi - lo)
                return paths

        parts = fill_parts(trained, ranges, work_dir)
        t1 = time.perf_counter()
        info = merge_parts(trained, parts, out, nprobe=spec.nprobe)
        merge_s = time.perf_counter() - t1
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    build_s = time.perf_counter() - t0
    if info["ntotal"] != n:
        raise IndexFormatError(f"{out}: the merged parts hold {info['ntotal']} vectors, expected {n}")
    return build_record(
        out,
        factory,
        spec,
        why,
        build_s,
        train_s,
        int(info["ntotal"]),
        merge_s=merge_s,
        ondisk=info["ondisk"],
        parts=len(ranges),
    )
