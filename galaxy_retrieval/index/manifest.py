"""``manifest.json``: what an index directory holds, and the proof that it is whole.

It is written last, atomically, once every shard, the vector file and the FAISS index are on
disk; a directory without it (or with ``"complete": false``) is a build in progress and is
refused by :func:`read_manifest`. Opening an index checks every file it lists against the
recorded sizes and sha256 digests, so a tampered or truncated shard is caught.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json, sha256_file
from ..errors import GalaxyRetrievalError, IndexFormatError
from ..score import ScoreWeights
from .layout import MANIFEST_NAME, STATE_FILE
from .vectors import can_append, data_bytes, verify_vectors

__all__ = ["MANIFEST_NAME", "FORMAT", "FORMAT_VERSION", "ShardEntry", "Manifest", "read_manifest"]

FORMAT = "galaxy-retrieval-index"
# 2: a manifest may name a tombstone list (deleted rows) and per-version vector/FAISS files;
# a reader of version 1 would ignore the tombstones and answer with deleted objects.
# 3: the vectors entry may be segmented (an add appends to the file; vectors.py): a reader of
# version 2 would read the .npy header's shape, which an interrupted add leaves too large.
FORMAT_VERSION = 3
# Above this many bytes, opening checks sizes only unless a full check is asked for:
# hashing a 100M-object survey's shards on every open would take minutes.
FULL_VERIFY_LIMIT = 2 << 30


@dataclass(frozen=True)
class ShardEntry:
    file: str  # relative to the index directory
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    dim: int
    dtype: str
    count: int
    shards: tuple[ShardEntry, ...]
    score_weights: dict[str, float]
    model: dict[str, Any] | None
    catalog: dict[str, Any]
    faiss: dict[str, Any] | None = None
    vectors: dict[str, Any] | None = None
    created: str = ""
    package_version: str = ""
    complete: bool = True
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    # incremented by every write (delete, compact, reindex); readers keep the version they opened
    version: int = 1
    updated: str = ""
    # the deleted rows of this version: {"file", "count", "bytes", "sha256"} (see tombstones.py)
    tombstones: dict[str, Any] | None = None
    # the model copy a query reads (weights, and checkpoint.json: normalisation, framing):
    # {"model/model.safetensors": {"bytes", "sha256"}, …}; None in indexes built before it
    model_files: dict[str, dict[str, Any]] | None = None

    @property
    def vectors_file(self) -> str:
        return (self.vectors or {}).get("file") or "vectors.npy"

    @property
    def faiss_file(self) -> str:
        return (self.faiss or {}).get("file") or "faiss.index"

    @property
    def live_count(self) -> int:
        return self.count - int((self.tombstones or {}).get("count", 0))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shards"] = [asdict(s) for s in self.shards]
        # stable, human-friendly key order: what it is first
        order = [
            "format",
            "format_version",
            "version",
            "complete",
            "created",
            "updated",
            "package_version",
            "count",
            "dim",
            "dtype",
        ]
        return {**{k: d[k] for k in order}, **{k: v for k, v in d.items() if k not in order}}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "manifest") -> Manifest:
        try:
            shards = tuple(ShardEntry(**s) for s in d["shards"])
            kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d and k != "shards"}
            m = cls(shards=shards, **kw)
        except (KeyError, TypeError) as e:
            raise IndexFormatError(f"{where}: malformed manifest ({e})") from None
        try:  # the searcher reranks with these: a bad value must fail here, not in a query
            ScoreWeights.from_dict(m.score_weights)
        except (KeyError, TypeError, ValueError, AttributeError, GalaxyRetrievalError) as e:
            raise IndexFormatError(
                f"{where}: invalid score_weights {m.score_weights!r} (need numbers cos, l2, l3; {e})"
            ) from None
        return m

    def write(self, directory: str | Path) -> Path:
        return atomic_write_json(Path(directory) / MANIFEST_NAME, self.to_dict())

    def verify(self, directory: str | Path, full: bool | None = None) -> None:
        """Check every listed file. ``full=None``: hash when the index is small enough."""
        root = Path(directory)
        files: list[tuple[str, int, str | None]] = [(s.file, s.bytes, s.sha256) for s in self.shards]
        segmented = can_append(self.vectors)
        ondisk = (self.faiss or {}).get("ondisk")  # the inverted lists of an on-disk IVF index
        for part in (
            (self.faiss, ondisk, self.tombstones)
            if segmented
            else (self.vectors, self.faiss, ondisk, self.tombstones)
        ):
            if part and part.get("file"):
                files.append((part["file"], part.get("bytes", -1), part.get("sha256")))
        for rel, f in (self.model_files or {}).items():
            files.append((rel, int(f.get("bytes", -1)), f.get("sha256")))
        total = sum(b for _, b, _ in files if b > 0) + (
            data_bytes(self.vectors, self.count, self.dim) if segmented else 0
        )  # type: ignore[arg-type]
        do_hash = total <= FULL_VERIFY_LIMIT if full is None else full
        for rel, nbytes, digest in files:
            p = root / rel
            if not p.is_file():
                raise IndexFormatError(f"{p}: listed in {root / MANIFEST_NAME} but missing")
            size = p.stat().st_size
            if nbytes >= 0 and size != nbytes:
                raise IndexFormatError(
                    f"{p}: {size} bytes, but the manifest says {nbytes} (truncated or replaced?)"
                )
            if do_hash and digest and sha256_file(p) != digest:
                raise IndexFormatError(
                    f"{p}: sha256 does not match the manifest (the file was changed after the build)"
                )
        if segmented:  # appended to by adds: its size and digests are per segment (vectors.py)
            verify_vectors(root, self.vectors, self.count, self.dim, do_hash)  # type: ignore[arg-type]
        if sum(s.rows for s in self.shards) != self.count:
            raise IndexFormatError(
                f"{root / MANIFEST_NAME}: shard rows add up to {sum(s.rows for s in self.shards)}, not {self.count}"
            )


def read_manifest(directory: str | Path, require_complete: bool = True) -> Manifest:
    root = Path(directory)
    if not root.exists():
        raise IndexFormatError(f"{root}: no such index directory")
    if not root.is_dir():
        raise IndexFormatError(f"{root}: not a directory (an index is a directory with a manifest.json)")
    p = root / MANIFEST_NAME
    if not p.is_file():
        hint = (
            " — a build was interrupted; rerun gr build-index to finish it"
            if (root / STATE_FILE).exists()
            else ""
        )
        raise IndexFormatError(f"{root}: no manifest.json, not a complete index{hint}")
    try:
        d = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexFormatError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise IndexFormatError(f"{p}: not a galaxy-retrieval index manifest")
    if d.get("format_version", 0) > FORMAT_VERSION:
        raise IndexFormatError(
            f"{p}: format version {d.get('format_version')} is newer than this package reads ({FORMAT_VERSION})"
        )
    m = Manifest.from_dict(d, where=str(p))
    if require_complete and not m.complete:
        raise IndexFormatError(f"{root}: the index build did not finish (manifest says complete: false)")
    return m
