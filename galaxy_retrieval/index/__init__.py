"""Index directories: Parquet embedding shards, their manifest, the FAISS candidate index.

Layout of ``indexes/<name>/`` (see ``indexes/README.md``)::

    manifest.json          written last: its presence with "complete": true marks a finished build
    embeddings/part-NNNNN.parquet   object_id, row, embedding, metadata columns
    vectors.npy            the embeddings as one (N, D) array, memory-mapped by the reranker
    faiss.index            the candidate index (ids = positions in vectors.npy)
    model/                 a copy of the checkpoint, so `gr query` needs only the index path
    build-state.json       present only while a build is in progress (what it is building)

Modules: :mod:`.sources` (the one source a build reads, checked; `gr build-index`'s call),
:mod:`.build` (catalog or shards → index), :mod:`.foreign` (embeddings made elsewhere),
:mod:`.writes` (add) and :mod:`.maintenance` (delete, compact, reindex), both on the protocol of
:mod:`.versioning`, all on :mod:`.directory` (the directory's lifecycle: check, prepare, replace,
assemble, finish); :mod:`.embed` (rows → a shard, for every engine, :mod:`.ray_engine`
included); :mod:`.candidates` (the FAISS index); the files themselves: :mod:`.layout`,
:mod:`.manifest`, :mod:`.shards`, :mod:`.vectors`, :mod:`.tombstones`, :mod:`.lock`.
"""

from .layout import MANIFEST_NAME, SHARD_GLOB, shard_name
from .manifest import Manifest, ShardEntry, read_manifest
from .shards import read_shard_table, shard_schema, write_shard

__all__ = [
    "Manifest",
    "ShardEntry",
    "MANIFEST_NAME",
    "read_manifest",
    "SHARD_GLOB",
    "shard_name",
    "shard_schema",
    "write_shard",
    "read_shard_table",
]
