"""Option types shared by the commands, as ``Annotated`` aliases, and the choices they offer.

A choice is read from the library constant that defines it (one definition): typer offers,
completes and checks those values. Choices whose constant lives beside torch (model presets,
training modes, splits, explanation methods) stay plain strings that the library checks with a
one-line error naming the choices, so that ``gr --help`` or ``gr verify`` never import torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ..catalog.base import OnError
from ..fetch.surveys import SURVEYS, CutoutFormat
from ..index.ray_engine import ENGINES
from ..search.hits import HIT_SUFFIXES
from ..suppress import PRESETS as SUPPRESS_PRESETS
from .render import err

__all__ = [
    "COLUMNS_HELP",
    "Survey",
    "CutoutFormat",
    "Engine",
    "HitsFormat",
    "Suppress",
    "OnError",
    "OnErrorFail",
    "IndexDir",
    "MetadataCsv",
    "Columns",
    "Checkpoint",
    "Precision",
    "AsJson",
    "OutputFormat",
    "opened_catalog",
]

# Literal[tuple] is Literal[a, b, …]
Survey = Literal[tuple(SURVEYS)]  # type: ignore[valid-type]
Engine = Literal[ENGINES]  # type: ignore[valid-type]
HitsFormat = Literal[tuple(HIT_SUFFIXES)]  # type: ignore[valid-type]
Suppress = Literal[("none", *SUPPRESS_PRESETS)]  # type: ignore[valid-type]

COLUMNS_HELP = (
    "Map catalog column names: RAW=NAME pairs, e.g. RA=ra,DEC=dec,z=redshift (common spellings are "
    "recognised anyway)."
)

IndexDir = Annotated[Path, typer.Option(help="Index directory (indexes/NAME).")]
MetadataCsv = Annotated[
    Path | None, typer.Option(help="CSV of an image folder (default: the one inside it).")
]
Columns = Annotated[str | None, typer.Option(help=COLUMNS_HELP)]
Checkpoint = Annotated[Path | None, typer.Option(help="Use this checkpoint (must match the index).")]
# a plain string: the choices (model.device.PRECISIONS) live beside torch; the library checks them
Precision = Annotated[
    str, typer.Option(help="auto (bf16 where the CPU/GPU has it natively, else fp32), fp32 or bf16.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
OnErrorFail = Annotated[OnError, typer.Option(help="Unreadable catalog images: fail, or skip and report.")]
OutputFormat = Annotated[
    HitsFormat | None,
    typer.Option(
        "--format",
        help="Format of --output (default: by its ending); fits and votable open in TOPCAT and Aladin.",
    ),
]


@contextmanager
def opened_catalog(
    path: Path, metadata: Path | None, on_error: str = "fail", columns: str | None = None
) -> Iterator[Any]:
    """open_catalog, telling the user what it warned about (an ignored CSV)."""
    from ..catalog import open_catalog, parse_column_mapping

    mapping = parse_column_mapping(columns)
    with open_catalog(path, metadata=metadata, on_error=on_error, columns=mapping) as cat:  # type: ignore[arg-type]
        for w in getattr(cat, "warnings", []):
            err.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
        yield cat
