"""Commands that make or fetch catalogs: synth, import-first, fetch-cutouts, download."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .errors import EXIT_USER_ERROR, friendly
from .options import Columns, CutoutFormat, OnError, Survey
from .render import RichProgress, err, out

app = typer.Typer()


OutPath = Annotated[Path, typer.Option("--out", help="HDF5 file to write (Galaxy10 DECaLS layout).")]
Workers = Annotated[int | None, typer.Option(help="Rendering processes (default: all cores).")]
Sheet = Annotated[
    Path | None, typer.Option(help="Also write a contact sheet PNG (3 galaxies of each class).")
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing file at --out.")]


@app.command()
@friendly
def synth(
    n: Annotated[int, typer.Option("--n", help="Number of galaxies.")] = 2000,
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = 256,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same file).")] = 0,
    out_path: OutPath = Path("data/demo.h5"),
    workers: Workers = None,
    sheet: Sheet = None,
    overwrite: Overwrite = False,
) -> None:
    """Render a synthetic ten-class Galaxy10-style catalog with GalSim."""
    from ..paths import check_output_file
    from ..synth import SynthConfig, generate_catalog

    if sheet is not None:  # before rendering, not after
        check_output_file(sheet)
    path = generate_catalog(
        SynthConfig(n=n, size=size, seed=seed, workers=workers),
        out_path,
        progress=RichProgress(),
        overwrite=overwrite,
    )
    out.print(f"wrote {path} ({n} galaxies, {size}×{size}×3)")
    if sheet is not None:
        from ..catalog import open_catalog
        from ..viz.catalog import catalog_contact_sheet

        with open_catalog(path) as cat:
            out.print(f"contact sheet: {catalog_contact_sheet(cat, sheet)}")


ImportFirstSheet = Annotated[
    Path | None, typer.Option(help="Also write a contact sheet PNG (6 sources of each class).")
]


@app.command("import-first")
@friendly
def import_first_cmd(
    out_path: Annotated[Path, typer.Option("--out", help="HDF5 catalog to write.")] = Path("data/first.h5"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Rewrite an existing file.")] = False,
    sheet: ImportFirstSheet = None,
) -> None:
    """Import the 2,158 FIRST radio galaxies (FRI, FRII, compact, bent) of the firstgalaxydata wheel."""
    from ..catalog import open_catalog
    from ..catalog.first import import_first
    from ..paths import check_output_file

    if sheet is not None:  # before importing, not after
        check_output_file(sheet)
    path = import_first(out_path, overwrite=overwrite, progress=RichProgress())
    with open_catalog(path) as cat:
        out.print(f"{path}: {len(cat):,} FIRST radio galaxies, classes {', '.join(cat.label_names.values())}")
        if sheet is not None:
            from ..viz.catalog import catalog_contact_sheet

            out.print(f"contact sheet: {catalog_contact_sheet(cat, sheet, per_class=6)}")


Targets = Annotated[
    Path,
    typer.Option(
        help=(
            "CSV of sky positions: ra, dec (RA, RAJ2000, DEC, DEJ2000… recognised), optional object id and "
            "other columns."
        )
    ),
]
OutDir = Annotated[
    Path,
    typer.Option(
        "--out", help="Folder to write the cutouts and their metadata.csv into (an image-folder catalog)."
    ),
]
Survey = Annotated[
    Survey,
    typer.Option(
        help='legacy: Legacy Survey viewer (DR10, 0.262"/px); sdss: SkyServer ImgCutout (DR18, 0.396"/px).'
    ),
]
Pixscale = Annotated[
    float | None, typer.Option(help="Arcsec per pixel (default: the survey's native scale).")
]
Fmt = Annotated[
    CutoutFormat,
    typer.Option("--format", help="jpeg (colour composite) or fits (calibrated fluxes; Legacy only)."),
]
Bands = Annotated[str | None, typer.Option(help="FITS bands, e.g. grz (Legacy; default grz).")]
BaseUrl = Annotated[
    str | None,
    typer.Option(help="A mirror of the cutout service: replaces the URL before the endpoint name."),
]
OnError = Annotated[
    OnError, typer.Option(help="A row without a cutout: skip it and report (default), or fail.")
]
Retries = Annotated[
    int, typer.Option(help="Further attempts on 429/5xx and broken connections (exponential backoff).")
]


@app.command("fetch-cutouts")
@friendly
def fetch_cutouts_cmd(
    targets: Targets,
    out_dir: OutDir,
    survey: Survey = "legacy",
    size: Annotated[int, typer.Option(help="Cutout side in pixels.")] = 256,
    pixscale: Pixscale = None,
    fmt: Fmt = "jpeg",
    bands: Bands = None,
    layer: Annotated[str | None, typer.Option(help="Legacy viewer layer (default ls-dr10).")] = None,
    base_url: BaseUrl = None,
    columns: Columns = None,
    on_error: OnError = "skip",
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 8,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server, per request.")] = 30.0,
    retries: Retries = 4,
) -> None:
    """Download survey cutouts at the targets' RA/Dec into an image-folder catalog (resumable)."""
    from ..catalog import parse_column_mapping
    from ..fetch import CutoutSpec, FetchCutoutsConfig, HttpConfig, fetch_cutouts

    cfg = FetchCutoutsConfig(
        targets=targets,
        out=out_dir,
        spec=CutoutSpec(
            survey=survey,
            size=size,
            pixscale=pixscale,
            bands=bands,
            format=fmt,
            layer=layer,
            base_url=base_url,
        ),
        http=HttpConfig(concurrency=concurrency, timeout_s=timeout, retries=retries),
        on_error=on_error,  # type: ignore[arg-type]
        columns=parse_column_mapping(columns),
    )
    res = fetch_cutouts(cfg, progress=RichProgress())
    for p in res.problems:
        err.print(f"[yellow]{targets}:[/] {p}", highlight=False, soft_wrap=True)
    summary = (
        f"{res.fetched:,} fetched, {res.cached:,} already there, {len(res.problems):,} failed of "
        f"{res.total:,} rows"
    )
    if res.available == 0:
        err.print(f"[bold red]error:[/] no cutouts: {summary}", highlight=False)
        raise typer.Exit(EXIT_USER_ERROR)
    out.print(f"{summary} in {res.seconds:.1f} s; catalog [bold]{res.out}[/] ({res.csv})", highlight=False)


