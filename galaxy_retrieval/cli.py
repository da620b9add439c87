"""The `gr` command line. Each command parses, calls one library function, and renders.

This is the only module that imports typer and rich. Errors the user can cause arrive as
:class:`~galaxy_retrieval.errors.GalaxyRetrievalError` and are printed as one line with a
non-zero exit; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from .errors import ConfigError, GalaxyRetrievalError

app = typer.Typer(
    name="gr",
    help="galaxy-retrieval: find the galaxies that look like this one.",
    no_args_is_help=True,
    add_completion=True,  # gr --install-completion bash|zsh|fish
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Piped output (files, CI logs) gets a fixed, generous width instead of rich's default 80
# columns, so result tables are not squeezed into ellipses.
out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)

EXIT_USER_ERROR = 2


def _friendly(fn: Callable) -> Callable:
    """Turn project errors into `error: <file>: <problem>` and exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GalaxyRetrievalError as e:
            flags = " or ".join(f"--{o.replace('_', '-')}" for o in e.options)
            err.print(f"[bold red]error:[/] {escape(str(e))}" + (f" ({flags})" if flags else ""), highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except OSError as e:
            # a full disk inside a third-party writer (h5py, matplotlib) that the library did
            # not wrap: still one line naming the file, never a traceback
            from .atomic import is_no_space

            if not is_no_space(e):
                raise
            where = f"{escape(str(e.filename))}: " if e.filename else ""
            err.print(f"[bold red]error:[/] {where}no space left on the device; free some space and rerun", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/] (completed work is kept; rerun to resume)")
            raise typer.Exit(130) from None

    return wrapper


class _RichHandle:
    def __init__(self, progress: Progress, task_id: Any) -> None:
        self._p, self._id = progress, task_id

    def advance(self, n: float = 1) -> None:
        self._p.advance(self._id, n)

    def update(self, **fields: Any) -> None:
        text = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
        self._p.update(self._id, info=text)


class _PlainHandle:
    """Progress as whole lines (a log, CI, a pipe): a bar redrawn in place comes out there cut
    to the width of nothing (``320/3…``). A line every 10 % or 30 s, and one at the end."""

    def __init__(self, console: Console, description: str, total: float | None, unit: str) -> None:
        import time

        self._c, self._desc, self._total, self._unit = console, description, total, unit
        self._n = 0.0
        self._t0 = self._last_t = time.monotonic()
        self._last_frac = 0.0
        self._info = ""
        self._printed = -1.0  # the count of the last line printed

    def _line(self) -> str:
        import time

        dt = max(time.monotonic() - self._t0, 1e-9)
        done = f"{self._n:,.0f}/{self._total:,.0f} ({100 * self._n / self._total:.0f} %)" if self._total else f"{self._n:,.0f}"
        return f"{self._desc}: {done} {self._unit}, {self._n / dt:,.1f} {self._unit}/s, {dt:.0f} s" + (f"  {self._info}" if self._info else "")

    def advance(self, n: float = 1) -> None:
        import time

        self._n += n
        now = time.monotonic()
        frac = self._n / self._total if self._total else 0.0
        if frac - self._last_frac >= 0.1 or now - self._last_t >= 30:
            self._last_frac, self._last_t, self._printed = frac, now, self._n
            self._c.print(self._line(), highlight=False, soft_wrap=True)

    def update(self, **fields: Any) -> None:
        self._info = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())

    def close(self) -> None:
        if self._printed != self._n:  # the last line is not already the final count
            self._c.print(self._line(), highlight=False, soft_wrap=True)


class RichProgress:
    """The library's Progress protocol drawn with rich bars (with rates) on stderr; plain
    progress lines instead when stderr is not a terminal (logs, CI, pipes)."""

    def __init__(self, console: Console = err, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet

    @contextmanager
    def task(self, description: str, total: float | None = None, unit: str = "it") -> Iterator[Any]:
        if not self.quiet and not self.console.is_terminal:
            plain = _PlainHandle(self.console, description, total, unit)
            yield plain
            plain.close()
            return
        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        ]
        if unit == "B":  # downloads: sizes and speeds in kB/MB/GB, not raw byte counts
            columns = [TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=self.console, disable=self.quiet, transient=False) as p:
            tid = p.add_task(description, total=total, info="", rate="")
            handle = _RichHandle(p, tid)
            orig = handle.advance

            def advance(n: float = 1) -> None:
                orig(n)
                speed = p.tasks[0].speed
                if speed:
                    p.update(tid, rate=f"{speed:,.1f} {unit}/s")

            handle.advance = advance  # type: ignore[method-assign]
            yield handle

    def log(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, highlight=False)


def _print_version(value: bool) -> None:
    if value:
        from .version import __version__

        out.print(f"galaxy-retrieval {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    max_image_pixels: Optional[int] = typer.Option(
        None, "--max-image-pixels", help="Largest image decoded, in pixels (default 89,478,485); larger files are unreadable images (decompression bombs).", show_default=False
    ),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", callback=_print_version, is_eager=True),
) -> None:
    """galaxy-retrieval: find the galaxies that look like this one."""
    from .catalog.images import set_max_image_pixels

    try:
        set_max_image_pixels(max_image_pixels)
    except GalaxyRetrievalError as e:
        raise typer.BadParameter(str(e), param_hint="--max-image-pixels") from None


class EngineChoice(str, Enum):  # index.ray_engine.ENGINES
    local = "local"
    ray = "ray"


class OnErrorChoice(str, Enum):
    fail = "fail"
    skip = "skip"


_COLUMNS_HELP = "Map catalog column names: RAW=NAME pairs, e.g. RA=ra,DEC=dec,z=redshift (common spellings are recognised anyway)."


@contextmanager
def _open_catalog(path: Path, metadata: Optional[Path], on_error: str = "fail", columns: Optional[str] = None) -> Iterator[Any]:
    """open_catalog, telling the user what it warned about (an ignored CSV)."""
    from .catalog import open_catalog, parse_column_mapping

    with open_catalog(path, metadata=metadata, on_error=on_error, columns=parse_column_mapping(columns)) as cat:  # type: ignore[arg-type]
        for w in getattr(cat, "warnings", []):
            err.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
        yield cat


def _report_skipped(cat: Any) -> None:
    skipped = dict(getattr(cat, "skipped", []))  # a row may be met more than once
    if not skipped:
        return
    out.print(f"[yellow]skipped {len(skipped)} unreadable images:[/]")
    for why in list(skipped.values())[:20]:
        out.print(f"  {why}", highlight=False)
    if len(skipped) > 20:
        out.print(f"  … and {len(skipped) - 20} more")


# --------------------------------------------------------------------------- synth / info


@app.command()
@_friendly
def synth(
    n: int = typer.Option(2000, "--n", help="Number of galaxies."),
    size: int = typer.Option(256, help="Image side in pixels."),
    seed: int = typer.Option(0, help="Random seed (same seed, same file)."),
    out_path: Path = typer.Option(Path("data/demo.h5"), "--out", help="HDF5 file to write (Galaxy10 DECaLS layout)."),
    workers: Optional[int] = typer.Option(None, help="Rendering processes (default: all cores)."),
    sheet: Optional[Path] = typer.Option(None, help="Also write a contact sheet PNG (3 galaxies of each class)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file at --out."),
) -> None:
    """Render a synthetic ten-class Galaxy10-style catalog with GalSim."""
    from .paths import check_output_file
    from .synth import SynthConfig, generate_catalog

    if sheet is not None:  # before rendering, not after
        check_output_file(sheet)
    path = generate_catalog(SynthConfig(n=n, size=size, seed=seed, workers=workers), out_path, progress=RichProgress(), overwrite=overwrite)
    out.print(f"wrote {path} ({n} galaxies, {size}×{size}×3)")
    if sheet is not None:
        from .catalog import open_catalog
        from .viz.catalog import catalog_contact_sheet

        with open_catalog(path) as cat:
            out.print(f"contact sheet: {catalog_contact_sheet(cat, sheet)}")


