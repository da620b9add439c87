"""`gr build-index`: catalog → embeddings (Parquet shards) → vectors.npy → FAISS index → manifest.

Crash-safe and resumable. Shard *i* always covers catalog positions
``[i·shard_rows, (i+1)·shard_rows)`` and is embedded in the same fixed batches, so a rerun
after a kill skips the shards already on disk (each written atomically) and produces the same
bytes as an uninterrupted run. ``build-state.json`` records what is being built; a rerun with
a different checkpoint or catalog into the same directory is refused rather than mixed. The
manifest is written last, so a half-built directory is never taken for an index.

The manifest's score weights (what the searcher reranks with) are the checkpoint's —
learned ones when its training learned them (:attr:`Embedder.score_weights`) — unless
``BuildConfig.score_weights`` is given. Images are embedded exactly as the checkpoint's
training saw them, source suppression included (:attr:`Embedder.suppress`), in the
precision ``BuildConfig.precision`` resolves to (recorded in the manifest's model entry).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_path
from ..errors import CatalogError, ConfigError, IndexFormatError
from ..ingest import IngestConfig, IngestStats, can_prepare, open_box_store
from ..progress import NULL_PROGRESS, Progress
from ..score import ScoreWeights
from .candidates import check_index_spec
from .config import BuildConfig, BuildResult
from .directory import BUILD_SHARD, build_target, check_out, finish
from .embed import embed_shard
from .layout import EMBEDDINGS_DIR, MANIFEST_NAME, MODEL_DIR, SHARD_GLOB, shard_name
from .ray_engine import embed_shards_ray
from .ray_engine import session as engine_session
from .shards import MODEL_SHA_KEY, RANGE_KEY, check_shard_models

# BuildConfig and BuildResult live in .config (foreign embeddings and pipeline files share them);
# they are named here too because a build is where people look for them
__all__ = ["BuildConfig", "BuildResult", "build_index", "build_index_from_shards"]


def build_index(
    checkpoint: str | Path,
    catalog: Any,
    out: str | Path,
    cfg: BuildConfig = BuildConfig(),
    progress: Progress = NULL_PROGRESS,
) -> BuildResult:
    """Embed ``catalog`` with the checkpoint, write shards, and build the index directory.

    Everything that can be checked before the embedding pass is (catalog size, duplicate ids,
    FAISS factory and knobs, the output directory); a refusal of a build this call started
    in a new directory removes that directory again. One writer at a time: the directory's
    lock (:mod:`.lock`) is held throughout."""
    from ..model import load_checkpoint

    out = Path(out)
    embedder = load_checkpoint(checkpoint, precision=cfg.precision)
    n = len(catalog)
    if n == 0:
        raise CatalogError(f"{catalog.path}: the catalog holds no objects; nothing to index")
    check_index_spec(cfg.index, n, embedder.dim)
    _check_unique_ids(catalog)
    check_out(
        out,
        cfg.overwrite,
        {"catalog": Path(catalog.path), **({"checkpoint": Path(checkpoint)} if cfg.overwrite else {})},
    )
    with (
        build_target(out, cfg.overwrite, _build_state(embedder, catalog, n, cfg)) as dst,
        engine_session(cfg),
    ):
        res = _build_locked(Path(checkpoint), embedder, catalog, n, dst, cfg, progress)
    return dataclasses.replace(res, path=out)


def _build_state(embedder: Any, catalog: Any, n: int, cfg: BuildConfig) -> dict[str, Any]:
    """What a build is building: a rerun resumes only the same one."""
    state = {
        "checkpoint_sha256": embedder.sha256,
        "catalog": catalog.source,
        "catalog_count": n,
        "shard_rows": cfg.shard_rows,
        "batch_size": cfg.batch_size,
        "dtype": cfg.dtype,
    }
    if embedder.suppress is not None:  # part of what the vectors are
        state["suppress_sources"] = embedder.suppress.to_dict()
    if embedder.precision != "fp32":  # so is bf16 (absent: fp32, as states written before it)
        state["precision"] = embedder.precision
    fast = _fast_ingest(cfg, catalog, embedder)
    if fast is not None:  # where boxes are measured and how the model is batched: part of the vectors too
        state["ingest"] = fast.to_dict()
    return state


def _fast_ingest(cfg: BuildConfig, catalog: Any, embedder: Any) -> IngestConfig | None:
    """The ingest fast path's settings when this build takes it: the local engine, an image
    folder, and a model that does not suppress sources (which needs the full images here)."""
    local = cfg.engine == "local" and cfg.ingest is not None
    return cfg.ingest if local and can_prepare(catalog) and embedder.suppress is None else None


def _check_unique_ids(catalog: Any) -> None:
    """Duplicate object ids would only surface after the whole embedding pass; look first."""
    seen: set[str] = set()
    for oid in catalog.object_ids():
        if oid in seen:
            raise CatalogError(
                f"{catalog.path}: object id {oid!r} appears more than once; ids must be unique"
            )
        seen.add(oid)


def _build_locked(
    checkpoint: Path, embedder: Any, catalog: Any, n: int, out: Path, cfg: BuildConfig, progress: Progress
) -> BuildResult:
    fast = _fast_ingest(cfg, catalog, embedder)
    _copy_model(checkpoint, out / MODEL_DIR, embedder)

    shard_dir = out / EMBEDDINGS_DIR
    shard_dir.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    shard_paths, pending, reused = _plan_shards(shard_dir, n, cfg.shard_rows, embedder.sha256)
    skipped, stats, shard_seconds = _embed_pending(
        checkpoint, embedder, catalog, n, shard_dir, pending, cfg, fast, progress
    )
    embedded = len(pending)
    seconds = {"embed": time.perf_counter() - t0, **shard_seconds}
    if fast is not None and pending and embedder.model_config.framing.mode == "auto":
        progress.log(stats.framing.describe_reuse())
    for stale in shard_dir.glob(SHARD_GLOB):  # from a longer catalog of an earlier attempt
        if stale not in shard_paths and BUILD_SHARD.fullmatch(stale.name):
            stale.unlink()
    weights = cfg.score_weights if cfg.score_weights is not None else embedder.score_weights
    manifest = finish(
        out,
        shard_paths,
        embedder.dim,
        cfg.dtype,
        cfg,
        weights,
        embedder.manifest_info(),
        _catalog_info(catalog, n, len(skipped)),
        progress,
        seconds,
    )
    return BuildResult(
        out,
        manifest,
        embedded,
        reused,
        skipped,
        seconds,
        stats.to_dict() if fast is not None and pending else None,
    )


def _plan_shards(
    shard_dir: Path, n: int, shard_rows: int, model_sha256: str
) -> tuple[list[Path], list[tuple[int, int, int]], int]:
    """(every shard's path, the (shard, lo, hi) still to embed, how many are reused): a shard
    a killed run finished is kept."""
    nshards = -(-n // shard_rows)
    shard_paths: list[Path] = []
    reused = 0
    pending: list[tuple[int, int, int]] = []
    for i in range(nshards):
        lo, hi = i * shard_rows, min(n, (i + 1) * shard_rows)
        path = shard_dir / shard_name(i)
        shard_paths.append(path)
        if _shard_complete(path, lo, hi, model_sha256):
            reused += 1
        else:
            pending.append((i, lo, hi))
    return shard_paths, pending, reused


def _embed_pending(
    checkpoint: Path,
    embedder: Any,
    catalog: Any,
    n: int,
    shard_dir: Path,
    pending: list[tuple[int, int, int]],
    cfg: BuildConfig,
    fast: IngestConfig | None,
    progress: Progress,
) -> tuple[list[tuple[int, str]], IngestStats, dict[str, float]]:
    """Embed the pending shards with the configured engine: (skipped images, ingest stats,
    seconds per stage)."""
    skipped: list[tuple[int, str]] = []
    done = n - sum(hi - lo for _, lo, hi in pending)
    stats = IngestStats()
    shard_seconds: dict[str, float] = {}
    if cfg.engine == "ray":  # the same shards, embedded by a pool of Ray actors
        skipped.extend(
            embed_shards_ray(checkpoint, catalog, shard_dir, pending, cfg, embedder, progress, done)
        )
    else:
        store = open_box_store(embedder.model_config.framing, fast) if fast is not None and pending else None
        with progress.task("embedding", total=n, unit="img") as task:
            if done:
                task.advance(done)
            for i, lo, hi in pending:
                skipped.extend(
                    embed_shard(
                        catalog,
                        embedder,
                        shard_dir / shard_name(i),
                        lo,
                        hi,
                        cfg.batch_size,
                        cfg.dtype,
                        task.advance,
                        ingest=fast,
                        ingest_stats=stats,
                        box_store=store,
                        seconds=shard_seconds,
                    )
                )
    return skipped, stats, shard_seconds


def _catalog_info(catalog: Any, n: int, skipped: int) -> dict[str, Any]:
    """The manifest's record of the catalog the index was built from."""
    catalog_info = {
        "source": catalog.source,
        "path": str(Path(catalog.path).resolve()),
        "kind": catalog.kind,
        "count": n,
        "skipped": skipped,
    }
    names = getattr(catalog, "label_names", None)
    if names:  # so results are captioned with the catalog's own class names
        catalog_info["label_names"] = {str(k): v for k, v in names.items()}
    return catalog_info


def _shard_complete(path: Path, lo: int, hi: int, model_sha256: str) -> bool:
    """Whether ``path`` is this build's shard of rows [lo, hi), embedded by this model: a
    shard of another model (an earlier build, another writer) is embedded again."""
    if not path.is_file():
        return False
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError):
        return False  # unreadable: embed it again
    return meta.get(RANGE_KEY) == f"{lo}:{hi}".encode() and meta.get(MODEL_SHA_KEY) == model_sha256.encode()


