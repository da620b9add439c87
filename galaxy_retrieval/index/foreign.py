"""Indexes of embeddings made elsewhere: any Parquet file (or folder of them) with an id column
and the vector either as many numeric columns (``feat_pca_*``, Zoobot's published
representations) or as one list / fixed-size-list column.

    build_index_from_parquet("zoobot.parquet", "indexes/zoobot", id_column="id_str", vector_columns="feat_pca_*")

The rows are converted into contract shards (``object_id``, ``row``, ``embedding``, every other
column as metadata: ``ra``/``dec`` make sky queries work) and indexed as
:func:`~galaxy_retrieval.index.build.build_index_from_shards` does. Such an index has no model:
it answers object-id, sky and vector queries; an image query needs the checkpoint that made
the vectors. Everything checkable (columns, types, ids, the FAISS factory at this size) is
checked before anything is written. The shards are written straight into the index directory,
each atomically and always covering the same source rows, so an interrupted build resumes
when rerun, as the image build does (``build-state.json`` refuses a different source).
"""

from __future__ import annotations

import fnmatch
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import CatalogError
from ..progress import NULL_PROGRESS, Progress
from ..score import ScoreWeights
from .candidates import check_index_spec
from .config import BuildConfig, BuildResult
from .directory import BUILD_SHARD, build_target, check_out, finish
from .layout import EMBEDDINGS_DIR, SHARD_GLOB, shard_name
from .shards import RANGE_KEY, write_shard

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
        raise CatalogError(
            f"{where}: no column matches {pattern!r}; the columns are {', '.join(schema.names)}"
        )
    if len(names) == 1 and (
        pa.types.is_list(schema.field(names[0]).type)
        or pa.types.is_fixed_size_list(schema.field(names[0]).type)
        or pa.types.is_large_list(schema.field(names[0]).type)
    ):
        vt = schema.field(names[0]).type.value_type
        if not (pa.types.is_floating(vt) or pa.types.is_integer(vt)):
            raise CatalogError(f"{where}: column {names[0]!r} holds {vt} values, not numbers")
        return names
    bad = [
        n
        for n in names
        if not (pa.types.is_floating(schema.field(n).type) or pa.types.is_integer(schema.field(n).type))
    ]
    if bad:
        raise CatalogError(f"{where}: vector column {bad[0]!r} is {schema.field(bad[0]).type}, not a number")
    return names


def _vectors(batch: pa.RecordBatch, cols: list[str]) -> np.ndarray:
    if len(cols) == 1 and not (
        pa.types.is_floating(batch.schema.field(cols[0]).type)
        or pa.types.is_integer(batch.schema.field(cols[0]).type)
    ):
        arr = batch.column(cols[0])
        if arr.null_count:
            raise CatalogError(f"column {cols[0]!r}: {arr.null_count} rows have no vector")
        lengths = np.asarray(pa.compute.list_value_length(arr).to_numpy(zero_copy_only=False))
        if len(lengths) and (lengths != lengths[0]).any():
            raise CatalogError(
                f"column {cols[0]!r}: vectors of lengths {int(lengths.min())} to {int(lengths.max())}; all must have one dimension"
            )
        values = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        return values.reshape(len(arr), -1)
    return np.stack(
        [np.asarray(batch.column(c).to_numpy(zero_copy_only=False), np.float32) for c in cols], axis=1
    )


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
    schema, cols, ids = _checked_source(src, files, id_column, vector_columns)
    dim = _first_dim(files[0], cols)
    check_index_spec(cfg.index, len(ids), dim)  # before any write: a factory this size cannot take
    check_out(out, cfg.overwrite, {"source": src})  # an existing index is refused before the conversion
    meta_cols = [
        n
        for n in schema.names
        if n not in cols and n != id_column and n not in ("object_id", "row", "embedding")
    ]
    # what is being built: a rerun after an interruption resumes only the same conversion
    state = {
        "from_parquet": str(src.resolve()),
        "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files],
        "id_column": id_column,
        "vector_columns": vector_columns,
        "shard_rows": cfg.shard_rows,
        "dtype": cfg.dtype,
    }
    final = out
    with build_target(final, cfg.overwrite, state) as out:
        shard_dir = out / EMBEDDINGS_DIR
        shard_dir.mkdir(exist_ok=True)
        t0 = time.perf_counter()
        paths, converted, pos = _convert_shards(
            files, shard_dir, id_column, cols, meta_cols, dim, cfg, len(ids), progress
        )
        for stale in shard_dir.glob(SHARD_GLOB):  # from a longer source of an earlier attempt
            if stale not in paths and BUILD_SHARD.fullmatch(stale.name):
                stale.unlink()
        seconds = {"convert": time.perf_counter() - t0}
        info = {
            "source": f"parquet:{src.resolve()}",
            "path": None,
            "kind": "parquet",
            "count": pos,
            "id_column": id_column,
            "vector_columns": vector_columns,
        }
        weights = cfg.score_weights if cfg.score_weights is not None else ScoreWeights()
        manifest = finish(out, paths, dim, cfg.dtype, cfg, weights, None, info, progress, seconds)
    return BuildResult(final, manifest, converted, len(paths) - converted, [], seconds)


