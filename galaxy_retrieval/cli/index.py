"""Commands that build and change an index: build-index, delete, compact, reindex, add, verify."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from .errors import friendly
from .options import COLUMNS_HELP, DtypeChoice, EngineChoice, MetricChoice, OnErrorChoice, opened_catalog
from .render import RichProgress, out

app = typer.Typer()


@app.command("build-index")
@friendly
def build_index_cmd(
    ctx: typer.Context,
    out_dir: Path = typer.Option(..., "--out", help="Index directory to create, e.g. indexes/demo."),
    checkpoint: Optional[Path] = typer.Option(None, help="Trained model (runs/NAME, or 'pretrained'); default: the model shipped in the package."),
    catalog: Optional[Path] = typer.Option(None, help="HDF5 catalog or image folder to embed."),
    metadata: Optional[Path] = typer.Option(None, help="CSV of an image folder (default: the one inside it)."),
    columns: Optional[str] = typer.Option(None, help=COLUMNS_HELP),
    from_shards: Optional[Path] = typer.Option(None, "--from-shards", help="Build from existing Parquet shards instead (no model)."),
    from_parquet: Optional[Path] = typer.Option(
        None, "--from-parquet", help="Build from embeddings made elsewhere: a Parquet file or folder (with --id-column and --vector-columns; no model)."
    ),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="With --from-parquet: the column of object ids."),
    vector_columns: Optional[str] = typer.Option(
        None, "--vector-columns", help="With --from-parquet: a glob of numeric columns in file order (e.g. 'feat_pca_*') or one list column."
    ),
    index_type: str = typer.Option("auto", "--index-type", help="auto | flat | hnsw | ivf-pq | a FAISS factory string."),
    metric: MetricChoice = typer.Option(MetricChoice.l2, help="Shortlist metric: l2 (raw vectors) or cosine."),
    dtype: DtypeChoice = typer.Option(DtypeChoice.float32, help="Stored embeddings."),
    shard_rows: int = typer.Option(8192, help="Objects per Parquet shard."),
    batch_size: int = typer.Option(128, help="Images per model call."),
    nprobe: int = typer.Option(256, help="IVF lists searched per query (stored as the default)."),
    ef_search: int = typer.Option(128, help="HNSW search breadth (stored as the default)."),
    ondisk: bool = typer.Option(False, "--ondisk", help="Keep the IVF inverted lists in a file the searcher memory-maps (catalogs larger than RAM)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a complete index or a different interrupted build at --out."),
    on_error: OnErrorChoice = typer.Option(OnErrorChoice.fail, help="Unreadable catalog images: fail, or skip and report."),
    engine: EngineChoice = typer.Option(EngineChoice.local, help="Who embeds and fills the index: this process, or Ray Data actors (the distributed extra)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="With --engine ray: auto (the cluster of `ray start`), ray://HOST:PORT, or local (start one here; the default)."),
    pipeline: Optional[Path] = typer.Option(None, help="Build settings from a pipeline TOML with build, index and ray tables (e.g. pipelines/scale-out.toml); flags given win."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Image folders: processes that decode and frame cutouts while this one embeds (default: one per CPU; 0: all in this process)."),
) -> None:
    """Embed a catalog into Parquet shards and build the FAISS candidate index (resumable)."""
    from ..index.build import build_index, build_index_from_shards
    from ..index.pipeline import load_build_pipeline

    # each flag typed on the command line overrides the pipeline file (or the default)
    where = {"dtype": "build", "shard_rows": "build", "batch_size": "build", "engine": "build", "overwrite": "build",
             "index_type": "index", "metric": "index", "nprobe": "index", "ef_search": "index", "ondisk": "index", "ray_address": "ray"}
    values = {"dtype": dtype.value, "shard_rows": shard_rows, "batch_size": batch_size, "engine": engine.value, "overwrite": overwrite,
              "index_type": index_type, "metric": metric.value, "nprobe": nprobe, "ef_search": ef_search, "ondisk": ondisk, "ray_address": ray_address}
    field = {"index_type": "kind", "ray_address": "address"}
    overrides: dict[str, dict[str, Any]] = {"build": {}, "index": {}, "ray": {}}
    for name, section in where.items():
        # by name: typer vendors its own click, whose ParameterSource is not click's
        if pipeline is None or getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT":
            if section != "ray" or values[name] is not None:
                overrides[section][field.get(name, name)] = values[name]
    cfg = load_build_pipeline(pipeline, overrides)
    if workers is not None:
        from dataclasses import replace

        from ..ingest import IngestConfig

        cfg = replace(cfg, ingest=replace(cfg.ingest or IngestConfig(), workers=workers))
    progress = RichProgress()
    if from_parquet is not None:
        from ..index.foreign import build_index_from_parquet

        if from_shards is not None or checkpoint is not None or catalog is not None:
            raise typer.BadParameter("--from-parquet builds without --from-shards/--checkpoint/--catalog")
        if id_column is None or vector_columns is None:
            raise typer.BadParameter("--from-parquet needs --id-column and --vector-columns")
        res = build_index_from_parquet(from_parquet, out_dir, id_column, vector_columns, cfg, progress)
    elif from_shards is not None:
        if checkpoint is not None or catalog is not None:
            raise typer.BadParameter("--from-shards builds without --checkpoint/--catalog; give one or the other")
        res = build_index_from_shards(from_shards, out_dir, cfg, progress)
    else:
        if catalog is None:
            raise typer.BadParameter("give --catalog (and --checkpoint, or the shipped model is used), or --from-shards")
        if checkpoint is None:
            from ..model.pretrained import PRETRAINED_NAME, pretrained_dir

            checkpoint = pretrained_dir()
            out.print(f"no --checkpoint: embedding with the model shipped in the package ({PRETRAINED_NAME}, docs/model-card.md)")
        with opened_catalog(catalog, metadata, on_error.value, columns) as cat:
            res = build_index(checkpoint, cat, out_dir, cfg, progress)
    m = res.manifest
    f = m.faiss or {}
    out.print(
        f"index [bold]{res.path}[/]: {m.count:,} objects × {m.dim} ({m.dtype}), {len(m.shards)} shards "
        f"({res.embedded_shards} embedded now, {res.reused_shards} reused), FAISS {f.get('factory')} — {f.get('chosen_because')}"
    )
    if res.skipped:
        out.print(f"[yellow]skipped {len(res.skipped)} unreadable images:[/]")
        for _, why in res.skipped[:20]:
            out.print(f"  {why}", highlight=False)
        if len(res.skipped) > 20:
            out.print(f"  … and {len(res.skipped) - 20} more")
    secs = ", ".join(f"{k} {v:.1f}s" for k, v in res.seconds.items())
    if secs:
        out.print(f"time: {secs}")



@app.command()
@friendly
def delete(
    index: Path = typer.Option(..., help="Index directory (indexes/NAME)."),
    ids: Optional[Path] = typer.Option(None, help="Text file of object ids to delete, one per line."),
    where: Optional[str] = typer.Option(None, help='Delete the objects matching this condition over the metadata columns (one boolean expression), e.g. "label = 9".'),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say which objects would be deleted; change nothing."),
) -> None:
    """Delete objects from an index (a tombstone list; `gr compact` later removes them from the files)."""
    from ..index.writes import delete_objects, read_id_list

    if (ids is None) == (where is None):
        raise typer.BadParameter("give --ids FILE or --where EXPR")
    res = delete_objects(index, read_id_list(ids) if ids is not None else None, where, dry_run=dry_run)
    if res.dry_run:
        shown = ", ".join(res.ids[:10]) + (" …" if len(res.ids) > 10 else "")
        out.print(f"would delete {res.deleted:,} objects from [bold]{res.path}[/] (dry run, nothing changed)" + (f": {escape(shown)}" if shown else ""), highlight=False)
    elif res.deleted == 0:
        what = "no object matches the condition" if where is not None else "none of the ids is in the index (or not deleted already)"
        out.print(f"[yellow]nothing deleted from[/] [bold]{res.path}[/]: {what} (version {res.version} unchanged)", highlight=False)
    msg = f"deleted {res.deleted:,} objects from [bold]{res.path}[/] (version {res.version}; {res.live:,} remain)"
    if res.already_deleted:
        msg += f"; {res.already_deleted:,} were already deleted"
    if res.deleted and not res.dry_run:
        out.print(msg, highlight=False)
    elif res.already_deleted:
        out.print(f"{res.already_deleted:,} were already deleted", highlight=False)
    if res.not_found:
        shown = ", ".join(res.not_found[:5]) + (" …" if len(res.not_found) > 5 else "")
        out.print(f"[yellow]{len(res.not_found):,} ids not found in the index:[/] {escape(shown)}", highlight=False)


@app.command()
@friendly
def compact(index: Path = typer.Option(..., help="Index directory (indexes/NAME).")) -> None:
    """Rewrite the shards, vectors and FAISS index without the deleted objects."""
    from ..index.writes import compact_index

    res = compact_index(index, RichProgress())
    if not res.removed:
        out.print(f"{res.path}: nothing deleted, nothing to compact (version {res.version})", highlight=False)
        return
    out.print(f"compacted [bold]{res.path}[/]: {res.removed:,} deleted objects removed, {res.count:,} remain (version {res.version})", highlight=False)


@app.command()
@friendly
def reindex(
    index: Path = typer.Option(..., help="Index directory (indexes/NAME)."),
    kind: Optional[str] = typer.Option(None, "--index-type", help="auto | flat | hnsw | ivf-pq | a FAISS factory string (default: as built)."),
    nprobe: Optional[int] = typer.Option(None, help="IVF lists searched per query (default: as built)."),
) -> None:
    """Train and fill the FAISS candidate index again from the stored vectors (after many adds)."""
    import dataclasses

    from ..index.candidates import IndexSpec
    from ..index.manifest import read_manifest
    from ..index.writes import reindex as reindex_index

    spec = IndexSpec(**(read_manifest(index).faiss or {}).get("spec", {}))
    if kind is not None:
        spec = dataclasses.replace(spec, kind=kind)
    if nprobe is not None:
        spec = dataclasses.replace(spec, nprobe=nprobe)
    m = reindex_index(index, spec, RichProgress())
    f = m.faiss or {}
    out.print(f"reindexed [bold]{index}[/]: FAISS {f.get('factory')} over {m.count:,} vectors (version {m.version})", highlight=False)


@app.command()
@friendly
def add(
    index: Path = typer.Option(..., help="Index directory (indexes/NAME)."),
    catalog: Path = typer.Option(..., help="HDF5 catalog or image folder of the objects to add."),
    metadata: Optional[Path] = typer.Option(None, help="CSV of an image folder (default: the one inside it)."),
    columns: Optional[str] = typer.Option(None, help=COLUMNS_HELP),
    upsert: bool = typer.Option(False, "--upsert", help="Replace objects whose id is already in the index (default: refuse)."),
    batch_size: int = typer.Option(128, help="Images per model call."),
    on_error: OnErrorChoice = typer.Option(OnErrorChoice.fail, help="Unreadable catalog images: fail, or skip and report."),
) -> None:
    """Embed new objects with the index's own model and add them (no retraining of FAISS)."""
    from ..index.writes import add_objects

    with opened_catalog(catalog, metadata, on_error.value, columns) as cat:
        res = add_objects(index, cat, upsert=upsert, batch_size=batch_size, progress=RichProgress())
    out.print(
        f"added {res.added:,} objects to [bold]{res.path}[/]" + (f" ({res.replaced:,} replaced)" if res.replaced else "")
        + f" in {res.seconds:.1f} s (version {res.version})",
        highlight=False,
    )
    if res.skipped:
        out.print(f"[yellow]skipped {len(res.skipped)} unreadable images[/]")


@app.command()
@friendly
def verify(index: Path = typer.Option(..., help="Index directory (indexes/NAME).")) -> None:
    """Hash every file of an index and check it against the manifest (e.g. after copying it)."""
    from ..index.verify import verify_index

    rep = verify_index(index)
    out.print(f"index [bold]{rep.path}[/]: {rep.count:,} objects; {rep.files} files, {rep.bytes / 1e6:,.1f} MB match manifest.json", highlight=False)