def build_index_from_shards(
    shards: str | Path,
    out: str | Path,
    cfg: BuildConfig = BuildConfig(),
    progress: Progress = NULL_PROGRESS,
    catalog_info: dict[str, Any] | None = None,
) -> BuildResult:
    """Build the vectors and FAISS index from existing shards (e.g. written on a cluster);
    no model needed. Shards are copied into ``out`` so the index stays self-contained."""
    src = Path(shards)
    if not src.is_dir():
        raise IndexFormatError(f"{src}: not a directory of Parquet shards")
    paths = sorted(src.glob(SHARD_GLOB))
    if not paths:
        raise IndexFormatError(f"{src}: no shards named part-NNNNN.parquet")
    dim, dtype, count = _shards_layout(paths)
    out = Path(out)
    src_manifest = src.parent / MANIFEST_NAME if src.name == EMBEDDINGS_DIR else src / MANIFEST_NAME
    model_info, src_weights = _source_manifest(src_manifest)
    check_shard_models(paths, (model_info or {}).get("sha256"), str(src_manifest))
    if cfg.score_weights is not None:
        weights = cfg.score_weights
    else:
        try:
            weights = ScoreWeights.from_dict(src_weights) if src_weights else ScoreWeights()
        except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise IndexFormatError(f"{src_manifest}: invalid score_weights {src_weights!r} ({e})") from None
    check_index_spec(cfg.index, count, dim)
    in_place = src.resolve() == (out / EMBEDDINGS_DIR).resolve()
    # the source shards may be this index's own (a cluster wrote them into out/embeddings);
    # an overwrite would delete them before they are read
    check_out(out, cfg.overwrite, {"source shards": src} if cfg.overwrite or not in_place else {})
    final = out
    state = {"from_shards": str(src.resolve()), "n_shards": len(paths), "dtype": dtype}
    with build_target(final, cfg.overwrite, state) as out, engine_session(cfg):
        dst_dir = out / EMBEDDINGS_DIR
        dst_dir.mkdir(exist_ok=True)
        copied: list[Path] = []
        for p in paths:
            dst = dst_dir / p.name
            if not in_place:
                with atomic_path(dst) as tmp:
                    shutil.copyfile(p, tmp)
            copied.append(dst)
        if (
            model_info
            and (src_manifest.parent / MODEL_DIR).is_dir()
            and src_manifest.parent.resolve() != out.resolve()
        ):
            _copy_model(src_manifest.parent / MODEL_DIR, out / MODEL_DIR, None)
        catalog_info = catalog_info or {
            "source": f"shards:{src.resolve()}",
            "path": None,
            "kind": "shards",
            "count": count,
        }
        manifest = finish(out, copied, dim, dtype, cfg, weights, model_info, catalog_info, progress, {})
    return BuildResult(final, manifest, 0, len(copied), [], {})


