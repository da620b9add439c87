"""Indexes of embeddings made elsewhere: any Parquet file (or folder of them) with an id column
and the vector either as many numeric columns (``feat_pca_*``, Zoobot's published
representations) or as one list / fixed-size-list column.

    build_index_from_parquet("zoobot.parquet", "indexes/zoobot", id_column="id_str", vector_columns="feat_pca_*")

The rows are converted into contract shards (``object_id``, ``row``, ``embedding``, every other
column as metadata: ``ra``/``dec`` make sky queries work) and indexed as
:func:`~galaxy_retrieval.index.build.build_index_from_shards` does. Such an index has no model:
it answers object-id, sky and vector queries; an image query needs the checkpoint that made
the vectors. Everything checkable (columns, types, ids) is checked before anything is written.
"""

from __future__ import annotations

import fnmatch
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import CatalogError
from ..progress import NULL_PROGRESS, Progress
from .build import BuildConfig, BuildResult, _check_out, build_index_from_shards
from .shards import shard_name, write_shard

__all__ = ["build_index_from_parquet"]


def _files(src: Path) -> list[Path]:
    if src.is_dir():
        files = sorted(p for p in src.glob("*.parquet") if p.is_file())
        if not files:
            raise CatalogError(f"{src}: no .parquet files in this folder")
        return files
    if not src.is_file():
        raise CatalogError(f"{src}: no such file or folder")
    return [src]


def _vector_columns(schema: pa.Schema, pattern: str, where: Path) -> list[str]:
    names = [n for n in schema.names if fnmatch.fnmatchcase(n, pattern)]
    if not names:
        raise CatalogError(f"{where}: no column matches {pattern!r}; the columns are {', '.join(schema.names)}")
    if len(names) == 1 and (pa.types.is_list(schema.field(names[0]).type) or pa.types.is_fixed_size_list(schema.field(names[0]).type) or pa.types.is_large_list(schema.field(names[0]).type)):
        vt = schema.field(names[0]).type.value_type
        if not (pa.types.is_floating(vt) or pa.types.is_integer(vt)):
            raise CatalogError(f"{where}: column {names[0]!r} holds {vt} values, not numbers")
        return names
    bad = [n for n in names if not (pa.types.is_floating(schema.field(n).type) or pa.types.is_integer(schema.field(n).type))]
    if bad:
        raise CatalogError(f"{where}: vector column {bad[0]!r} is {schema.field(bad[0]).type}, not a number")
    return names


def _vectors(batch: pa.RecordBatch, cols: list[str]) -> np.ndarray:
    if len(cols) == 1 and not (pa.types.is_floating(batch.schema.field(cols[0]).type) or pa.types.is_integer(batch.schema.field(cols[0]).type)):
        arr = batch.column(cols[0])
        if arr.null_count:
            raise CatalogError(f"column {cols[0]!r}: {arr.null_count} rows have no vector")
        lengths = np.asarray(pa.compute.list_value_length(arr).to_numpy(zero_copy_only=False))
        if len(lengths) and (lengths != lengths[0]).any():
            raise CatalogError(f"column {cols[0]!r}: vectors of lengths {int(lengths.min())} to {int(lengths.max())}; all must have one dimension")
        values = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        return values.reshape(len(arr), -1)
    return np.stack([np.asarray(batch.column(c).to_numpy(zero_copy_only=False), np.float32) for c in cols], axis=1)


def build_index_from_parquet(
    src: str | Path,
    out: str | Path,
    id_column: str,
    vector_columns: str,
    cfg: BuildConfig = BuildConfig(),
    progress: Progress = NULL_PROGRESS,
) -> BuildResult:
    """Index the vectors of ``src`` (a Parquet file or folder): ids from ``id_column``,
    vectors from the columns matching the glob ``vector_columns`` (in file order) or from
    the one list column it names; every other column is kept as metadata."""
    src, out = Path(src), Path(out)
    files = _files(src)
    schemas = []
    for f in files:
        try:
            schemas.append(pq.read_schema(f))
        except (pa.ArrowInvalid, OSError) as e:
            raise CatalogError(f"{f}: not a readable Parquet file ({e})") from None
    schema = schemas[0]
    if id_column not in schema.names:
        raise CatalogError(f"{files[0]}: no id column {id_column!r}; the columns are {', '.join(schema.names)}")
    cols = _vector_columns(schema, vector_columns, files[0])
    for f, sc in zip(files[1:], schemas[1:]):
        if [n for n in sc.names if n in cols] != cols or id_column not in sc.names:
            raise CatalogError(f"{f}: its columns differ from {files[0]}'s (id {id_column!r}, vectors {vector_columns!r})")
    ids: list[str] = []
    for f in files:  # ids first: a duplicate or a missing id is refused before any write
        col = pq.read_table(f, columns=[id_column]).column(id_column)
        if col.null_count:
            raise CatalogError(f"{f}: {col.null_count} rows have no {id_column!r}")
        ids.extend(str(v) for v in col.to_pylist())
    seen: set[str] = set()
    for oid in ids:
        if oid in seen:
            raise CatalogError(f"{src}: object id {oid!r} appears more than once; ids must be unique")
        seen.add(oid)
    _check_out(out, cfg.overwrite, {"source": src})  # an existing index is refused before the conversion
    meta_cols = [n for n in schema.names if n not in cols and n != id_column and n not in ("object_id", "row", "embedding")]
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.from-parquet-", dir=out.parent))
    try:
        pos, i, dim = 0, 0, None
        for f in files:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=cfg.shard_rows, columns=[id_column, *cols, *meta_cols]):
                x = _vectors(batch, cols)
                if dim is None:
                    dim = x.shape[1]
                if x.shape[1] != dim:
                    raise CatalogError(f"{f}: vectors of dimension {x.shape[1]}, earlier ones {dim}")
                if not np.isfinite(x).all():
                    raise CatalogError(f"{f}: vectors hold NaN or infinite values near row {pos}")
                n = len(x)
                meta = {c: batch.column(c).to_pylist() for c in meta_cols}
                meta["source"] = [f"parquet:{f.name}"] * n
                write_shard(staging / shard_name(i), [str(v) for v in batch.column(id_column).to_pylist()], np.arange(pos, pos + n), x, meta, dtype=cfg.dtype)
                pos += n
                i += 1
        info = {"source": f"parquet:{src.resolve()}", "path": None, "kind": "parquet", "count": pos, "id_column": id_column, "vector_columns": vector_columns}
        res = build_index_from_shards(staging, out, cfg, progress, catalog_info=info)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return res
