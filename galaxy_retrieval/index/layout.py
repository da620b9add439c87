"""What an index directory holds, by name: the one place the file layout is written down.

Writers (build, add/delete/compact) and readers (the searcher, verification, ``gr info``)
both take their names from here, so a reader never imports a writer to learn a file name.

    DIR/
      manifest.json            the index's current version, written last (the commit point)
      build-state.json         an unfinished build's parameters (for resume)
      embeddings/part-NNNNN.parquet   shards of ids, vectors and metadata, by row range
      vectors.npy, faiss.index the assembled full-precision vectors and the FAISS shortlist
      faiss.ivfdata            an on-disk IVF index's inverted lists (memory-mapped)
      vectors-vN.npy, faiss-vN.index, deleted-vN.parquet   files of later versions
      outliers-vN-kK-rR.npy    each object's score to its k-th neighbour in version N (a
                               cache: search/outliers.py; any write removes it)
      model/                   a copy of the checkpoint that embedded the shards
      .gr-write.lock           held by the one writer at a time
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "MANIFEST_NAME",
    "STATE_FILE",
    "EMBEDDINGS_DIR",
    "SHARD_GLOB",
    "VECTORS_FILE",
    "FAISS_FILE",
    "FAISS_DATA_FILE",
    "MODEL_DIR",
    "LOCK_NAME",
    "VERSIONED_GLOBS",
    "shard_name",
    "is_index_dir",
]

MANIFEST_NAME = "manifest.json"
STATE_FILE = "build-state.json"
EMBEDDINGS_DIR = "embeddings"
SHARD_GLOB = "part-*.parquet"
VECTORS_FILE = "vectors.npy"
FAISS_FILE = "faiss.index"
#: the inverted lists of an on-disk IVF index (index/candidates/ondisk.py), beside its faiss.index
FAISS_DATA_FILE = "faiss.ivfdata"
MODEL_DIR = "model"
LOCK_NAME = ".gr-write.lock"
#: files of later versions written by add/delete/compact/reindex (index/versioning.py), and the
#: outlier scores cached for one version (search/outliers.py), which a write makes stale
VERSIONED_GLOBS = ("vectors-v*.npy", "faiss-v*.index", "deleted-v*.parquet", "outliers-v*-k*-r*.npy")


def shard_name(i: int) -> str:
    return f"part-{i:05d}.parquet"


def is_index_dir(path: str | Path) -> bool:
    """Whether ``path`` is an index directory, finished or an interrupted build."""
    p = Path(path)
    return (p / MANIFEST_NAME).is_file() or (p / STATE_FILE).is_file()
