"""The index's vector file: one ``.npy`` that adds extend in place instead of copying.

An add used to write the next version's vectors as a new file: the old rows copied, then the
new ones. At 1M × 2048 float32 that is 8 GB written for every add, however small. Instead the
new rows are appended to the same file, and the manifest says how much of it a version uses:

    "vectors": {"file": "vectors.npy", "dtype": "float16", "shape": [N, D], "offset": 128,
                "segments": [{"rows": 900000, "sha256": "…"}, {"rows": 1000, "sha256": "…"}]}

A version's rows are the ``N × D`` values at ``offset`` (the end of the ``.npy`` header); each
segment's digest covers the data bytes one write appended, so an add hashes only what it
wrote. Readers map exactly those bytes and never read the header's shape, so

* a reader of version n keeps working while an add appends past its rows (it never maps them);
* a kill -9 mid-append leaves bytes after version n's rows that no manifest names; the next
  writer (under the write lock) truncates them (:func:`repair_vectors`), and rerun appends again;
* the header's shape is rewritten to the new row count before the new manifest (same length:
  numpy leaves room for the first axis to grow), so ``np.load`` of the file sees the rows of the
  newest version, or of an add in flight until the next writer repairs it.

Compaction renumbers rows and so still writes a new file. Entries without ``segments`` (indexes
written before this format) are whole-file entries (``bytes``, ``sha256``), read with
``np.load``; the first add onto one rewrites it in this form.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, reserve_space
from ..errors import IndexFormatError, NoSpaceError

__all__ = [
    "vectors_entry",
    "open_vectors",
    "verify_vectors",
    "append_rows",
    "extend_vectors",
    "repair_vectors",
    "can_append",
    "data_bytes",
]

_HASH_CHUNK = 1 << 24


def _header(path: Path) -> tuple[tuple[int, ...], np.dtype, int, tuple[int, int]]:
    """(shape, dtype, data offset, format version) of the ``.npy`` at ``path``."""
    try:
        with open(path, "rb") as fp:
            version = np.lib.format.read_magic(fp)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read(fp)
            offset = fp.tell()
    except (OSError, ValueError) as e:
        raise IndexFormatError(f"{path}: not a readable vector file ({e})") from None
    if fortran:
        raise IndexFormatError(f"{path}: vectors stored in Fortran order")
    return tuple(shape), dtype, offset, version


def _header_bytes(shape: tuple[int, int], dtype: np.dtype, version: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    d = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": tuple(int(v) for v in shape),
    }
    (np.lib.format.write_array_header_1_0 if version == (1, 0) else np.lib.format.write_array_header_2_0)(
        buf, d
    )
    return buf.getvalue()


def _sha256_range(path: Path, start: int, length: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        left = length
        while left > 0:
            b = f.read(min(_HASH_CHUNK, left))
            if not b:
                break
            h.update(b)
            left -= len(b)
    return h.hexdigest()


def data_bytes(entry: dict[str, Any], count: int, dim: int) -> int:
    return int(count) * int(dim) * np.dtype(entry.get("dtype", "float32")).itemsize


def vectors_entry(path: Path, dtype: str, count: int, dim: int) -> dict[str, Any]:
    """The manifest entry of a freshly written ``.npy`` of ``count × dim`` rows: one segment."""
    shape, _, offset, _ = _header(path)
    if shape != (count, dim):
        raise IndexFormatError(f"{path}: shape {shape}, expected {(count, dim)}")
    n = count * dim * np.dtype(dtype).itemsize
    return {
        "file": path.name,
        "dtype": dtype,
        "shape": [count, dim],
        "offset": offset,
        "segments": [{"rows": count, "sha256": _sha256_range(path, offset, n)}],
    }


def can_append(entry: dict[str, Any] | None) -> bool:
    """Whether ``entry`` is segmented (format 3), so adds may append to its file."""
    return entry is not None and "segments" in entry and "offset" in entry


def open_vectors(root: Path, entry: dict[str, Any] | None, count: int, dim: int, file: str) -> np.ndarray:
    """The version's ``count × dim`` rows, memory-mapped read-only."""
    path = root / file
    if entry is None or not can_append(entry):
        try:
            v = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise IndexFormatError(f"{path}: not a readable vector file ({e})") from None
        if v.shape != (count, dim):
            raise IndexFormatError(f"{path}: shape {v.shape}, manifest says {(count, dim)}")
        return v
    need = int(entry["offset"]) + data_bytes(entry, count, dim)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise IndexFormatError(f"{path}: not a readable vector file ({e.strerror})") from None
    if size < need:
        raise IndexFormatError(f"{path}: {size} bytes, the manifest's {count} rows need {need} (truncated?)")
    return np.memmap(
        path, dtype=np.dtype(entry["dtype"]), mode="r", offset=int(entry["offset"]), shape=(count, dim)
    )


