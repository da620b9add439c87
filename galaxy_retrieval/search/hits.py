"""What a query returns: ranked hits with the score, its three terms, and catalog metadata."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = ["Hit", "SkyHits", "HIT_FORMATS", "hits_table", "check_hits_path", "write_hits"]

HIT_FORMATS = (".csv", ".parquet", ".json")


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based
    object_id: str
    row: int  # position in the source catalog
    score: float  # w1·cos + w2·inv_l2 + w3·inv_l3
    cos: float
    inv_l2: float  # 1 / (1 + ‖a − b‖₂)
    inv_l3: float  # 1 / (1 + ‖a − b‖₃)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> Any:
        return self.metadata.get("label")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SkyHits:
    """The answer to a query by sky position: the neighbours of the catalog object found
    there, or, with none within the radius, of the survey cutout fetched at the position."""

    hits: list[Hit]
    ra: float
    dec: float
    object_id: str | None  # the catalog object queried with; None when a cutout was fetched
    separation_arcsec: float | None  # of that object from (ra, dec)
    cutout: Path | None = None  # the fetched cutout, when one was used
    why_fetched: str | None = None  # why the catalog had no answer (no object near, no ra/dec)

    def describe(self) -> str:
        if self.object_id is not None:
            return f"object {self.object_id} ({self.separation_arcsec:.1f}\" from RA {self.ra:g}, Dec {self.dec:g})"
        return f"cutout at RA {self.ra:g}, Dec {self.dec:g} ({self.cutout})"


def hits_table(queries: Sequence[str], hits: Sequence[Sequence[Hit]]) -> Any:
    """The hits of several queries as one Arrow table: ``query``, ``rank``, ``object_id``,
    ``row``, ``score``, its three terms, then every metadata column (null where a hit lacks it)."""
    import pyarrow as pa

    recs = []
    for q, hs in zip(queries, hits):
        for h in hs:
            recs.append({"query": q, "rank": h.rank, "object_id": h.object_id, "row": h.row, "score": h.score, "cos": h.cos, "inv_l2": h.inv_l2, "inv_l3": h.inv_l3, **h.metadata})
    fixed = {"query": pa.string(), "rank": pa.int64(), "object_id": pa.string(), "row": pa.int64(), "score": pa.float64(), "cos": pa.float64(), "inv_l2": pa.float64(), "inv_l3": pa.float64()}
    names = list(fixed) + list(dict.fromkeys(k for r in recs for k in r if k not in fixed))
    cols = {}
    for name in names:
        values = [r.get(name) for r in recs]
        try:
            cols[name] = pa.array(values, type=fixed.get(name))
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed kinds in one metadata column
            cols[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.table(cols)


def check_hits_path(path: str | Path) -> Path:
    """``path`` names a writable file of a known format (by extension); checked before searching."""
    from ..errors import OutputPathError
    from ..paths import check_output_file

    p = Path(path)
    if p.suffix.lower() not in HIT_FORMATS:
        raise OutputPathError(f"{p}: unknown hits format {p.suffix or '(no extension)'!r}; name the file .csv, .parquet or .json")
    return check_output_file(p)


def write_hits(path: str | Path, table: Any) -> Path:
    """Write a :func:`hits_table` as CSV, Parquet or JSON (a list of records), atomically."""
    import json

    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from ..atomic import atomic_path

    p = check_hits_path(path)
    with atomic_path(p) as tmp:
        ext = p.suffix.lower()
        if ext == ".csv":
            pcsv.write_csv(table, tmp)
        elif ext == ".parquet":
            pq.write_table(table, tmp)
        else:
            tmp.write_text(json.dumps(table.to_pylist(), default=str, indent=1) + "\n")
    return p
