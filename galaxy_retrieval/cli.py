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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .errors import GalaxyRetrievalError

app = typer.Typer(
    name="gr",
    help="galaxy-retrieval: find the galaxies that look like this one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

EXIT_USER_ERROR = 2


def _friendly(fn: Callable) -> Callable:
    """Turn project errors into `error: <file>: <problem>` and exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GalaxyRetrievalError as e:
            err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
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


class RichProgress:
    """The library's Progress protocol drawn with rich bars (with rates) on stderr."""

    def __init__(self, console: Console = err, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet

    @contextmanager
    def task(self, description: str, total: float | None = None, unit: str = "it") -> Iterator[_RichHandle]:
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


class OnErrorChoice(str, Enum):
    fail = "fail"
    skip = "skip"


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
) -> None:
    """Render a synthetic ten-class Galaxy10-style catalog with GalSim."""
    from .synth import SynthConfig, generate_catalog

    path = generate_catalog(SynthConfig(n=n, size=size, seed=seed, workers=workers), out_path, progress=RichProgress())
    out.print(f"wrote {path} ({n} galaxies, {size}×{size}×3)")
    if sheet is not None:
        from .catalog import open_catalog
        from .catalog.preview import catalog_contact_sheet

        with open_catalog(path) as cat:
            out.print(f"contact sheet: {catalog_contact_sheet(cat, sheet)}")


@app.command()
@_friendly
def info(
    path: Path = typer.Argument(..., help="HDF5 catalog, image folder, or index directory."),
    metadata: Optional[Path] = typer.Option(None, help="CSV of an image folder (default: the one inside it)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Describe a catalog: count, image shape, labels, columns."""
    from .catalog import open_catalog

    with open_catalog(path, metadata=metadata) as cat:
        inf = cat.info()
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


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