def _convert_shards(
    files: list[Path],
    shard_dir: Path,
    id_column: str,
    cols: list[str],
    meta_cols: list[str],
    dim: int,
    cfg: BuildConfig,
    total: int,
    progress: Progress,
) -> tuple[list[Path], int, int]:
    """Write the source rows as contract shards: (every shard's path, how many this call
    wrote, rows in all)."""
    paths: list[Path] = []
    converted = 0
    pos = 0
    with progress.task("converting", total=total, unit="vec") as task:
        for f in files:
            for batch in pq.ParquetFile(f).iter_batches(
                batch_size=cfg.shard_rows, columns=[id_column, *cols, *meta_cols]
            ):
                n = batch.num_rows
                dst = shard_dir / shard_name(len(paths))
                paths.append(dst)
                # shard i always holds the same rows of the same files (batches are
                # deterministic), each written atomically: a rerun keeps the finished ones
                if not _converted(dst, pos, pos + n):
                    _write_batch(dst, f, batch, pos, id_column, cols, meta_cols, dim, cfg)
                    converted += 1
                pos += n
                task.advance(n)
    return paths, converted, pos


def _write_batch(
    dst: Path,
    f: Path,
    batch: pa.RecordBatch,
    pos: int,
    id_column: str,
    cols: list[str],
    meta_cols: list[str],
    dim: int,
    cfg: BuildConfig,
) -> None:
    """Write one batch of ``f`` (source rows from ``pos``) as the shard ``dst``."""
    n = batch.num_rows
    x = _vectors(batch, cols)
    if x.shape[1] != dim:
        raise CatalogError(f"{f}: vectors of dimension {x.shape[1]}, earlier ones {dim}")
    if not np.isfinite(x).all():
        raise CatalogError(f"{f}: vectors hold NaN or infinite values near row {pos}")
    meta = {c: batch.column(c).to_pylist() for c in meta_cols}
    meta["source"] = [f"parquet:{f.name}"] * n
    write_shard(
        dst,
        [str(v) for v in batch.column(id_column).to_pylist()],
        np.arange(pos, pos + n),
        x,
        meta,
        dtype=cfg.dtype,
        extra_schema_metadata={RANGE_KEY.decode(): f"{pos}:{pos + n}"},
    )


def _checked_source(
    src: Path, files: list[Path], id_column: str, vector_columns: str
) -> tuple[pa.Schema, list[str], list[str]]:
    """(schema, vector columns, object ids) of the source files, each checked before anything
    is written: readable, the same columns in every file, every id present and unique."""
    schemas = []
    for f in files:
        try:
            schemas.append(pq.read_schema(f))
        except (pa.ArrowInvalid, OSError) as e:
            raise CatalogError(f"{f}: not a readable Parquet file ({e})") from None
    schema = schemas[0]
    if id_column not in schema.names:
        raise CatalogError(
            f"{files[0]}: no id column {id_column!r}; the columns are {', '.join(schema.names)}"
        )
    cols = _vector_columns(schema, vector_columns, files[0])
    for f, sc in zip(files[1:], schemas[1:]):
        if [n for n in sc.names if n in cols] != cols or id_column not in sc.names:
            raise CatalogError(
                f"{f}: its columns differ from {files[0]}'s (id {id_column!r}, vectors {vector_columns!r})"
            )
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
    return schema, cols, ids


def _first_dim(f: Path, cols: list[str]) -> int:
    if (
        len(cols) > 1
        or pa.types.is_floating(pq.read_schema(f).field(cols[0]).type)
        or pa.types.is_integer(pq.read_schema(f).field(cols[0]).type)
    ):
        return len(cols)
    for batch in pq.ParquetFile(f).iter_batches(batch_size=1, columns=cols):
        if batch.num_rows:
            return int(_vectors(batch, cols).shape[1])
    raise CatalogError(f"{f}: holds no rows")


def _converted(path: Path, lo: int, hi: int) -> bool:
    """Whether ``path`` is the finished shard of rows [lo, hi) (written atomically, so present
    means complete; the range says it is this conversion's)."""
    if not path.is_file():
        return False
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError):
        return False
    return meta.get(RANGE_KEY) == f"{lo}:{hi}".encode()
