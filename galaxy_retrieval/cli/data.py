"""Commands that make or fetch catalogs: synth, import-first, fetch-cutouts, download."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .errors import EXIT_USER_ERROR, friendly
from .options import COLUMNS_HELP, CutoutFormatChoice, OnErrorChoice, SurveyChoice
from .render import RichProgress, err, out

app = typer.Typer()


@app.command()
@friendly
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
    from ..paths import check_output_file
    from ..synth import SynthConfig, generate_catalog

    if sheet is not None:  # before rendering, not after
        check_output_file(sheet)
    path = generate_catalog(SynthConfig(n=n, size=size, seed=seed, workers=workers), out_path, progress=RichProgress(), overwrite=overwrite)
    out.print(f"wrote {path} ({n} galaxies, {size}×{size}×3)")
    if sheet is not None:
        from ..catalog import open_catalog
        from ..viz.catalog import catalog_contact_sheet

        with open_catalog(path) as cat:
            out.print(f"contact sheet: {catalog_contact_sheet(cat, sheet)}")


@app.command("import-first")
@friendly
def import_first_cmd(
    out_path: Path = typer.Option(Path("data/first.h5"), "--out", help="HDF5 catalog to write."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rewrite an existing file."),
    sheet: Optional[Path] = typer.Option(None, help="Also write a contact sheet PNG (6 sources of each class)."),
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



@app.command("fetch-cutouts")
@friendly
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
    columns: Optional[str] = typer.Option(None, help=COLUMNS_HELP),
    on_error: OnErrorChoice = typer.Option(OnErrorChoice.skip, help="A row without a cutout: skip it and report (default), or fail."),
    concurrency: int = typer.Option(8, help="Requests in flight at once."),
    timeout: float = typer.Option(30.0, help="Seconds to wait for the server, per request."),
    retries: int = typer.Option(4, help="Further attempts on 429/5xx and broken connections (exponential backoff)."),
) -> None:
    """Download survey cutouts at the targets' RA/Dec into an image-folder catalog (resumable)."""
    from ..catalog import parse_column_mapping
    from ..fetch import CutoutSpec, FetchCutoutsConfig, HttpConfig, fetch_cutouts

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
@friendly
def download(
    dataset: str = typer.Argument(..., help="galaxy10-decals: the public Galaxy10 DECaLS HDF5 (17,736 galaxies, about 2.7 GB)."),
    out_dir: Path = typer.Option(Path("data"), "--out", help="Folder to put the file in."),
    base_url: Optional[str] = typer.Option(None, help="A mirror: the folder URL holding the file."),
    sha256: Optional[str] = typer.Option(None, help="Expected SHA-256 (default: the published one)."),
    timeout: float = typer.Option(60.0, help="Seconds to wait for data before retrying."),
    retries: int = typer.Option(8, help="Further attempts after a dropped connection (each resumes)."),
) -> None:
    """Download a public catalog file: streamed, resumable (HTTP Range), checksum-verified."""
    from ..fetch import HttpConfig, download_dataset

    res = download_dataset(dataset, out_dir, http=HttpConfig(timeout_s=timeout, retries=retries), base_url=base_url, sha256=sha256, progress=RichProgress())
    for n in res.notes:
        err.print(f"[yellow]note:[/] {n}", highlight=False)
    if res.already_there:
        out.print(f"{res.path} is already there ({res.bytes:,} bytes, {res.verified} verified)", highlight=False)
    else:
        resumed = f", resumed at byte {res.resumed_from:,}" if res.resumed_from else ""
        out.print(f"downloaded {res.path} ({res.bytes:,} bytes{resumed}; {res.verified} verified)", highlight=False)