def verify_vectors(root: Path, entry: dict[str, Any], count: int, dim: int, do_hash: bool) -> None:
    """Size (and with ``do_hash`` each segment's sha256) of a segmented vector file."""
    path = root / entry["file"]
    if not path.is_file():
        raise IndexFormatError(f"{path}: listed in the manifest but missing")
    rows = sum(int(s["rows"]) for s in entry["segments"])
    if rows != count or list(entry.get("shape", [])) != [count, dim]:
        raise IndexFormatError(
            f"{path}: the manifest's vector segments hold {rows} rows of shape {entry.get('shape')}, not {count} × {dim}"
        )
    open_vectors(root, entry, count, dim, entry["file"])  # the size check
    # the digests cover the rows, not the header that np.load (and any other reader) trusts:
    # a dtype or shape changed there must not pass
    shape, dtype, offset, _ = _header(path)
    if (
        dtype != np.dtype(entry["dtype"])
        or offset != int(entry["offset"])
        or len(shape) != 2
        or shape[1] != dim
        or shape[0] < count
    ):
        raise IndexFormatError(
            f"{path}: its header says {dtype} {tuple(shape)} at byte {offset}, the manifest {entry['dtype']} ({count}, {dim}) at byte {entry['offset']} (changed after it was written)"
        )
    if do_hash:
        row_bytes = dim * np.dtype(entry["dtype"]).itemsize
        at = int(entry["offset"])
        for s in entry["segments"]:
            n = int(s["rows"]) * row_bytes
            if _sha256_range(path, at, n) != s["sha256"]:
                raise IndexFormatError(
                    f"{path}: sha256 of rows {(at - int(entry['offset'])) // row_bytes}–{(at - int(entry['offset']) + n) // row_bytes - 1} does not match the manifest (changed after it was written)"
                )
            at += n


def repair_vectors(root: Path, entry: dict[str, Any] | None, count: int, dim: int) -> None:
    """Called by a writer holding the lock: drop bytes an interrupted add appended past the
    manifest's rows, and set the header's shape back to them. Readers never map past their
    version's rows, and no version has more rows in this file than the current one."""
    if entry is None or not can_append(entry):
        return
    path = root / entry["file"]
    end = int(entry["offset"]) + data_bytes(entry, count, dim)
    if not path.is_file() or path.stat().st_size < end:
        return  # missing or short: opening the index reports it
    if path.stat().st_size > end:
        os.truncate(path, end)
    _set_shape(path, (count, dim))


def _set_shape(path: Path, shape: tuple[int, int]) -> None:
    old, dtype, offset, version = _header(path)
    if old == shape:
        return
    head = _header_bytes(shape, dtype, version)
    if len(head) != offset:  # numpy leaves room for 21 digits; this cannot happen below 10²¹ rows
        raise IndexFormatError(f"{path}: the header for shape {shape} does not fit in place")
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, head, 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def append_rows(
    root: Path, entry: dict[str, Any], count: int, dim: int, blocks: Sequence[np.ndarray]
) -> dict[str, Any]:
    """Append ``blocks`` (each ``(m, dim)``) after the ``count`` rows of ``entry``, fsync, set the
    header's shape; returns the next version's entry (one new segment). The caller holds the
    write lock and has repaired the file (:func:`repair_vectors`)."""
    path = root / entry["file"]
    dtype = np.dtype(entry["dtype"])
    end = int(entry["offset"]) + data_bytes(entry, count, dim)
    h = hashlib.sha256()
    added = 0
    fd = os.open(path, os.O_WRONLY)
    try:
        if os.fstat(fd).st_size != end:
            os.ftruncate(fd, end)
        at = end
        for b in blocks:
            if b.ndim != 2 or b.shape[1] != dim:
                raise IndexFormatError(
                    f"{path}: new embeddings of shape {b.shape}, the index holds {dim}-dimensional vectors"
                )
            data = np.ascontiguousarray(b, dtype=dtype).tobytes()
            view = memoryview(data)
            while view:  # pwrite may write less than asked
                try:
                    n = os.pwrite(fd, view, at)
                except OSError as e:  # the writer's rollback truncates what was appended
                    if e.errno == errno.ENOSPC:
                        raise NoSpaceError(path) from None
                    raise
                view = view[n:]
                at += n
            h.update(data)
            added += len(b)
        os.fsync(fd)
    finally:
        os.close(fd)
    new_count = count + added
    _set_shape(path, (new_count, dim))
    return {
        **entry,
        "shape": [new_count, dim],
        "segments": [*entry["segments"], {"rows": added, "sha256": h.hexdigest()}],
    }


def extend_vectors(old: np.ndarray, extra: Sequence[np.ndarray], out: Path, dim: int, dtype: str) -> None:
    """A new vector file at ``out``: the rows of ``old`` (copied in blocks), then ``extra``'s."""
    n = len(old) + sum(len(e) for e in extra)
    with atomic_path(out) as tmp:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=(n, dim))
        reserve_space(tmp, tmp.stat().st_size)  # a sparse memmap on a full disk is a SIGBUS
        step = 65_536
        for lo in range(0, len(old), step):
            hi = min(len(old), lo + step)
            mm[lo:hi] = old[lo:hi]
        pos = len(old)
        for e in extra:
            mm[pos : pos + len(e)] = e
            pos += len(e)
        mm.flush()
        del mm
