"""Reading a targets table (one sky position per row) for cutout downloads.

Columns are recognised as in catalog CSVs (``RA``/``RAJ2000``/``ra_deg``, ``DEC``/``DEJ2000``,
``objid``/``id_str``…, see :mod:`galaxy_retrieval.catalog.columns`). A row that cannot be used
(a coordinate that is not a number or off the sky, an id already taken) becomes a
:class:`RowProblem` naming its line; a table without RA/Dec columns is an error.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog.columns import resolve_columns
from ..errors import CatalogError
from .surveys import check_coordinates

__all__ = ["Target", "RowProblem", "read_targets", "safe_file_stem"]


@dataclass(frozen=True)
class Target:
    line: int  # line in the targets file (the header is line 1)
    ra: float
    dec: float
    object_id: str
    extra: dict[str, str] = field(default_factory=dict)  # other columns, carried to the catalog CSV


@dataclass(frozen=True)
class RowProblem:
    """One row that produced no cutout, and why."""

    line: int
    object_id: str | None
    reason: str

    def __str__(self) -> str:
        who = f" ({self.object_id})" if self.object_id else ""
        return f"line {self.line}{who}: {self.reason}"


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def safe_file_stem(object_id: str) -> str:
    """A file name for an object id: ids like "J1200+0230 / SDSS" become "J1200+0230___SDSS"."""
    stem = _UNSAFE.sub("_", object_id.strip())
    return stem if stem and not stem.startswith(".") else f"_{stem}"


def default_id(ra: float, dec: float) -> str:
    return f"{ra:.5f}{dec:+.5f}"


def read_targets(
    path: str | Path, columns: Mapping[str, str] | None = None
) -> tuple[list[Target], list[RowProblem]]:
    p = Path(path)
    if not p.is_file():
        raise CatalogError(f"{p}: targets file not found")
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    except (UnicodeDecodeError, csv.Error) as e:
        raise CatalogError(f"{p}: not a readable CSV ({e})") from None
    if not header:
        raise CatalogError(f"{p}: empty targets file (no header row)")
    cmap = resolve_columns(header, columns, where=str(p))
    ra_col, dec_col, id_col = cmap.raw("ra"), cmap.raw("dec"), cmap.raw("object_id")
    if ra_col is None or dec_col is None:
        missing = " and ".join(n for n, c in (("RA", ra_col), ("Dec", dec_col)) if c is None)
        raise CatalogError(
            f"{p}: no {missing} column (found {', '.join(header)}); name them ra/dec (RA, RAJ2000, DEC, DEJ2000… are "
            f"recognised) or map them, e.g. alpha=ra,delta=dec"
        )
    if not rows:
        raise CatalogError(f"{p}: targets file has a header but no rows")
    extra_cols = [c for c in header if c not in (ra_col, dec_col, id_col) and cmap.canonical(c) != "filename"]
    targets: list[Target] = []
    problems: list[RowProblem] = []
    stems: dict[str, int] = {}
    for i, r in enumerate(rows):
        line = i + 2
        oid = r.get(id_col, "") if id_col else ""
        vals = {}
        for name, col in (("RA", ra_col), ("Dec", dec_col)):
            try:
                vals[name] = float(r.get(col, ""))
            except ValueError:
                text = r.get(col, "")
                problems.append(
                    RowProblem(
                        line, oid or None, f"{name} {text!r} is not a number" if text else f"no {name}"
                    )
                )
                break
        if len(vals) < 2:
            continue
        ra, dec = vals["RA"], vals["Dec"]
        why = check_coordinates(ra, dec)
        if why is not None:
            problems.append(RowProblem(line, oid or None, why))
            continue
        oid = oid or default_id(ra, dec)
        stem = safe_file_stem(oid)
        if stem in stems:
            problems.append(
                RowProblem(line, oid, f"same object id (or file name {stem!r}) as line {stems[stem]}")
            )
            continue
        stems[stem] = line
        targets.append(Target(line, ra, dec, oid, {cmap.canonical(c): r.get(c, "") for c in extra_cols}))
    return targets, problems
