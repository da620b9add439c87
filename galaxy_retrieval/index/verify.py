"""`gr verify`: check every file of an index directory against its manifest.

Opening an index hashes its files only below 2 GiB (sizes above); this always hashes all of
them — shards, vectors (and their header against the manifest), FAISS files, tombstones and
the model copy (weights and checkpoint.json) — and checks that every shard was embedded by
the manifest's model, so an index copied from elsewhere can be trusted before it is served.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..atomic import sha256_file
from ..errors import IndexFormatError
from .layout import MANIFEST_NAME, MODEL_DIR
from .manifest import read_manifest
from .shards import check_shard_models
from .vectors import open_vectors

__all__ = ["VerifyReport", "verify_index"]


@dataclass(frozen=True)
class VerifyReport:
    path: Path
    count: int  # objects
    files: int  # files hashed
    bytes: int


def verify_index(path: str | Path) -> VerifyReport:
    """Hash every file the manifest lists and compare; IndexFormatError names the first bad one."""
    root = Path(path)
    m = read_manifest(root)
    m.verify(root, full=True)
    where = str(root / MANIFEST_NAME)
    model_sha = (m.model or {}).get("sha256")
    check_shard_models([root / s.file for s in m.shards], model_sha, where)
    files = [root / s.file for s in m.shards] + [
        root / part["file"]
        for part in (m.vectors, m.faiss, (m.faiss or {}).get("ondisk"), m.tombstones)
        if part and part.get("file")
    ]
    files += [root / rel for rel in (m.model_files or {})]  # hashed by m.verify above
    weights = root / MODEL_DIR / "model.safetensors"
    if m.model_files is None and model_sha and weights.is_file():  # an index built before model_files
        if sha256_file(weights) != model_sha:
            raise IndexFormatError(
                f"{weights}: sha256 does not match the model the manifest names ({model_sha[:12]}…)"
            )
        files.append(weights)
    open_vectors(root, m.vectors, m.count, m.dim, m.vectors_file)  # readable, the manifest's shape
    return VerifyReport(root, m.count, len(files), sum(f.stat().st_size for f in files))
