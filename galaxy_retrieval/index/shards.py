"""Embedding shards: ``part-NNNNN.parquet`` files any Parquet reader can open.

Schema: ``object_id`` string, ``row`` int64 (position in the catalog), ``embedding``
fixed_size_list<float32 | float16>[D], then the catalog's metadata columns (nullable).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_path
from ..errors import IndexFormatError
from .layout import shard_name

__all__ = [
    "MODEL_SHA_KEY",
    "RANGE_KEY",
    "WRITER_KEY",
    "shard_model_sha256",
    "shard_name",
    "shard_schema",
    "write_shard",
    "read_shard_table",
    "read_metadata_table",
    "read_shard_embeddings",
    "check_shard_models",
]

# Parquet schema metadata: the sha256 of the model weights that embedded the shard. Vectors
# of two models are not comparable, so a shard is checked against the index's model when it
# is reused by a build and when an index is opened.
MODEL_SHA_KEY = b"galaxy_retrieval.model_sha256"
#: Parquet schema metadata: the catalog row range ``"lo:hi"`` a build's shard holds, so that an
#: interrupted build reuses it; shards rewritten by add/compact drop it.
RANGE_KEY = b"galaxy_retrieval.rows"
#: Parquet schema metadata every shard :func:`write_shard` writes carries: it marks the file as
#: an index writer's (``index/directory.py``), so shards a cluster wrote into a new index's
#: ``embeddings/`` are built from in place, while a user's ``part-*.parquet`` is left alone.
WRITER_KEY = b"galaxy_retrieval.shard"


def _pa_float(dtype: str) -> pa.DataType:
    if dtype == "float32":
        return pa.float32()
    if dtype == "float16":
        return pa.float16()
    raise IndexFormatError(f"embedding dtype must be float32 or float16, got {dtype!r}")


def _column_array(values: Sequence[Any]) -> pa.Array:
    """Metadata values → an Arrow array; mixed types fall back to strings."""
    try:
        return pa.array(list(values))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def shard_schema(dim: int, dtype: str, metadata_types: dict[str, pa.DataType] | None = None) -> pa.Schema:
    fields = [
        pa.field("object_id", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("embedding", pa.list_(_pa_float(dtype), dim), nullable=False),
    ]
    for name, t in (metadata_types or {}).items():
        fields.append(pa.field(name, t, nullable=True))
    return pa.schema(fields)


def write_shard(
    path: str | Path,
    object_ids: Sequence[str],
    rows: np.ndarray,
    embeddings: np.ndarray,
    metadata: dict[str, Sequence[Any]],
    dtype: str = "float32",
    extra_schema_metadata: dict[str, str] | None = None,
) -> Path:
    """Write one shard atomically (temp file + rename)."""
    emb = np.ascontiguousarray(embeddings, dtype=np.float16 if dtype == "float16" else np.float32)
    n, dim = emb.shape
    if len(object_ids) != n or len(rows) != n:
        raise IndexFormatError(
            f"{path}: {len(object_ids)} ids, {len(rows)} rows and {n} embeddings differ in length"
        )
    flat = pa.array(emb.reshape(-1), type=_pa_float(dtype))
    cols: dict[str, pa.Array] = {
        "object_id": pa.array(list(object_ids), type=pa.string()),
        "row": pa.array(np.asarray(rows, dtype=np.int64)),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
    }
    for name, values in metadata.items():
        if name in cols:
            continue  # a catalog column named like ours must not shadow the contract
        cols[name] = _column_array(values)
    table = pa.table(cols)
    stamp = {
        WRITER_KEY: b"1",
        **{k.encode() if isinstance(k, str) else k: v for k, v in (extra_schema_metadata or {}).items()},
    }
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **stamp})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd" if dtype == "float16" else "snappy")
    return Path(path)


def read_shard_table(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise IndexFormatError(f"{path}: shard missing") from None
    except (pa.ArrowInvalid, OSError) as e:
        raise IndexFormatError(f"{path}: not a readable Parquet shard ({e})") from None


def read_metadata_table(paths: Sequence[Path]) -> pa.Table:
    """Every column but the embedding, of these shards in order: one row per index position."""
    tables = []
    for p in paths:
        try:
            names = pq.read_schema(p).names
        except FileNotFoundError:
            raise IndexFormatError(f"{p}: shard missing") from None
        except (pa.ArrowInvalid, OSError) as e:
            raise IndexFormatError(f"{p}: not a readable Parquet shard ({e})") from None
        tables.append(read_shard_table(p, [n for n in names if n != "embedding"]))
    return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]


def read_shard_embeddings(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(embeddings (n, D), rows (n,), object_ids) of one shard."""
    t = read_shard_table(path, ["object_id", "row", "embedding"])
    col = t.column("embedding").combine_chunks()
    if pa.types.is_fixed_size_list(col.type):
        dim = col.type.list_size
    else:  # list<float> (DuckDB, Polars): every row must have the same length
        import pyarrow.compute as pc

        if col.null_count:
            raise IndexFormatError(f"{path}: {col.null_count} rows have no embedding")
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        dim = int(lengths[0]) if len(lengths) else 0
        if len(lengths) and (lengths != dim).any():
            raise IndexFormatError(
                f"{path}: embeddings of lengths {int(lengths.min())} to {int(lengths.max())}; all must have one dimension"
            )
    values = col.flatten().to_numpy(zero_copy_only=False)
    if values.dtype == np.float64:
        values = values.astype(np.float32)
    emb = values.reshape(-1, dim) if dim else values.reshape(len(col), 0)
    return emb, t.column("row").to_numpy(), t.column("object_id").to_pylist()


def shard_model_sha256(path: str | Path) -> str | None:
    """The model sha256 recorded in a shard's schema metadata (None: not recorded, e.g. a
    shard written by another tool)."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except FileNotFoundError:
        raise IndexFormatError(f"{path}: shard missing") from None
    except (pa.ArrowInvalid, OSError) as e:
        raise IndexFormatError(f"{path}: not a readable Parquet shard ({e})") from None
    v = meta.get(MODEL_SHA_KEY)
    return None if v is None else v.decode("ascii", "replace")


def check_shard_models(paths: Sequence[Path], expected: str | None, where: str) -> str | None:
    """Refuse shards embedded by different models, or by another model than ``expected``.
    Returns the one model sha256 the shards record (None if none records one)."""
    found: str | None = None
    first: Path | None = None
    for p in paths:
        sha = shard_model_sha256(p)
        if sha is None:
            continue
        if expected and sha != expected:
            raise IndexFormatError(
                f"{p}: embedded by model {sha[:12]}…, but {where} says {expected[:12]}…; vectors of two models cannot be mixed"
            )
        if found is not None and sha != found:
            raise IndexFormatError(
                f"{p}: embedded by model {sha[:12]}…, but {first} by {found[:12]}…; vectors of two models cannot be mixed"
            )
        found, first = sha, first or p
    return found