Dataset = Annotated[
    str,
    typer.Argument(help="galaxy10-decals: the public Galaxy10 DECaLS HDF5 (17,736 galaxies, about 2.7 GB)."),
]
DownloadBaseUrl = Annotated[str | None, typer.Option(help="A mirror: the folder URL holding the file.")]
Sha256 = Annotated[str | None, typer.Option(help="Expected SHA-256 (default: the published one).")]
DownloadRetries = Annotated[
    int, typer.Option(help="Further attempts after a dropped connection (each resumes).")
]


@app.command()
@friendly
def download(
    dataset: Dataset,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to put the file in.")] = Path("data"),
    base_url: DownloadBaseUrl = None,
    sha256: Sha256 = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for data before retrying.")] = 60.0,
    retries: DownloadRetries = 8,
) -> None:
    """Download a public catalog file: streamed, resumable (HTTP Range), checksum-verified."""
    from ..fetch import HttpConfig, download_dataset

    res = download_dataset(
        dataset,
        out_dir,
        http=HttpConfig(timeout_s=timeout, retries=retries),
        base_url=base_url,
        sha256=sha256,
        progress=RichProgress(),
    )
    for n in res.notes:
        err.print(f"[yellow]note:[/] {n}", highlight=False)
    if res.already_there:
        out.print(
            f"{res.path} is already there ({res.bytes:,} bytes, {res.verified} verified)", highlight=False
        )
    else:
        resumed = f", resumed at byte {res.resumed_from:,}" if res.resumed_from else ""
        out.print(
            f"downloaded {res.path} ({res.bytes:,} bytes{resumed}; {res.verified} verified)", highlight=False
        )
