"""`gr verify`: check every file of an index directory against its manifest.

Opening an index hashes its files only below 2 GiB (sizes above); this always hashes all of
them, checks that every shard was embedded by the manifest's model and that the model copy
is the manifest's, so an index copied from elsewhere can be trusted before it is served.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import IndexFormatError
from ..atomic import sha256_file
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
    files = [root / s.file for s in m.shards] + [root / part["file"] for part in (m.vectors, m.faiss, (m.faiss or {}).get("ondisk"), m.tombstones) if part and part.get("file")]
    weights = root / MODEL_DIR / "model.safetensors"
    if model_sha and weights.is_file():
        if sha256_file(weights) != model_sha:
            raise IndexFormatError(f"{weights}: sha256 does not match the model the manifest names ({model_sha[:12]}…)")
        files.append(weights)
    open_vectors(root, m.vectors, m.count, m.dim, m.vectors_file)  # readable, the manifest's shape
    return VerifyReport(root, m.count, len(files), sum(f.stat().st_size for f in files))
