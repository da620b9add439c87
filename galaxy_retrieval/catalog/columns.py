"""Recognising catalog column names: ``RA``, ``RAJ2000``, ``DEJ2000``, ``objid``, ``z``…

Astronomers' tables name the same quantity many ways (VizieR writes ``RAJ2000``, SDSS
``objid``, Galaxy Zoo ``id_str``, spectroscopic tables ``z``). Every reader maps its raw
column names through :func:`resolve_columns` once, so the rest of the package sees only the
canonical names (``ra``, ``dec``, ``object_id``, ``redshift``, ``label``, ``filename``), and
``gr info`` can say which column became which.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["ALIASES", "ColumnMap", "resolve_columns", "parse_column_mapping", "coordinates"]

#: canonical name -> recognised spellings (compared case-insensitively), best first
ALIASES: dict[str, tuple[str, ...]] = {
    "filename": ("filename", "file", "path", "image", "file_name", "filepath", "image_path", "image_file"),
    "object_id": ("object_id", "objid", "obj_id", "objectid", "id_str", "id", "source_id", "iauname"),
    "ra": ("ra", "raj2000", "ra_j2000", "_raj2000", "ra_deg", "radeg", "ra_icrs", "ra2000"),
    "dec": (
        "dec",
        "dej2000",
        "decj2000",
        "de_j2000",
        "dec_j2000",
        "_dej2000",
        "dec_deg",
        "decdeg",
        "dedeg",
        "de_icrs",
        "dec_icrs",
        "dec2000",
    ),
    "redshift": ("redshift", "z", "zspec", "z_spec", "specz", "spec_z"),
    "label": ("label", "ans", "class"),
}


@dataclass(frozen=True)
class ColumnMap:
    """Raw column name -> name used in the catalog (identity for unrecognised columns)."""

    names: dict[str, str]
    #: the renamed columns only, raw -> canonical, for ``gr info``
    renamed: dict[str, str] = field(default_factory=dict)

    def canonical(self, raw: str) -> str:
        return self.names.get(raw, raw)

    def raw(self, canonical: str) -> str | None:
        """The raw column that became ``canonical``, or None."""
        return next((r for r, c in self.names.items() if c == canonical), None)

    def describe(self) -> str | None:
        """ "RA → ra, DEJ2000 → dec" (None when nothing was renamed)."""
        if not self.renamed:
            return None
        return ", ".join(f"{r} → {c}" for r, c in self.renamed.items())


def parse_column_mapping(text: str | None) -> dict[str, str]:
    """Parse ``"RA=ra,DEC=dec,z=redshift"`` (raw name = catalog name) into a dict."""
    if text is None or not text.strip():
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        raw, sep, canon = part.partition("=")
        raw, canon = raw.strip(), canon.strip()
        if not sep or not raw or not canon:
            raise ConfigError(
                f"column mapping {part.strip()!r}: expected RAW=NAME, e.g. RA=ra,DEC=dec,z=redshift"
            )
        if raw in out:
            raise ConfigError(f"column mapping names {raw!r} twice")
        out[raw] = canon
    return out


def resolve_columns(
    header: Iterable[str], mapping: Mapping[str, str] | None = None, where: str = "catalog"
) -> ColumnMap:
    """Decide the catalog name of each raw column.

    ``mapping`` (raw -> name) wins; its raw names are matched exactly, then case-insensitively,
    and one that matches no column is an error (a typo must not be silently ignored). Then
    each canonical name is given to the first recognised spelling present, preferring the
    canonical spelling itself, so a table with both ``ra`` and ``RAJ2000`` keeps ``ra`` and
    leaves ``RAJ2000`` as it is. Two raw columns never end up with the same name.
    """
    cols = [h for h in header]
    names = {c: c for c in cols}
    taken: dict[str, str] = {}  # final name -> raw
    explicit: set[str] = set()
    for raw, canon in (mapping or {}).items():
        hit = raw if raw in names else next((c for c in cols if c.lower() == raw.lower()), None)
        if hit is None:
            raise ConfigError(
                f"{where}: column mapping names {raw!r}, which is not a column (columns: {', '.join(cols) or 'none'})"
            )
        if canon in taken:
            raise ConfigError(f"{where}: columns {taken[canon]!r} and {hit!r} are both mapped to {canon!r}")
        names[hit] = canon
        taken[canon] = hit
        explicit.add(hit)
    for canon, spellings in ALIASES.items():
        if canon in taken:
            continue
        lower = {c.lower(): c for c in reversed(cols) if c not in explicit}
        if canon in names and canon not in explicit:
            lower[canon] = canon  # the exact canonical spelling beats "RA" beside "ra"
        for s in spellings:
            raw = lower.get(s)
            if raw is not None and names[raw] == raw and raw not in taken.values():
                names[raw] = canon
                taken[canon] = raw
                break
    # an unmapped column already spelled like a name given to another column keeps its
    # raw name only if that does not collide; otherwise the earlier assignment stands and
    # this one is suffixed so no data is lost
    final: dict[str, str] = {}
    used: set[str] = set(taken)
    for c in cols:
        n = names[c]
        if c not in taken.values() and n in used:
            n = f"{c}_raw"
        final[c] = n
        used.add(n)
    renamed = {c: n for c, n in final.items() if n != c}
    return ColumnMap(final, renamed)


def coordinates(values: Any, kind: str) -> tuple[np.ndarray, list[int]]:
    """(float64 degrees with NaN where a value is missing, not a number or out of range for
    ``kind`` ("ra": [0, 360), "dec": [-90, 90]); the indices of the bad values, missing ones
    not counted). A catalog column of text with one "n/a" in it used to build fine and then
    make every sky query a traceback."""
    seq = values.to_pylist() if hasattr(values, "to_pylist") else list(values)
    out = np.full(len(seq), np.nan)
    bad: list[int] = []
    lo, hi = (0.0, 360.0) if kind == "ra" else (-90.0, 90.0)
    for i, v in enumerate(seq):
        if v is None or (isinstance(v, str) and not v.strip()):
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            bad.append(i)
            continue
        if np.isnan(x):
            continue
        if not (lo <= x < hi if kind == "ra" else lo <= x <= hi):
            bad.append(i)
            continue
        out[i] = x
    return out, bad