@app.command("import-first")
@_friendly
def import_first_cmd(
    out_path: Path = typer.Option(Path("data/first.h5"), "--out", help="HDF5 catalog to write."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rewrite an existing file."),
    sheet: Optional[Path] = typer.Option(None, help="Also write a contact sheet PNG (6 sources of each class)."),
) -> None:
    """Import the 2,158 FIRST radio galaxies (FRI, FRII, compact, bent) of the firstgalaxydata wheel."""
    from .catalog import open_catalog
    from .catalog.first import import_first
    from .paths import check_output_file

    if sheet is not None:  # before importing, not after
        check_output_file(sheet)
    path = import_first(out_path, overwrite=overwrite, progress=RichProgress())
    with open_catalog(path) as cat:
        out.print(f"{path}: {len(cat):,} FIRST radio galaxies, classes {', '.join(cat.label_names.values())}")
        if sheet is not None:
            from .viz.catalog import catalog_contact_sheet

            out.print(f"contact sheet: {catalog_contact_sheet(cat, sheet, per_class=6)}")


@app.command()
@_friendly
def info(
    path: Path = typer.Argument(..., help="HDF5 catalog, image folder, index directory, or 'pretrained' (the shipped model)."),
    metadata: Optional[Path] = typer.Option(None, help="CSV of an image folder (default: the one inside it)."),
    columns: Optional[str] = typer.Option(None, help=_COLUMNS_HELP),
    framing_sheet: Optional[Path] = typer.Option(None, help="Also write a PNG of 24 random cutouts before and after framing (see --framing)."),
    framing: str = typer.Option("auto", help="The framing the sheet shows: auto, auto:MARGIN, fixed:F or none (as gr train)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Describe a catalog (count, image shape, labels, columns) or an index directory."""

    # an interrupted build (state, no manifest) is an index too: read_manifest says so
    from .index.layout import is_index_dir

    if str(path) == "pretrained" and not path.exists():
        from .model.pretrained import pretrained_info

        d = pretrained_info()
        if as_json:
            out.print_json(json.dumps(d, default=str))
            return
        t = Table(title="the model shipped in the package (docs/model-card.md)", show_header=False, title_justify="left")
        for k in ("preset", "path", "catalog", "catalog_size", "best_epoch", "train_seconds", "commit", "command", "weights_sha256"):
            if d.get(k) is not None:
                t.add_row(k, str(d[k]))
        out.print(t)
        return

    if is_index_dir(path):
        from .index.manifest import read_manifest

        m = read_manifest(path)
        if as_json:
            out.print_json(json.dumps(m.to_dict(), default=str))
            return
        t = Table(title=f"index {path}", show_header=False, title_justify="left")
        f = m.faiss or {}
        t.add_row("objects", f"{m.count:,}")
        t.add_row("embedding", f"{m.dim} × {m.dtype}")
        t.add_row("shards", f"{len(m.shards)} ({sum(s.bytes for s in m.shards) / 1e6:,.1f} MB)")
        lists = f"; inverted lists on disk, {f['ondisk'].get('bytes', 0) / 1e6:,.1f} MB memory-mapped" if f.get("ondisk") else ""
        t.add_row("candidate index", f"{f.get('factory')} ({f.get('metric')}), {f.get('bytes', 0) / 1e6:,.1f} MB{lists}")
        t.add_row("version", f"{m.version}" + (f", {m.count - m.live_count:,} deleted (gr compact removes them)" if m.tombstones else ""))
        bal = _ivf_balance(path, m)
        if bal is not None:
            t.add_row(
                "IVF lists",
                f"{bal['nlist']:,} lists, imbalance {bal['imbalance']:.2f} (1 = even), largest {bal['largest_list']:,} "
                f"vs mean {bal['mean_list']:,.1f}, {bal['empty_lists']:,} empty" + (" — consider gr reindex" if bal["imbalance"] > 3 else ""),
            )
        t.add_row("score weights", ", ".join(f"{k}={v:.3g}" for k, v in m.score_weights.items()))
        import numpy as np

        from .index.reference import ScoreReference

        ref = ScoreReference.from_manifest(m.extra)
        if ref is not None:  # what a hit's percentile is measured against
            qs = {p: float(np.interp(p / 100, ref.probs, ref.quantiles)) for p in (50, 99, 99.9, 99.99)}
            t.add_row("random pairs", f"{ref.pairs:,} scored: median {qs[50]:.4f}, " + ", ".join(f"p{p:g} {v:.4f}" for p, v in qs.items() if p != 50))
        else:
            t.add_row("random pairs", "not recorded (an older index): hits have no percentile")
        t.add_row("model", str((m.model or {}).get("preset", "—")) + f" sha256 {str((m.model or {}).get('sha256', ''))[:12]}")
        t.add_row("catalog", str(m.catalog.get("source")))
        if m.catalog.get("label_names"):
            t.add_row("classes", ", ".join(f"{k} {v}" for k, v in m.catalog["label_names"].items()))
        t.add_row("created", f"{m.created} (galaxy-retrieval {m.package_version})")
        out.print(t)
        return

    with _open_catalog(path, metadata, columns=columns) as cat:
        inf = cat.info()
        if framing_sheet is not None:
            from .viz.catalog import framing_sheet as write_sheet

            out.print(f"framing sheet ({framing}): {write_sheet(cat, framing_sheet, framing)}")
    if as_json:
        d = dict(inf.__dict__)
        d["label_counts"] = None if inf.label_counts is None else {str(k): v for k, v in inf.label_counts.items()}
        d["label_names"] = None if inf.label_names is None else {str(k): v for k, v in inf.label_names.items()}
        out.print_json(json.dumps(d, default=str))
        return
    t = Table(title=str(inf.path), show_header=False, title_justify="left")
    t.add_row("kind", inf.kind)
    t.add_row("objects", f"{inf.count:,}")
    t.add_row("image shape", "varies" if inf.image_shape is None else "×".join(map(str, inf.image_shape)) + f" {inf.dtype}")
    t.add_row("columns", ", ".join(inf.columns) or "—")
    for k, v in inf.extra.items():
        if v not in (None, [], {}):
            t.add_row(k, str(v))
    out.print(t)
    if inf.label_counts:
        lt = Table(title="labels", title_justify="left")
        lt.add_column("label", justify="right")
        lt.add_column("name")
        lt.add_column("count", justify="right")
        for k, c in inf.label_counts.items():
            lt.add_row(str(k), (inf.label_names or {}).get(k, ""), f"{c:,}")
        out.print(lt)


# --------------------------------------------------------------------------- fetching catalogs


class SurveyChoice(str, Enum):
    legacy = "legacy"
    sdss = "sdss"


class CutoutFormatChoice(str, Enum):
    jpeg = "jpeg"
    fits = "fits"


@app.command("fetch-cutouts")
@_friendly
def fetch_cutouts_cmd(
    targets: Path = typer.Option(..., help="CSV of sky positions: ra, dec (RA, RAJ2000, DEC, DEJ2000… recognised), optional object id and other columns."),
    out_dir: Path = typer.Option(..., "--out", help="Folder to write the cutouts and their metadata.csv into (an image-folder catalog)."),
    survey: SurveyChoice = typer.Option(SurveyChoice.legacy, help="legacy: Legacy Survey viewer (DR10, 0.262\"/px); sdss: SkyServer ImgCutout (DR18, 0.396\"/px)."),
    size: int = typer.Option(256, help="Cutout side in pixels."),
    pixscale: Optional[float] = typer.Option(None, help="Arcsec per pixel (default: the survey's native scale)."),
    fmt: CutoutFormatChoice = typer.Option(CutoutFormatChoice.jpeg, "--format", help="jpeg (colour composite) or fits (calibrated fluxes; Legacy only)."),
    bands: Optional[str] = typer.Option(None, help="FITS bands, e.g. grz (Legacy; default grz)."),
    layer: Optional[str] = typer.Option(None, help="Legacy viewer layer (default ls-dr10)."),
    base_url: Optional[str] = typer.Option(None, help="A mirror of the cutout service: replaces the URL before the endpoint name."),
    columns: Optional[str] = typer.Option(None, help=_COLUMNS_HELP),
    on_error: OnErrorChoice = typer.Option(OnErrorChoice.skip, help="A row without a cutout: skip it and report (default), or fail."),
    concurrency: int = typer.Option(8, help="Requests in flight at once."),
    timeout: float = typer.Option(30.0, help="Seconds to wait for the server, per request."),
    retries: int = typer.Option(4, help="Further attempts on 429/5xx and broken connections (exponential backoff)."),
) -> None:
    """Download survey cutouts at the targets' RA/Dec into an image-folder catalog (resumable)."""
    from .catalog import parse_column_mapping
    from .fetch import CutoutSpec, FetchCutoutsConfig, HttpConfig, fetch_cutouts

    cfg = FetchCutoutsConfig(
        targets=targets,
        out=out_dir,
        spec=CutoutSpec(survey=survey.value, size=size, pixscale=pixscale, bands=bands, format=fmt.value, layer=layer, base_url=base_url),
        http=HttpConfig(concurrency=concurrency, timeout_s=timeout, retries=retries),
        on_error=on_error.value,  # type: ignore[arg-type]
        columns=parse_column_mapping(columns),
    )
    res = fetch_cutouts(cfg, progress=RichProgress())
    for p in res.problems:
        err.print(f"[yellow]{targets}:[/] {p}", highlight=False, soft_wrap=True)
    summary = f"{res.fetched:,} fetched, {res.cached:,} already there, {len(res.problems):,} failed of {res.total:,} rows"
    if res.available == 0:
        err.print(f"[bold red]error:[/] no cutouts: {summary}", highlight=False)
        raise typer.Exit(EXIT_USER_ERROR)
    out.print(f"{summary} in {res.seconds:.1f} s; catalog [bold]{res.out}[/] ({res.csv})", highlight=False)


@app.command()
@_friendly
def download(
    dataset: str = typer.Argument(..., help="galaxy10-decals: the public Galaxy10 DECaLS HDF5 (17,736 galaxies, about 2.7 GB)."),
    out_dir: Path = typer.Option(Path("data"), "--out", help="Folder to put the file in."),
    base_url: Optional[str] = typer.Option(None, help="A mirror: the folder URL holding the file."),
    sha256: Optional[str] = typer.Option(None, help="Expected SHA-256 (default: the published one)."),
    timeout: float = typer.Option(60.0, help="Seconds to wait for data before retrying."),
    retries: int = typer.Option(8, help="Further attempts after a dropped connection (each resumes)."),
) -> None:
    """Download a public catalog file: streamed, resumable (HTTP Range), checksum-verified."""
    from .fetch import HttpConfig, download_dataset

    res = download_dataset(dataset, out_dir, http=HttpConfig(timeout_s=timeout, retries=retries), base_url=base_url, sha256=sha256, progress=RichProgress())
    for n in res.notes:
        err.print(f"[yellow]note:[/] {n}", highlight=False)
    if res.already_there:
        out.print(f"{res.path} is already there ({res.bytes:,} bytes, {res.verified} verified)", highlight=False)
    else:
        resumed = f", resumed at byte {res.resumed_from:,}" if res.resumed_from else ""
        out.print(f"downloaded {res.path} ({res.bytes:,} bytes{resumed}; {res.verified} verified)", highlight=False)


# --------------------------------------------------------------------------- train / evaluate


class PairModeChoice(str, Enum):
    paper = "paper"
    in_batch = "in_batch"


class AugmentChoice(str, Enum):
    galaxy = "galaxy"
    paper = "paper"


class SelectByChoice(str, Enum):
    split_loose_acc = "split_loose_acc"
    val_loss = "val_loss"


class PresetChoice(str, Enum):  # model.presets.PRESETS (a test keeps them equal)
    polar = "polar"
    small = "small"
    paper = "paper"
    tiny = "tiny"


class LossChoice(str, Enum):
    info_nce = "info_nce"
    contrastive = "contrastive"


class SuppressChoice(str, Enum):  # "none" and suppress.PRESETS (a test keeps them equal)
    none = "none"
    optical = "optical"
    radio = "radio"


class SplitChoice(str, Enum):
    test = "test"
    val = "val"
    train = "train"
    all = "all"


class MetricChoice(str, Enum):
    l2 = "l2"
    cosine = "cosine"


class DtypeChoice(str, Enum):
    float32 = "float32"
    float16 = "float16"


@app.command()
@_friendly
def train(
    catalog: Path = typer.Option(..., help="HDF5 catalog or image folder (labels, if any, are ignored)."),
    out_dir: Path = typer.Option(..., "--out", help="Run directory, e.g. runs/NAME."),
    metadata: Optional[Path] = typer.Option(None, help="CSV of an image folder."),
    columns: Optional[str] = typer.Option(None, help=_COLUMNS_HELP),
    on_error: OnErrorChoice = typer.Option(OnErrorChoice.fail, help="Unreadable catalog images: fail, or skip and report."),
    preset: PresetChoice = typer.Option(PresetChoice.polar, help="Model preset: polar (the rotation-invariant CNN on a polar resampling: measured best on real cutouts), small (the paper's ViT at 64 px), paper (the paper's ViT at 224 px), tiny."),
    epochs: int = typer.Option(30, help="Maximum epochs (early stopping may end sooner)."),
    batch_size: int = typer.Option(128, help="Images per training batch."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    weight_decay: float = typer.Option(5e-4, help="Adam weight decay."),
    augment: AugmentChoice = typer.Option(AugmentChoice.galaxy, help="Positive transforms: galaxy (every view gets any rotation, flips, zoom and shift, PSF blur, colour, stretch, brightness and noise: measured on real cutouts) or paper (§3.4's sets, --num-augmentations of them per image)."),
    num_augmentations: int = typer.Option(3, help="With --augment paper: transforms drawn per positive/negative image (§3.4)."),
    select_by: SelectByChoice = typer.Option(SelectByChoice.split_loose_acc, help="What picks the best epoch: split_loose_acc (loose accuracy against the whole validation split, label-free; tracks retrieval on real cutouts) or val_loss."),
    pair_mode: PairModeChoice = typer.Option(PairModeChoice.in_batch, help="in_batch: every other image of the batch is a negative (default, measured better); paper: one positive + one negative pair per image (§3.4)."),
    augment_anchors: bool = typer.Option(True, "--augment-anchors/--no-augment-anchors", help="Also augment the anchor image of each pair."),
    save_computations: bool = typer.Option(False, "--save-computations", help="Each image gets a positive OR a negative pair (paper option)."),
    patience: int = typer.Option(6, help="Early stopping: epochs without a better validation loss."),
    time_budget: Optional[float] = typer.Option(None, help="Stop before an epoch that would end past this many seconds."),
    loss: Optional[LossChoice] = typer.Option(
        None, help="Default: info_nce (InfoNCE over the batch, measured better) with in_batch pairs, contrastive (the paper's margin loss, §3.4) with paper pairs.", show_default=False
    ),
    temperature: float = typer.Option(0.1, help="InfoNCE temperature."),
    learn_weights: bool = typer.Option(False, "--learn-weights", help="Learn the score's cosine/L2/L3 weights with the model (§3.6); the index then reranks with them."),
    suppress_sources: SuppressChoice = typer.Option(SuppressChoice.none, help="Replace sources other than the central object by sky before training, indexing and querying: none, optical (stars, neighbours) or radio (keeps sources near the centre, e.g. lobes)."),
    framing: str = typer.Option("auto", help="The square the model sees: auto (around the central source, measured in each image: survey cutouts), auto:MARGIN (box half-side in Petrosian radii, default 1.5), fixed:F (central fraction F, e.g. fixed:0.4 for FIRST radio images), none (whole frame)."),
    seed: int = typer.Option(0, help="Seed of the split, initialisation and augmentations."),
    init: str = typer.Option("auto", help="Start from trained weights: auto (the shipped model when the preset matches it, i.e. polar: fine-tuning measured better than from scratch), pretrained, none (from scratch) or a run directory of the same preset."),
    fusion_share: Optional[float] = typer.Option(None, help="Append the polar Fourier descriptor to every indexed vector with this share of its squared norm (0 to <1; 0.1 was chosen on simulated galaxies); default: the network's vector alone."),
    precision: str = typer.Option("auto", help="auto (bf16 where the CPU/GPU has it natively, else fp32), fp32 or bf16."),
    compile_mode: str = typer.Option("auto", "--compile", help="torch.compile the model: auto (long runs), on or off."),
    device: str = typer.Option("auto", help="auto (cuda, mps, cpu), or a torch device."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last epoch."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run in --out."),
) -> None:
    """Train a model label-free on a catalog (contrastive pairs of augmented views, paper §3.4)."""
    from .framing import Framing
    from .train.augment import GALAXY_AUGMENT
    from .suppress import PRESETS as SUPPRESS_PRESETS
    from .train import TrainConfig
    from .train import train as train_fn

    from .model.presets import preset as preset_config
    from .model.pretrained import resolve_init

    cfg = TrainConfig(
        preset=preset.value, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
        num_augmentations=num_augmentations, augment=GALAXY_AUGMENT if augment == AugmentChoice.galaxy else None,
        select_by=select_by.value, pair_mode=pair_mode.value, augment_anchors=augment_anchors, save_computations=save_computations,
        patience=patience, time_budget_s=time_budget, seed=seed, device=device, learn_score_weights=learn_weights,
        loss=None if loss is None else loss.value, temperature=temperature,
        suppress_sources=None if suppress_sources == SuppressChoice.none else SUPPRESS_PRESETS[suppress_sources.value],
        framing=Framing.parse(framing), init=resolve_init(init, preset_config(preset.value)), fusion_share=fusion_share, precision=precision, compile=compile_mode,
    )
    with _open_catalog(catalog, metadata, on_error.value, columns) as cat:
        res = train_fn(cfg, cat, out_dir, progress=RichProgress(), resume=resume, overwrite=overwrite)
        _render_train(res)
        _report_skipped(cat)


def _render_train(res: Any) -> None:
    # None: the validation set is smaller than that batch size, so it was not measured
    acc = ", ".join(f"batch {b}: " + ("— (fewer validation images)" if v is None else f"{v:.3f}") for b, v in res.best_val_loose_acc.items())
    out.print(
        f"run [bold]{res.out_dir}[/]: best epoch {res.best_epoch}/{res.epochs_completed} ({res.stopped}), "
        f"val loss {res.best_val_loss:.4f}, val loose accuracy {acc}; {res.n_train} train / {res.n_val} val images, "
        f"{res.seconds:.0f} s on {res.device}"
    )
    if res.score_weights is not None:
        w = res.score_weights
        out.print(f"learned score weights: cos {w['cos']:.3f}, L2 {w['l2']:.3f}, L3 {w['l3']:.3f}")
    out.print(f"history: {Path(res.out_dir) / 'history.json'} and {Path(res.out_dir) / 'history.png'}")


@app.command()
@_friendly
def evaluate(
    checkpoint: Path = typer.Option(..., help="Trained model (runs/NAME)."),
    catalog: Path = typer.Option(..., help="The catalog it was trained on (split by the training seed)."),
    metadata: Optional[Path] = typer.Option(None, help="CSV of an image folder."),
    columns: Optional[str] = typer.Option(None, help=_COLUMNS_HELP),
    on_error: OnErrorChoice = typer.Option(OnErrorChoice.fail, help="Unreadable catalog images: fail, or skip and report."),
    split: SplitChoice = typer.Option(SplitChoice.test, help="Which part of the training split the queries come from."),
    baselines: bool = typer.Option(True, help="Also score the baselines: the untrained network, raw pixels, the polar Fourier descriptor and morphology."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Loose accuracy (batch 8, 64) and label retrieval precision/mAP against baselines."""
    from .evaluate import evaluate as evaluate_fn

    with _open_catalog(catalog, metadata, on_error.value, columns) as cat:
        rep = evaluate_fn(checkpoint, cat, split=split.value, progress=RichProgress(), baselines=baselines)
        if as_json:
            print(json.dumps(rep.to_dict(), default=str))
            return
        _render_eval(rep)
        _report_skipped(cat)


def _render_eval(rep: Any) -> None:
    methods = list(rep.loose_accuracy)
    t = Table(title=f"evaluation on the {rep.split} split: {rep.n_queries} queries against {rep.n_database} objects", title_justify="left")
    t.add_column("metric")
    for m in methods:
        t.add_column(m, justify="right")
    for b in rep.batch_sizes:
        t.add_row(f"loose accuracy @ batch {b}", *[_fmt(rep.loose_accuracy[m].get(b)) for m in methods])
    if rep.retrieval:
        names = list(next(iter(rep.retrieval.values())).macro)
        for name in names:
            t.add_row(f"macro {name}", *[_fmt(rep.retrieval[m].macro.get(name)) if m in rep.retrieval else "—" for m in methods])
    out.print(t)
    best = rep.best_baseline()
    if best is not None and "model" in rep.retrieval:
        m, b = rep.retrieval["model"].macro.get("precision@10"), rep.retrieval[best].macro.get("precision@10")
        if m is not None and b is not None:
            out.print(f"macro precision@10: model {m:.3f}, best baseline {best} {b:.3f} ({m - b:+.3f})", highlight=False)
    if rep.framing and rep.framing.get("spec", "none") != "none":
        fr = rep.framing
        out.print(f"framing {fr['spec']}: {fr['fallback']} of {fr['images']} images had no central source (whole frame kept)", highlight=False)
    if rep.retrieval and "model" in rep.retrieval:
        pc = rep.retrieval["model"].per_class
        key = next((k for k in ("precision@10", "precision@1") if pc and k in next(iter(pc.values()))), None)
        names = rep.label_names or {}
        if key:
            row = "  ".join(f"{names.get(c, c)}: {v[key]:.2f}" for c, v in pc.items())
            out.print(f"per-class {key} (model): {row}", highlight=False)


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}"


@app.command()
@_friendly
def demo(
    pipeline: Optional[Path] = typer.Option(None, help="Pipeline TOML (default: pipelines/demo.toml)."),
    fresh: bool = typer.Option(False, "--fresh", help="Redo every step instead of reusing finished ones."),
) -> None:
    """Synthetic catalog → training → evaluation → index → query with a mosaic, end to end."""
    from .demo import DEFAULT_PIPELINE, load_demo_config, run_demo

    cfg = load_demo_config(pipeline or DEFAULT_PIPELINE)
    res = run_demo(cfg, progress=RichProgress(), fresh=fresh)
    out.print(f"catalog: {res.catalog}  (contact sheet: {res.contact_sheet})")
    if res.train is not None:
        _render_train(res.train)
    _render_eval(res.evaluation)
    m = res.build.manifest
    out.print(f"index {res.build.path}: {m.count:,} objects, FAISS {(m.faiss or {}).get('factory')}, built in {sum(res.build.seconds.values()):.1f} s")
    names = res.query.label_names or {}
    hits = res.query.hits[0]
    t = Table(title=f"top {len(hits)} for {res.query.queries[0]} (object {res.query_object})", title_justify="left")
    for col in ("rank", "object id", "score", "label"):
        t.add_column(col)
    for h in hits:
        lab = h.metadata.get("label")
        t.add_row(str(h.rank), h.object_id, f"{h.score:.4f}", f"{lab} {names.get(lab, '')}" if lab is not None else "")
    out.print(t)
    out.print(f"query took {res.query.seconds * 1000:.1f} ms; mosaic: [bold]{res.query.mosaic}[/]")
    if res.explain is not None:
        out.print(f"why they matched ({res.explain.method} maps): [bold]{res.explain.out}[/]")
    out.print(f"search it in the browser: [bold]gr serve --index {res.build.path}[/], then open http://127.0.0.1:8000/?q={res.query_object}", highlight=False)


# --------------------------------------------------------------------------- index / query


@app.command("build-index")
@_friendly
def build_index_cmd(
    ctx: typer.Context,
    out_dir: Path = typer.Option(..., "--out", help="Index directory to create, e.g. indexes/demo."),
    checkpoint: Optional[Path] = typer.Option(None, help="Trained model (runs/NAME, or 'pretrained'); default: the model shipped in the package."),
    catalog: Optional[Path] = typer.Option(None, help="HDF5 catalog or image folder to embed."),
    metadata: Optional[Path] = typer.Option(None, help="CSV of an image folder (default: the one inside it)."),
    columns: Optional[str] = typer.Option(None, help=_COLUMNS_HELP),
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
    from .index.build import build_index, build_index_from_shards
    from .index.pipeline import load_build_pipeline

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

        from .ingest import IngestConfig

        cfg = replace(cfg, ingest=replace(cfg.ingest or IngestConfig(), workers=workers))
    progress = RichProgress()
    if from_parquet is not None:
        from .index.foreign import build_index_from_parquet

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
            from .model.pretrained import PRETRAINED_NAME, pretrained_dir

            checkpoint = pretrained_dir()
            out.print(f"no --checkpoint: embedding with the model shipped in the package ({PRETRAINED_NAME}, docs/model-card.md)")
        with _open_catalog(catalog, metadata, on_error.value, columns) as cat:
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


def _ivf_balance(path: Path, m: Any) -> Any:
    from .index.candidates import ivf_balance, load_faiss_index

    f = path / m.faiss_file
    return ivf_balance(load_faiss_index(f)) if f.is_file() else None


@app.command()
@_friendly
def delete(
    index: Path = typer.Option(..., help="Index directory (indexes/NAME)."),
    ids: Optional[Path] = typer.Option(None, help="Text file of object ids to delete, one per line."),
    where: Optional[str] = typer.Option(None, help='Delete the objects matching this condition over the metadata columns (one boolean expression), e.g. "label = 9".'),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say which objects would be deleted; change nothing."),
) -> None:
    """Delete objects from an index (a tombstone list; `gr compact` later removes them from the files)."""
    from .index.writes import delete_objects, read_id_list

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
@_friendly
def compact(index: Path = typer.Option(..., help="Index directory (indexes/NAME).")) -> None:
    """Rewrite the shards, vectors and FAISS index without the deleted objects."""
    from .index.writes import compact_index

    res = compact_index(index, RichProgress())
    if not res.removed:
        out.print(f"{res.path}: nothing deleted, nothing to compact (version {res.version})", highlight=False)
        return
    out.print(f"compacted [bold]{res.path}[/]: {res.removed:,} deleted objects removed, {res.count:,} remain (version {res.version})", highlight=False)


@app.command()
@_friendly
def reindex(
    index: Path = typer.Option(..., help="Index directory (indexes/NAME)."),
    kind: Optional[str] = typer.Option(None, "--index-type", help="auto | flat | hnsw | ivf-pq | a FAISS factory string (default: as built)."),
    nprobe: Optional[int] = typer.Option(None, help="IVF lists searched per query (default: as built)."),
) -> None:
    """Train and fill the FAISS candidate index again from the stored vectors (after many adds)."""
    import dataclasses

    from .index.candidates import IndexSpec
    from .index.manifest import read_manifest
    from .index.writes import reindex as reindex_index

    spec = IndexSpec(**(read_manifest(index).faiss or {}).get("spec", {}))
    if kind is not None:
        spec = dataclasses.replace(spec, kind=kind)
    if nprobe is not None:
        spec = dataclasses.replace(spec, nprobe=nprobe)
    m = reindex_index(index, spec, RichProgress())
    f = m.faiss or {}
    out.print(f"reindexed [bold]{index}[/]: FAISS {f.get('factory')} over {m.count:,} vectors (version {m.version})", highlight=False)


@app.command()
@_friendly
def add(
    index: Path = typer.Option(..., help="Index directory (indexes/NAME)."),
    catalog: Path = typer.Option(..., help="HDF5 catalog or image folder of the objects to add."),
    metadata: Optional[Path] = typer.Option(None, help="CSV of an image folder (default: the one inside it)."),
    columns: Optional[str] = typer.Option(None, help=_COLUMNS_HELP),
    upsert: bool = typer.Option(False, "--upsert", help="Replace objects whose id is already in the index (default: refuse)."),
    batch_size: int = typer.Option(128, help="Images per model call."),
    on_error: OnErrorChoice = typer.Option(OnErrorChoice.fail, help="Unreadable catalog images: fail, or skip and report."),
) -> None:
    """Embed new objects with the index's own model and add them (no retraining of FAISS)."""
    from .index.writes import add_objects

    with _open_catalog(catalog, metadata, on_error.value, columns) as cat:
        res = add_objects(index, cat, upsert=upsert, batch_size=batch_size, progress=RichProgress())
    out.print(
        f"added {res.added:,} objects to [bold]{res.path}[/]" + (f" ({res.replaced:,} replaced)" if res.replaced else "")
        + f" in {res.seconds:.1f} s (version {res.version})",
        highlight=False,
    )
    if res.skipped:
        out.print(f"[yellow]skipped {len(res.skipped)} unreadable images[/]")


@app.command()
@_friendly
def verify(index: Path = typer.Option(..., help="Index directory (indexes/NAME).")) -> None:
    """Hash every file of an index and check it against the manifest (e.g. after copying it)."""
    from .index.verify import verify_index

    rep = verify_index(index)
    out.print(f"index [bold]{rep.path}[/]: {rep.count:,} objects; {rep.files} files, {rep.bytes / 1e6:,.1f} MB match manifest.json", highlight=False)


class HitsFormatChoice(str, Enum):  # search.hits.HIT_SUFFIXES
    csv = "csv"
    parquet = "parquet"
    json = "json"
    fits = "fits"
    votable = "votable"


@app.command()
@_friendly
def query(
    index: Path = typer.Option(..., help="Index directory (indexes/NAME)."),
    image: Optional[list[Path]] = typer.Option(
        None, help="Query image(s): --image a.png b.png or --image a.png --image b.png; several run as one batch (one query each) unless combined."
    ),
    more_images: Optional[list[Path]] = typer.Argument(None, hidden=True, show_default=False, metavar="[IMAGE]..."),
    object_id: Optional[list[str]] = typer.Option(None, "--object-id", help="A catalog object to find neighbours of; repeat it to combine several."),
    negative: Optional[list[Path]] = typer.Option(None, help="An image the hits should NOT look like (repeatable); combines the examples."),
    negative_id: Optional[list[str]] = typer.Option(None, "--negative-id", help="A catalog object the hits should NOT look like (repeatable)."),
    targets: Optional[Path] = typer.Option(
        None, help="A CSV with one query per row: a column of object ids, or ra and dec, or image paths (relative to the CSV); all hits in one table with a query column."
    ),
    combine: bool = typer.Option(
        False,
        help="Treat every --image/--object-id as a positive example of ONE query: FAISS shortlists k×refine around the mean "
        "of the positives' embeddings, and candidates are ranked by their mean score to the positives minus their mean score "
        "to the negatives (implied by --negative/--negative-id or several --object-id).",
    ),
    ra: Optional[str] = typer.Option(
        None, help='Right ascension: degrees (148.05) or sexagesimal hours (09:52:12, 09h52m12s); or both coordinates in one string ("09h52m12s +02d09m15s") without --dec.'
    ),
    dec: Optional[str] = typer.Option(None, help="Declination: degrees (2.154) or sexagesimal (+02:09:15, +02d09m15s)."),
    radius: float = typer.Option(10.0, help="Search radius around --ra/--dec, arcsec."),
    k: int = typer.Option(10, help="Number of results."),
    refine: int = typer.Option(10, help="Shortlist k×refine candidates from FAISS, rerank them exactly."),
    exact: bool = typer.Option(False, "--exact", help="Bypass the index: exact scan of every vector (ground truth)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Use this checkpoint (must match the index)."),
    mosaic: Optional[Path] = typer.Option(None, help="Write the query and its hits as a PNG grid (5 per row, cropped to each galaxy)."),
    fetch: Optional[SurveyChoice] = typer.Option(None, help="With --ra/--dec: when no catalog object is within --radius, download this survey's cutout there and search with it."),
    fetch_size: int = typer.Option(256, help="Side of the fetched cutout in pixels (match the catalog's images)."),
    fetch_pixscale: Optional[float] = typer.Option(None, help="Arcsec per pixel of the fetched cutout (default: the survey's native scale)."),
    base_url: Optional[str] = typer.Option(None, help="A mirror of the cutout service (replaces the URL before the endpoint name)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Where fetched cutouts are kept (default ~/.cache/galaxy-retrieval/cutouts)."),
    where: Optional[str] = typer.Option(
        None, help='Only objects matching this condition over the metadata columns (one boolean expression: comparisons, AND/OR/NOT, IN, BETWEEN, LIKE, IS NULL, arithmetic), e.g. "label = 3 AND redshift < 0.05"; fewer than k hits when fewer match.'
    ),
    least: bool = typer.Option(False, "--least", help="The k least similar objects instead (an exact scan; anomaly hunting)."),
    min_separation: Optional[float] = typer.Option(
        None, help="Arcsec: drop a hit this close to the query object or to a better hit (duplicate cutouts of one galaxy) and refill the list."
    ),
    output: Optional[Path] = typer.Option(
        None, help="Also write the hits (rank, query, object id, score, percentile, terms, metadata) to .csv, .parquet, .json, .fits or .vot (VOTable); - writes them to stdout (with --format)."
    ),
    output_format: Optional[HitsFormatChoice] = typer.Option(None, "--format", help="Format of --output (default: by its ending); fits and votable open in TOPCAT and Aladin."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Find the k catalog galaxies most similar to an image, an object id, or a sky position."""
    from .search.query import QueryRequest, run_query

    spec = None
    if fetch is not None:
        from .fetch import CutoutSpec

        if ra is None:
            raise typer.BadParameter("--fetch applies to a query by --ra and --dec")
        spec = CutoutSpec(survey=fetch.value, size=fetch_size, pixscale=fetch_pixscale, base_url=base_url)

    if more_images and not image:
        raise typer.BadParameter(f"unexpected argument {more_images[0]}; query images follow --image")
    image = [*(image or ()), *(more_images or ())]
    ids = list(object_id or ())
    several = combine or bool(negative) or bool(negative_id) or len(ids) > 1
    res = run_query(
        QueryRequest(
            index=index,
            images=tuple(image or ()),
            object_id=ids[0] if ids and not several else None,
            positive_ids=tuple(ids) if several else (),
            negative_images=tuple(negative or ()),
            negative_ids=tuple(negative_id or ()),
            combine=several,
            targets=targets,
            ra=ra,
            dec=dec,
            radius_arcsec=radius,
            k=k,
            refine=refine,
            exact=exact,
            checkpoint=checkpoint,
            mosaic=mosaic,
            fetch=spec,
            cache_dir=cache_dir,
            where=where,
            order="least" if least else "most",
            min_separation_arcsec=min_separation,
            output=output,
            output_format=None if output_format is None else output_format.value,
        )
    )
    if res.fetched is not None:
        err.print(f"no catalog object within {radius:g}\" of RA {ra}, Dec {dec}: searched with the {fetch.value} cutout {res.fetched}", highlight=False)  # type: ignore[union-attr]
    if output is not None and str(output) == "-":  # stdout holds the hits file: the summary goes to stderr
        err.print(f"{sum(len(h) for h in res.hits)} hits in {res.seconds * 1000:.1f} ms", highlight=False)
        return
    if as_json:
        payload = {"seconds": res.seconds, "results": [{"query": q, "hits": [h.to_dict() for h in hs]} for q, hs in zip(res.queries, res.hits)]}
        if res.mosaic:
            payload["mosaic"] = str(res.mosaic)
        if res.fetched:
            payload["cutout"] = str(res.fetched)
        if res.skipped:
            payload["skipped"] = [{"target": t, "why": w} for t, w in res.skipped]
        print(json.dumps(payload, default=str))
        return
    for target, why in res.skipped[:20]:  # a batch skips its bad rows and says which
        err.print(f"[yellow]skipped[/] {escape(target)}: {escape(why)}", highlight=False, soft_wrap=True)
    if len(res.skipped) > 20:
        err.print(f"[yellow]… and {len(res.skipped) - 20} more skipped targets[/]")
    for q, hs in zip(res.queries, res.hits):
        if len(hs) < k:  # say why the list is short instead of leaving it to be noticed
            reasons = (["only that many match --where"] if where is not None else []) + (
                [f'the others lie within {min_separation:g}" of the query or of a better hit'] if min_separation is not None else []
            )
            err.print(f"[yellow]note:[/] {escape(q)}: {len(hs)} of {k} hits" + (f" ({'; '.join(reasons)})" if reasons else ""), highlight=False, soft_wrap=True)
    names = res.label_names or {}
    for q, hs in zip(res.queries, res.hits):
        t = Table(title=f"{'least similar to' if least else 'neighbours of'} {q}", title_justify="left", caption="score = (cos + 1/(1+L2) + 1/(1+L3)) / 3 by default; pct = its percentile among random catalog pairs")
        for col, just in (("#", "right"), ("object id", "left"), ("score", "right"), ("pct", "right"), ("cos", "right"), ("1/(1+L2)", "right"), ("1/(1+L3)", "right"), ("label", "left"), ("ra", "right"), ("dec", "right")):
            t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
        for h in hs:
            lab = h.metadata.get("label")
            lab_s = "" if lab is None else (names[lab] if isinstance(lab, int) and lab in names else str(lab))
            ra_v, dec_v = h.metadata.get("ra"), h.metadata.get("dec")
            t.add_row(
                str(h.rank), h.object_id, f"{h.score:.4f}", "—" if h.percentile is None else f"{h.percentile:.2f}", f"{h.cos:.3f}", f"{h.inv_l2:.3f}", f"{h.inv_l3:.3f}", lab_s,
                "" if ra_v is None else f"{ra_v:.4f}", "" if dec_v is None else f"{dec_v:.4f}",
            )
        out.print(t)
    out.print(
        f"{sum(len(h) for h in res.hits)} hits in {res.seconds * 1000:.1f} ms (index opened and model loaded in {res.open_seconds:.1f} s)"
        + (f"; mosaic: {res.mosaic}" if res.mosaic else "")
        + (f"; hits written to {res.output}" if res.output else "")
    )


@app.command()
@_friendly
def outliers(
    index: Path = typer.Option(..., help="Index directory (indexes/NAME)."),
    n: int = typer.Option(20, help="Number of objects to show."),
    k: int = typer.Option(50, help="Rank by the score to each object's k-th nearest neighbour (lowest: least like any other)."),
    refine: int = typer.Option(1, help="Shortlist k×refine neighbours from FAISS, rescore them exactly."),
    where: Optional[str] = typer.Option(None, help='Only show objects matching this SQL condition over the metadata columns, e.g. "redshift < 0.05".'),
    mosaic: Optional[Path] = typer.Option(None, help="Write them as a PNG grid, strangest first."),
    output: Optional[Path] = typer.Option(None, help="Also write them to .csv, .parquet, .json, .fits or .vot; - for stdout (with --format)."),
    output_format: Optional[HitsFormatChoice] = typer.Option(None, "--format", help="Format of --output (default: by its ending)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The catalog's strangest galaxies: the lowest score to their k-th nearest neighbour
    (computed once per index version with the FAISS index, then cached beside it)."""
    from .search.outliers import find_outliers

    res = find_outliers(
        index, n=n, k=k, refine=refine, where=where, mosaic=mosaic, output=output,
        output_format=None if output_format is None else output_format.value, progress=RichProgress(quiet=as_json or str(output) == "-"),
    )
    if output is not None and str(output) == "-":
        return
    if as_json:
        print(json.dumps({"k": k, "seconds": res.seconds, "cached": res.cached, "hits": [h.to_dict() for h in res.hits]}, default=str))
        return
    names = getattr(res.hits.searcher, "label_names", None) or {}
    t = Table(title=f"least like any other (score to the {k}-th neighbour, lowest first)", title_justify="left")
    for col, just in (("#", "right"), ("object id", "left"), (f"score@{k}", "right"), ("pct", "right"), ("label", "left"), ("ra", "right"), ("dec", "right")):
        t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for h in res.hits:
        lab = h.metadata.get("label")
        ra_v, dec_v = h.metadata.get("ra"), h.metadata.get("dec")
        t.add_row(
            str(h.rank), h.object_id, f"{h.score:.4f}", "—" if h.percentile is None else f"{h.percentile:.2f}",
            "" if lab is None else names.get(lab, str(lab)) if isinstance(lab, int) else str(lab),
            "" if ra_v is None else f"{ra_v:.4f}", "" if dec_v is None else f"{dec_v:.4f}",
        )
    out.print(t)
    out.print(
        f"{len(res.hits)} objects; scores {'read from the cache' if res.cached else 'computed'} in {res.seconds:.1f} s"
        + (f"; mosaic: {res.mosaic}" if res.mosaic else "") + (f"; written to {res.output}" if res.output else ""),
        highlight=False,
    )


class ExplainMethodChoice(str, Enum):
    similarity = "similarity"
    rollout = "rollout"


@app.command()
@_friendly
def explain(
    index: Path = typer.Option(..., help="Index directory (indexes/NAME)."),
    image: Optional[Path] = typer.Option(None, help="Query image."),
    object_id: Optional[str] = typer.Option(None, "--object-id", help="Or a catalog object as the query (itself left out of the hits)."),
    out_png: Path = typer.Option(..., "--out", help="PNG to write: the query and its hits, plain and with heat maps."),
    k: int = typer.Option(6, help="Number of results to explain."),
    method: ExplainMethodChoice = typer.Option(
        ExplainMethodChoice.similarity,
        help="similarity: which patches make up the score s(query, hit) (integrated gradients, per pair); "
        "rollout: where each embedding draws from (attention rollout, the same for any pair).",
    ),
    steps: int = typer.Option(32, help="Integration steps of --method similarity (fewer: faster, sums less exact)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Use this checkpoint (must match the index)."),
) -> None:
    """Show what the matches of a query image were based on: a heat map over each image's patches."""
    from .explain import explain_query

    res = explain_query(index, image, out_png, k=k, method=method.value, steps=steps, checkpoint=checkpoint, object_id=object_id)
    out.print(f"explained {len(res.hits)} hits of {image if image is not None else f'object {object_id}'} ({res.method}) in {res.seconds:.1f} s: {res.out}", highlight=False)


@app.command()
@_friendly
def serve(
    index: Path = typer.Option(..., help="Index directory (indexes/NAME)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; 0.0.0.0 opens the server to the network."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, help="Server processes, each with its own copy of the model."),
    api_key: Optional[str] = typer.Option(None, envvar="GR_API_KEY", help="Require this key in the X-API-Key header of /api/ requests."),
    cors: Optional[list[str]] = typer.Option(None, help="Allow pages from this origin (repeatable) to call the API; none by default."),
    max_upload_mb: float = typer.Option(10.0, help="Largest image upload accepted."),
    checkpoint: Optional[Path] = typer.Option(None, help="Use this checkpoint (must match the index)."),
) -> None:
    """Serve the search API (/api/, documented at /docs) and the search page (/) for one index."""
    try:
        from .serve import ServeConfig, bind_banner, run_server
    except ImportError as e:
        raise ConfigError(f"gr serve needs the serve extra ({e.name} is missing): pip install -e '.[serve]'") from None

    cfg = ServeConfig(index=index, checkpoint=checkpoint, api_key=api_key, cors_origins=tuple(cors or ()), max_upload_bytes=int(max_upload_mb * 1024 * 1024))
    url, warning = bind_banner(host, port, api_key)
    if warning:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    err.print(f"serving [bold]{escape(str(index))}[/] at [bold]{escape(url)}[/] (API docs: /docs); Ctrl-C stops", highlight=False, soft_wrap=True)
    run_server(cfg, host=host, port=port, workers=workers)


@app.command("rerank-benchmark")
@_friendly
def rerank_benchmark_cmd(
    index: Optional[Path] = typer.Option(None, help="Index directory (indexes/NAME): its embeddings, queries = its own objects, themselves excluded."),
    synthetic: Optional[int] = typer.Option(None, help="Instead: a synthetic clustered catalog of this many vectors (held-out queries)."),
    dim: int = typer.Option(2048, help="Synthetic: vector dimension."),
    dtype: DtypeChoice = typer.Option(DtypeChoice.float32, help="Synthetic: stored vectors."),
    workdir: Path = typer.Option(Path("data/bench"), help="Cache of synthetic vectors, ground truth and built indexes (reused)."),
    queries: int = typer.Option(1000, help="Query vectors (ground truth for all; latency on up to --latency-queries)."),
    k: str = typer.Option("10", help="Results per query, comma-separated (recall@1/10/100 where ≤ k)."),
    indexes: Optional[list[str]] = typer.Option(None, help="Index types: flat, hnsw, ivf-pq, existing, or FAISS factory strings; ';' separates (or quote them: flat,\"PCA128,HNSW32\"); repeatable. Default: PCA64,IVF{nlist},SQ8;PCA64,HNSW32 ({nlist}: 4·√N rounded to a power of 2)."),
    refine: str = typer.Option("1,2,5,10,20", help="Shortlist factors: FAISS returns k×refine candidates, reranked exactly."),
    nprobe: str = typer.Option("32,64,128,256,512", help="IVF lists probed (IVF indexes)."),
    ef_search: str = typer.Option("64,128,256,512", help="HNSW search breadth (HNSW indexes)."),
    metric: Optional[MetricChoice] = typer.Option(None, help="Shortlist metric (default: l2, or the index's).", show_default=False),
    ef_construction: int = typer.Option(40, help="HNSW build breadth."),
    train_size: int = typer.Option(100_000, help="Vectors sampled to train PCA/IVF/PQ."),
    threads: Optional[int] = typer.Option(None, help="Threads for builds, batches and the exact scan (default: all cores)."),
    latency_queries: Optional[int] = typer.Option(None, help="Queries timed one at a time (default: min(queries, 1000))."),
    exact_queries: int = typer.Option(3, help="Exact one-query scans timed (median)."),
    cold: bool = typer.Option(False, "--cold", help="Evict the vectors from the page cache before each timed pass (catalog on disk)."),
    readahead: bool = typer.Option(False, "--readahead", help="With --cold: keep the OS readahead on the vectors (default: MADV_RANDOM)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Recompute ground truth and rebuild indexes instead of reusing the cache."),
    seed: int = typer.Option(0, help="Synthetic data, query choice and index training seed."),
    out_json: Optional[Path] = typer.Option(None, "--out-json", help="Result JSON (default: benchmarks/results/rerank_<catalog>.json)."),
    pareto_only: bool = typer.Option(False, "--pareto-only", help="Show only the Pareto-optimal points (the JSON has all)."),
) -> None:
    """Recall and speed of FAISS shortlist + exact rerank against the exact weighted score."""
    from .bench import DEFAULT_INDEXES, RerankBenchConfig, run_rerank_benchmark

    cfg = RerankBenchConfig(
        index=index, synthetic=synthetic, dim=dim, dtype=dtype.value, workdir=workdir, queries=queries, k=k,
        indexes=tuple(indexes) if indexes else DEFAULT_INDEXES, refine=refine, nprobe=nprobe, ef_search=ef_search,
        metric=None if metric is None else metric.value, ef_construction=ef_construction, train_size=train_size, threads=threads,
        latency_queries=latency_queries, exact_queries=exact_queries, cold=cold, readahead=readahead, rebuild=rebuild, seed=seed, out_json=out_json,
    )
    res = run_rerank_benchmark(cfg, progress=RichProgress())
    ds, ex = res.dataset, res.exact
    out.print(
        f"{ds.get('n', 0):,} × {ds.get('dim')} {ds.get('dtype')} ({ds['source']}), {ds['queries']:,} queries; "
        f"exact scan {ex.single_query_s * 1e3:.1f} ms/query = {ex.scan_over_read:.2f}× a plain read ({ex.read_s * 1e3:.1f} ms), "
        f"{ex.threads} threads; load average {res.machine.get('load_average')} → {res.machine.get('load_average_end')}",
        highlight=False,
    )
    bt = Table(title="candidate indexes", title_justify="left")
    for col in ("index", "factory", "build s", "train s", "add s", "index B/vec", "vectors B/vec", "note"):
        bt.add_column(col, justify="left" if col in ("index", "factory", "note") else "right")
    for b in res.builds:
        bt.add_row(
            b.name, b.factory, _fmt_num(b.build_s, ".1f"), _fmt_num(b.train_s, ".1f"), _fmt_num(b.add_s, ".1f"),
            f"{b.index_bytes_per_vector:,.0f}", f"{ds['vector_bytes']:,}" + (" (disk)" if cfg.cold else ""), "reused" if b.reused else "built now",
        )
    out.print(bt)
    shown = res.pareto if pareto_only else res.points
    t = Table(title=f"{'Pareto front' if pareto_only else 'operating points'} (★ = Pareto-optimal in recall@10 and p50)", title_justify="left")
    for col in ("index", "nprobe", "ef", "k", "refine", "cand", "R@1", "R@10", "R@100", "p50 ms", "p99 ms", "search/rerank ms", "QPS batch", "× exact", "★"):
        t.add_column(col, justify="left" if col == "index" else "right")
    for p in shown:
        t.add_row(
            p.factory, _fmt_num(p.nprobe, "d"), _fmt_num(p.ef_search, "d"), str(p.k), str(p.refine), f"{p.candidates_mean:.0f}",
            *(_fmt_num(p.recall.get(r), ".4f") for r in (1, 10, 100)),
            f"{p.p50_ms:.2f}", f"{p.p99_ms:.2f}", f"{p.search_p50_ms:.2f}/{p.rerank_p50_ms:.2f}", f"{p.qps_batch:,.0f}",
            f"{p.speedup_vs_exact:,.0f}", "★" if p.pareto else "",
        )
    out.print(t)
    best = res.best(0.99)
    if best is not None:
        out.print(
            f"fastest with recall@10 ≥ 0.99: {best.factory} nprobe={best.nprobe} ef={best.ef_search} refine={best.refine}: "
            f"R@10 {best.recall[10]:.4f}, p50 {best.p50_ms:.2f} ms, {best.speedup_vs_exact:,.0f}× faster than the exact scan",
            highlight=False,
        )
    if res.json_path is not None:
        out.print(f"wrote {res.json_path}")


def _fmt_num(v: Any, spec: str) -> str:
    return "—" if v is None else format(v, spec)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
