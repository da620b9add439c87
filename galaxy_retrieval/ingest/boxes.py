"""The framing-box store: each image's ``auto`` box, measured once and kept on disk.

Measuring the central source costs 2–10 ms an image (``sep`` plus a Petrosian radius);
hashing the file costs ~0.03 ms. So the box of an image is looked up by the hash of the
file's bytes (BLAKE2b, 16 bytes) and the framing setting it was measured under, and
measured only when absent. ``gr train`` then ``gr evaluate`` then ``gr build-index`` on one
folder measure each image once.

Layout: ``<dir>/<setting>/seg-<time>-<pid>.parquet``, one folder per framing setting
(:func:`setting_key`: every :class:`~galaxy_retrieval.framing.Framing` field, the
measurement size and the algorithm version), each segment a Parquet table of ``key``
(binary 16), ``height``, ``width``, ``top``, ``left``, ``side``, ``found``. Writers only add
segments, each written atomically (:mod:`galaxy_retrieval.atomic`), so two processes filling
one store never lose each other's boxes; a store of many segments is merged into one on open.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..framing import Box, Framing

__all__ = ["BoxStore", "setting_key", "file_key", "BOX_ALGORITHM"]

#: bump when the measurement changes (framing.py): boxes of older code are then measured again
#: (2: the in-memory path bins by framing.measure_scale, powers of two down to MEASURE_SIDE)
BOX_ALGORITHM = 2
_MERGE_AT = 16


def setting_key(framing: Framing, measure_side: int) -> str:
    """A short stable name of everything a box depends on besides the image."""
    d = {"framing": framing.to_dict(), "measure_side": int(measure_side), "algorithm": BOX_ALGORITHM}
    text = json.dumps(d, sort_keys=True)
    return f"{framing.spec.replace(':', '-')}-{hashlib.blake2b(text.encode(), digest_size=6).hexdigest()}"


def file_key(path: str | Path) -> bytes | None:
    """BLAKE2b-128 of the file's bytes (None when it cannot be read: the decoder reports why)."""
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16)).digest()
    except OSError:
        return None


class BoxStore:
    """The boxes of one framing setting under ``root`` (a directory; created on first write)."""

    def __init__(self, root: str | Path, framing: Framing, measure_side: int) -> None:
        self.framing = framing
        self.dir = Path(root) / setting_key(framing, measure_side)
        self._boxes: dict[bytes, tuple[int, int, Box]] = {}
        self._new: dict[bytes, tuple[int, int, Box]] = {}
        self._load()

    def _segments(self) -> list[Path]:
        return sorted(self.dir.glob("seg-*.parquet")) if self.dir.is_dir() else []

    def _load(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        segs = self._segments()
        for p in segs:
            try:
                t = pq.read_table(p)
            except (FileNotFoundError, pa.ArrowInvalid, OSError):
                continue  # merged away by another process meanwhile, or damaged: measured again
            c = {
                n: t.column(n).to_pylist() for n in ("key", "height", "width", "top", "left", "side", "found")
            }
            for k, h, w, top, left, side, found in zip(*c.values()):
                self._boxes[k] = (h, w, Box(top, left, side, bool(found)))
        if len(segs) >= _MERGE_AT:
            self._write(self._boxes, segs)

    def __len__(self) -> int:
        return len(self._boxes)

    def get(self, key: bytes | None, shape: tuple[int, int] | None = None) -> Box | None:
        """The stored box of the file with this content key (and full (h, w), when known)."""
        if key is None:
            return None
        got = self._boxes.get(key)
        if got is None or (shape is not None and got[:2] != tuple(shape)):
            return None
        return got[2]

    def put(self, key: bytes | None, shape: tuple[int, int], box: Box) -> None:
        if key is None or key in self._boxes:
            return
        self._boxes[key] = self._new[key] = (int(shape[0]), int(shape[1]), box)

    def flush(self) -> int:
        """Write the boxes added since the last flush as one new segment; returns how many."""
        n = len(self._new)
        if n:
            self._write(self._new, [])
            self._new = {}
        return n

    def _write(self, boxes: dict[bytes, tuple[int, int, Box]], replaces: list[Path]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        keys = list(boxes)
        vals = [boxes[k] for k in keys]
        t = pa.table(
            {
                "key": pa.array(keys, pa.binary(16)),
                "height": pa.array(np.array([v[0] for v in vals], np.int32)),
                "width": pa.array(np.array([v[1] for v in vals], np.int32)),
                "top": pa.array(np.array([v[2].top for v in vals], np.int32)),
                "left": pa.array(np.array([v[2].left for v in vals], np.int32)),
                "side": pa.array(np.array([v[2].side for v in vals], np.int32)),
                "found": pa.array([v[2].found for v in vals], pa.bool_()),
            }
        )
        t = t.replace_schema_metadata({"framing": json.dumps(self.framing.to_dict(), sort_keys=True)})
        target = self.dir / f"seg-{time.time_ns():020d}-{os.getpid()}.parquet"
        try:
            with atomic_path(target) as tmp:
                pq.write_table(t, tmp)
        except OSError:
            return  # a read-only or full cache only costs measuring again next time
        for p in replaces:  # merged into the new segment
            if p != target:
                p.unlink(missing_ok=True)