def _shards_layout(paths: list[Path]) -> tuple[int, str, int]:
    """(dimension, dtype, total rows) of externally written shards; each is checked to be a
    readable Parquet file with the contract's columns before anything is written."""
    dims: set[tuple[int, str]] = set()
    count = 0
    for p in paths:
        try:
            schema = pq.read_schema(p)
            count += pq.read_metadata(p).num_rows
        except (pa.ArrowInvalid, OSError) as e:
            raise IndexFormatError(f"{p}: not a readable Parquet shard ({e})") from None
        for name in ("object_id", "row", "embedding"):
            if name not in schema.names:
                raise IndexFormatError(f"{p}: shard lacks the {name!r} column")
        emb_type = schema.field("embedding").type
        # list<float> is what DuckDB and Polars write for an array column: accepted, its
        # length read from the first row (every row is checked when the vectors are assembled)
        listy = pa.types.is_list(emb_type) or pa.types.is_large_list(emb_type)
        if not (pa.types.is_fixed_size_list(emb_type) or listy) or emb_type.value_type not in (
            pa.float16(),
            pa.float32(),
            pa.float64(),
        ):
            raise IndexFormatError(
                f"{p}: 'embedding' must be fixed_size_list<float>[D] or list<float>, found {emb_type}"
            )
        if listy:
            first = pq.ParquetFile(p).read_row_group(0, columns=["embedding"]).column("embedding")
            size = len(first[0].values) if len(first) and first[0].is_valid else 0
        else:
            size = emb_type.list_size
        dims.add((size, "float16" if emb_type.value_type == pa.float16() else "float32"))
        if len(dims) > 1:
            raise IndexFormatError(
                f"{p}: embeddings of {emb_type}, but {paths[0]} has {sorted(dims)[0]}; shards must agree"
            )
    if count == 0:
        raise IndexFormatError(f"{paths[0].parent}: the shards hold no rows; nothing to index")
    ((dim, dtype),) = dims
    return dim, dtype, count


def _source_manifest(path: Path) -> tuple[dict[str, Any] | None, Any]:
    """(model info, score weights) of the manifest beside source shards, if there is one."""
    if not path.is_file():
        return None, None
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        d = {}
    d = d if isinstance(d, dict) else {}
    model_info = d.get("model") if isinstance(d.get("model"), dict) else None
    # the weights the shards' model is scored with: the manifest's, else its model's
    return model_info, d.get("score_weights") or (model_info or {}).get("score_weights")


def _copy_model(checkpoint: Path, dst: Path, embedder: Any) -> None:
    """Copy the checkpoint's weights and config next to the index (self-describing index)."""
    src = Path(getattr(embedder, "path", None) or checkpoint)
    src_dir = src if src.is_dir() else src.parent
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "checkpoint.json"):
        f = src_dir / name
        if f.is_file():
            with atomic_path(dst / name) as tmp:
                shutil.copyfile(f, tmp)
