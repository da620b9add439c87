"""Commands that build and change an index: build-index, delete, compact, reindex, add, verify."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from .errors import friendly
from .options import Columns, Engine, IndexDir, MetadataCsv, OnErrorFail, Precision, opened_catalog
from .render import RichProgress, out, report_skipped

app = typer.Typer()


OutDir = Annotated[Path, typer.Option("--out", help="Index directory to create, e.g. indexes/demo.")]
BuildCheckpoint = Annotated[
    Path | None,
    typer.Option(
        help="Trained model (runs/NAME, or 'pretrained'); default: the model shipped in the package."
    ),
]
FromShards = Annotated[
    Path | None,
    typer.Option("--from-shards", help="Build from existing Parquet shards instead (no model)."),
]
FromParquet = Annotated[
    Path | None,
    typer.Option(
        "--from-parquet",
        help=(
            "Build from embeddings made elsewhere: a Parquet file or folder (with --id-column and "
            "--vector-columns; no model)."
        ),
    ),
]
IdColumn = Annotated[
    str | None, typer.Option("--id-column", help="With --from-parquet: the column of object ids.")
]
VectorColumns = Annotated[
    str | None,
    typer.Option(
        "--vector-columns",
        help=(
            "With --from-parquet: a glob of numeric columns in file order (e.g. 'feat_pca_*') or one list "
            "column."
        ),
    ),
]
IndexType = Annotated[
    str, typer.Option("--index-type", help="auto | flat | hnsw | ivf-pq | a FAISS factory string.")
]
Nprobe = Annotated[int, typer.Option(help="IVF lists searched per query (stored as the default).")]
Ondisk = Annotated[
    bool,
    typer.Option(
        "--ondisk",
        help="Keep the IVF inverted lists in a file the searcher memory-maps (catalogs larger than RAM).",
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace a complete index or a different interrupted build at --out."),
]
EngineOption = Annotated[
    Engine,
    typer.Option(
        help="Who embeds and fills the index: this process, or Ray Data actors (the distributed extra)."
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help=(
            "With --engine ray: auto (the cluster of `ray start`), ray://HOST:PORT, or local (start one "
            "here; the default)."
        ),
    ),
]
Pipeline = Annotated[
    Path | None,
    typer.Option(
        help=(
            "Build settings from a pipeline TOML with build, index and ray tables (e.g. "
            "pipelines/scale-out.toml); flags given win."
        )
    ),
]
AddPrecision = Annotated[
    str | None,
    typer.Option(
        "--precision",
        help="auto, fp32 or bf16 (default: the precision the index's own vectors were embedded in).",
    ),
]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=0,
        help=(
            "Image folders: processes that decode and frame cutouts while this one embeds (default: one per "
            "CPU; 0: all in this process)."
        ),
    ),
]


@app.command("build-index")
@friendly
def build_index_cmd(
    ctx: typer.Context,
    out_dir: OutDir,
    checkpoint: BuildCheckpoint = None,
    catalog: Annotated[Path | None, typer.Option(help="HDF5 catalog or image folder to embed.")] = None,
    metadata: MetadataCsv = None,
    columns: Columns = None,
    from_shards: FromShards = None,
    from_parquet: FromParquet = None,
    id_column: IdColumn = None,
    vector_columns: VectorColumns = None,
    index_type: IndexType = "auto",
    metric: Annotated[str, typer.Option(help="Shortlist metric: l2 (raw vectors) or cosine.")] = "l2",
    dtype: Annotated[str, typer.Option(help="Stored embeddings: float32 or float16.")] = "float32",
    shard_rows: Annotated[int, typer.Option(help="Objects per Parquet shard.")] = 8192,
    batch_size: Annotated[int, typer.Option(help="Images per model call.")] = 128,
    nprobe: Nprobe = 256,
    ef_search: Annotated[int, typer.Option(help="HNSW search breadth (stored as the default).")] = 128,
    ondisk: Ondisk = False,
    overwrite: Overwrite = False,
    on_error: OnErrorFail = "fail",
    engine: EngineOption = "local",
    ray_address: RayAddress = None,
    pipeline: Pipeline = None,
    workers: Workers = None,
    precision: Precision = "auto",
) -> None:
    """Embed a catalog into Parquet shards and build the FAISS candidate index (resumable)."""
    cfg = _build_config(
        ctx,
        pipeline,
        index_type=index_type,
        metric=metric,
        nprobe=nprobe,
        ef_search=ef_search,
        ondisk=ondisk,
        engine=engine,
        ray_address=ray_address,
        dtype=dtype,
        shard_rows=shard_rows,
        batch_size=batch_size,
        overwrite=overwrite,
        workers=workers,
        precision=precision,
    )
    from ..index.sources import build_index_from_source

    res = build_index_from_source(
        out_dir,
        cfg,
        catalog=catalog,
        checkpoint=checkpoint,
        metadata=metadata,
        columns=columns,
        on_error=on_error,
        from_shards=from_shards,
        from_parquet=from_parquet,
        id_column=id_column,
        vector_columns=vector_columns,
        progress=RichProgress(),
    )
    _render_build(res)


def _build_config(ctx: typer.Context, pipeline: Path | None, **given: Any) -> Any:
    """The build's BuildConfig: the pipeline file's settings (or the defaults), with each flag
    typed on the command line winning over the file; with no file, every flag counts."""
    from dataclasses import replace

    from ..index.pipeline import load_build_pipeline
    from ..index.ray_engine import RayConfig
    from ..ingest import IngestConfig

    def flag(name: str, current: Any) -> Any:
        # by name: typer vendors its own click, whose ParameterSource is not click's
        typed = getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"
        return given[name] if pipeline is None or typed else current

    base = load_build_pipeline(pipeline)  # the file's settings, or the defaults
    spec = replace(
        base.index,
        kind=flag("index_type", base.index.kind),
        metric=flag("metric", base.index.metric),
        nprobe=flag("nprobe", base.index.nprobe),
        ef_search=flag("ef_search", base.index.ef_search),
        ondisk=flag("ondisk", base.index.ondisk),
    )
    engine = flag("engine", base.engine)
    ray = base.ray
    if given["ray_address"] is not None and (pipeline is None or flag("ray_address", None) is not None):
        ray = replace(ray or RayConfig(), address=given["ray_address"])
    workers = given["workers"]
    return replace(
        base,
        dtype=flag("dtype", base.dtype),
        shard_rows=flag("shard_rows", base.shard_rows),
        batch_size=flag("batch_size", base.batch_size),
        precision=flag("precision", base.precision),
        overwrite=given["overwrite"],
        engine=engine,
        index=spec,
        ray=RayConfig() if ray is None and engine == "ray" else ray,
        ingest=base.ingest if workers is None else replace(base.ingest or IngestConfig(), workers=workers),
    )


def _render_build(res: Any) -> None:
    m = res.manifest
    f = m.faiss or {}
    out.print(
        f"index [bold]{res.path}[/]: {m.count:,} objects × {m.dim} ({m.dtype}), {len(m.shards)} shards "
        f"({res.embedded_shards} embedded now, {res.reused_shards} reused), "
        f"FAISS {f.get('factory')} — {f.get('chosen_because')}"
    )
    report_skipped(res.skipped)
    secs = ", ".join(f"{k} {v:.1f}s" for k, v in res.seconds.items())
    if secs:
        out.print(f"time: {secs}")


Ids = Annotated[Path | None, typer.Option(help="Text file of object ids to delete, one per line.")]
Where = Annotated[
    str | None,
    typer.Option(
        help=(
            "Delete the objects matching this condition over the metadata columns (one boolean expression), "
            'e.g. "label = 9".'
        )
    ),
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Say which objects would be deleted; change nothing.")
]


@app.command()
@friendly(flags={"object_ids": "--ids"})
def delete(
    index: IndexDir,
    ids: Ids = None,
    where: Where = None,
    dry_run: DryRun = False,
) -> None:
    """Delete objects from an index (a tombstone list; `gr compact` later removes them from the files)."""
    from ..index.maintenance import delete_objects, read_id_list

    res = delete_objects(index, read_id_list(ids) if ids is not None else None, where, dry_run=dry_run)
    if res.dry_run:
        shown = ", ".join(res.ids[:10]) + (" …" if len(res.ids) > 10 else "")
        out.print(
            f"would delete {res.deleted:,} objects from [bold]{res.path}[/] (dry run, nothing changed)"
            + (f": {escape(shown)}" if shown else ""),
            highlight=False,
        )
    elif res.deleted == 0:
        what = (
            "no object matches the condition"
            if where is not None
            else "none of the ids is in the index (or not deleted already)"
        )
        out.print(
            f"[yellow]nothing deleted from[/] [bold]{res.path}[/]: {what} (version {res.version} unchanged)",
            highlight=False,
        )
    msg = (
        f"deleted {res.deleted:,} objects from [bold]{res.path}[/] (version {res.version}; {res.live:,} "
        f"remain)"
    )
    if res.already_deleted:
        msg += f"; {res.already_deleted:,} were already deleted"
    if res.deleted and not res.dry_run:
        out.print(msg, highlight=False)
    elif res.already_deleted:
        out.print(f"{res.already_deleted:,} were already deleted", highlight=False)
    if res.not_found:
        shown = ", ".join(res.not_found[:5]) + (" …" if len(res.not_found) > 5 else "")
        out.print(
            f"[yellow]{len(res.not_found):,} ids not found in the index:[/] {escape(shown)}", highlight=False
        )


@app.command()
@friendly
def compact(index: IndexDir) -> None:
    """Rewrite the shards, vectors and FAISS index without the deleted objects."""
    from ..index.maintenance import compact_index

    res = compact_index(index, RichProgress())
    if not res.removed:
        out.print(f"{res.path}: nothing deleted, nothing to compact (version {res.version})", highlight=False)
        return
    out.print(
        (
            f"compacted [bold]{res.path}[/]: {res.removed:,} deleted objects removed, {res.count:,} remain "
            f"(version {res.version})"
        ),
        highlight=False,
    )


Kind = Annotated[
    str | None,
    typer.Option(
        "--index-type", help="auto | flat | hnsw | ivf-pq | a FAISS factory string (default: as built)."
    ),
]
ReindexNprobe = Annotated[int | None, typer.Option(help="IVF lists searched per query (default: as built).")]


@app.command()
@friendly
def reindex(
    index: IndexDir,
    kind: Kind = None,
    nprobe: ReindexNprobe = None,
) -> None:
    """Train and fill the FAISS candidate index again from the stored vectors (after many adds)."""
    import dataclasses

    from ..index.candidates import IndexSpec
    from ..index.maintenance import reindex as reindex_index
    from ..index.manifest import read_manifest

    spec = IndexSpec(**(read_manifest(index).faiss or {}).get("spec", {}))
    if kind is not None:
        spec = dataclasses.replace(spec, kind=kind)
    if nprobe is not None:
        spec = dataclasses.replace(spec, nprobe=nprobe)
    m = reindex_index(index, spec, RichProgress())
    f = m.faiss or {}
    out.print(
        (
            f"reindexed [bold]{index}[/]: FAISS {f.get('factory')} over {m.count:,} vectors (version "
            f"{m.version})"
        ),
        highlight=False,
    )


Catalog = Annotated[Path, typer.Option(help="HDF5 catalog or image folder of the objects to add.")]
Upsert = Annotated[
    bool, typer.Option("--upsert", help="Replace objects whose id is already in the index (default: refuse).")
]


@app.command()
@friendly
def add(
    index: IndexDir,
    catalog: Catalog,
    metadata: MetadataCsv = None,
    columns: Columns = None,
    upsert: Upsert = False,
    batch_size: Annotated[int, typer.Option(help="Images per model call.")] = 128,
    on_error: OnErrorFail = "fail",
    precision: AddPrecision = None,
) -> None:
    """Embed new objects with the index's own model and add them (no retraining of FAISS)."""
    from ..index.writes import add_objects

    with opened_catalog(catalog, metadata, on_error, columns) as cat:
        res = add_objects(
            index, cat, upsert=upsert, batch_size=batch_size, progress=RichProgress(), precision=precision
        )
    out.print(
        f"added {res.added:,} objects to [bold]{res.path}[/]"
        + (f" ({res.replaced:,} replaced)" if res.replaced else "")
        + f" in {res.seconds:.1f} s (version {res.version})",
        highlight=False,
    )
    if res.skipped:
        out.print(f"[yellow]skipped {len(res.skipped)} unreadable images[/]")


@app.command()
@friendly
def verify(index: IndexDir) -> None:
    """Hash every file of an index and check it against the manifest (e.g. after copying it)."""
    from ..index.verify import verify_index

    rep = verify_index(index)
    out.print(
        (
            f"index [bold]{rep.path}[/]: {rep.count:,} objects; {rep.files} files, {rep.bytes / 1e6:,.1f} "
            f"MB match manifest.json"
        ),
        highlight=False,
    )
