"""What a query returns: ranked hits with the score, its three terms, and catalog metadata."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Hit",
    "Hits",
    "SkyHits",
    "HIT_FORMATS",
    "HIT_SUFFIXES",
    "hits_table",
    "astropy_table",
    "check_hits_path",
    "hits_format",
    "write_hits",
]

# format → file name endings; FITS and VOTable are what TOPCAT and Aladin read
HIT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "csv": (".csv",),
    "parquet": (".parquet",),
    "json": (".json",),
    "fits": (".fits", ".fit", ".fts"),
    "votable": (".vot", ".votable", ".xml"),
}
HIT_FORMATS = tuple(e for exts in HIT_SUFFIXES.values() for e in exts)

# units of the columns a hits table may hold (catalog metadata included), for astropy tables
_UNITS = {
    "ra": "deg",
    "dec": "deg",
    "percentile": "percent",
    "pxscale": "arcsec / pix",
    "separation_arcsec": "arcsec",
}
_DESCRIPTIONS = {
    "query": "what this hit answers",
    "rank": "1 = most similar",
    "object_id": "catalog object id",
    "row": "row in the source catalog",
    "score": "w1 cos + w2/(1+L2) + w3/(1+L3) (GalaxIDNet score)",
    "percentile": "percentile of the score among random pairs of catalog objects",
    "cos": "cosine similarity of the embeddings",
    "inv_l2": "1/(1 + L2 distance)",
    "inv_l3": "1/(1 + L3 distance)",
    "ra": "right ascension (ICRS)",
    "dec": "declination (ICRS)",
}


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
    # the score's percentile among random catalog pairs (the index's score reference); None
    # for an index built before it was recorded, or for a combined score (several examples)
    percentile: float | None = None

    @property
    def label(self) -> Any:
        return self.metadata.get("label")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Hits(list):
    """The ranked hits of one query: a plain ``list`` of :class:`Hit`, which also becomes an
    astropy Table (:meth:`to_table`, with units) and shows as a table with thumbnails in a notebook."""

    def __init__(self, hits: Sequence[Hit] = (), *, searcher: Any = None, query: str | None = None) -> None:
        super().__init__(hits)
        self.searcher = searcher  # for thumbnails and label names; None: a table without them
        self.query = query

    def to_arrow(self) -> Any:
        """The hits as an Arrow table (rank, object_id, row, score, percentile, terms, metadata)."""
        return hits_table([self.query or ""], [self]).drop_columns(["query"])

    def to_table(self) -> Any:
        """The hits as an ``astropy.table.Table``: ra/dec in degrees, percentile in percent,
        descriptions on the columns; ``.write("hits.fits")`` or ``format="votable"`` for TOPCAT."""
        meta = {"query": self.query} if self.query else {}
        if self.searcher is not None:
            meta["index"] = str(self.searcher.path)
        return astropy_table(self.to_arrow(), meta)

    def _repr_html_(self) -> str:
        from ..viz.notebook import hits_html

        return hits_html(self, self.searcher)


@dataclass(frozen=True)
class SkyHits:
    """The answer to a query by sky position: the neighbours of the catalog object found
    there, or, with none within the radius, of the survey cutout fetched at the position."""

    hits: Hits
    ra: float
    dec: float
    object_id: str | None  # the catalog object queried with; None when a cutout was fetched
    separation_arcsec: float | None  # of that object from (ra, dec)
    cutout: Path | None = None  # the fetched cutout, when one was used
    why_fetched: str | None = None  # why the catalog had no answer (no object near, no ra/dec)

    def describe(self) -> str:
        if self.object_id is not None:
            return f'object {self.object_id} ({self.separation_arcsec:.1f}" from RA {self.ra:g}, Dec {self.dec:g})'
        return f"cutout at RA {self.ra:g}, Dec {self.dec:g} ({self.cutout})"

    def to_table(self) -> Any:
        """The hits as an astropy Table (:meth:`Hits.to_table`), the query position in its meta."""
        t = Hits(self.hits, searcher=getattr(self.hits, "searcher", None), query=self.describe()).to_table()
        t.meta.update({"query_ra": self.ra, "query_dec": self.dec})
        return t

    def _repr_html_(self) -> str:
        return Hits(
            self.hits, searcher=getattr(self.hits, "searcher", None), query=self.describe()
        )._repr_html_()


def hits_table(queries: Sequence[str], hits: Sequence[Sequence[Hit]]) -> Any:
    """The hits of several queries as one Arrow table: ``query``, ``rank``, ``object_id``,
    ``row``, ``score``, ``percentile``, the score's three terms, then every metadata column (null where a hit lacks it)."""
    import pyarrow as pa

    recs = []
    for q, hs in zip(queries, hits):
        for h in hs:
            recs.append(
                {
                    "query": q,
                    "rank": h.rank,
                    "object_id": h.object_id,
                    "row": h.row,
                    "score": h.score,
                    "percentile": h.percentile,
                    "cos": h.cos,
                    "inv_l2": h.inv_l2,
                    "inv_l3": h.inv_l3,
                    **h.metadata,
                }
            )
    fixed = {
        "query": pa.string(),
        "rank": pa.int64(),
        "object_id": pa.string(),
        "row": pa.int64(),
        "score": pa.float64(),
        "percentile": pa.float64(),
        "cos": pa.float64(),
        "inv_l2": pa.float64(),
        "inv_l3": pa.float64(),
    }
    names = list(fixed) + list(dict.fromkeys(k for r in recs for k in r if k not in fixed))
    cols = {}
    for name in names:
        values = [r.get(name) for r in recs]
        try:
            cols[name] = pa.array(values, type=fixed.get(name))
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed kinds in one metadata column
            cols[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.table(cols)


def astropy_table(table: Any, meta: dict[str, Any] | None = None) -> Any:
    """An Arrow hits table as an ``astropy.table.Table`` with units and descriptions. Nulls
    become masked entries (numbers) or empty strings (FITS has no null string)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from astropy import units as u
    from astropy.table import Column, MaskedColumn, Table

    cols = []
    for name in table.column_names:
        col = table.column(name)
        t = col.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            if col.null_count:
                fill = False if pa.types.is_boolean(t) else 0
                data = pc.fill_null(col, pa.scalar(fill, t)).to_numpy(zero_copy_only=False)
                c: Any = MaskedColumn(data, name=name, mask=col.is_null().to_numpy(zero_copy_only=False))
            else:
                c = Column(col.to_numpy(zero_copy_only=False), name=name)
        else:  # strings, and anything else (lists, dates) as its text
            vals = ["" if v is None else (v if isinstance(v, str) else str(v)) for v in col.to_pylist()]
            c = Column(np.array(vals, dtype=str) if vals else np.array([], dtype="U1"), name=name)
        if name in _UNITS:
            c.unit = u.Unit(_UNITS[name])
        if name in _DESCRIPTIONS:
            c.description = _DESCRIPTIONS[name]
        cols.append(c)
    return Table(cols, meta=dict(meta or {}))


def hits_format(path: str | Path, fmt: str | None = None) -> str:
    """The format a hits file is written in: ``fmt`` if given, else the file's ending."""
    from ..errors import OutputPathError

    if fmt is not None:
        f = fmt.lower()
        if f not in HIT_SUFFIXES:
            raise OutputPathError(f"unknown hits format {fmt!r}; choose {', '.join(HIT_SUFFIXES)}")
        return f
    p = Path(path)
    if str(path) == "-":
        raise OutputPathError(
            f"writing hits to stdout (-) needs a format: {', '.join(HIT_SUFFIXES)}"
        ).resolved_by("format")
    name = p.name.lower()
    for f, exts in HIT_SUFFIXES.items():
        if name.endswith(exts):
            return f
    raise OutputPathError(
        f"{p}: unknown hits format {p.suffix or '(no extension)'!r}; name the file {', '.join(HIT_FORMATS)} or give a format"
    ).resolved_by("format")


def check_hits_path(path: str | Path, fmt: str | None = None) -> Path:
    """``path`` names a writable file of a known format (or ``-``, stdout, with ``fmt``);
    checked before searching."""
    from ..paths import check_output_file

    hits_format(path, fmt)
    if str(path) == "-":
        return Path("-")
    return check_output_file(Path(path))


def _encode(table: Any, fmt: str, dst: Any) -> None:
    """Write ``table`` (Arrow) in ``fmt`` to ``dst`` (a path or a binary file object)."""
    import json

    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if fmt == "csv":
        pcsv.write_csv(table, dst)
    elif fmt == "parquet":
        pq.write_table(table, dst)
    elif fmt == "json":
        text = (json.dumps(table.to_pylist(), default=str, indent=1) + "\n").encode()
        if isinstance(dst, (str, Path)):
            Path(dst).write_bytes(text)
        else:
            dst.write(text)
    else:
        import warnings

        t = astropy_table(table)
        if fmt == "fits":  # FITS text is ASCII: a non-ASCII id or path keeps its escapes (\xe9), not an error
            for c in t.colnames:
                if t[c].dtype.kind == "U":
                    t[c] = [v.encode("ascii", "backslashreplace").decode("ascii") for v in t[c]]
        with warnings.catch_warnings():
            # astropy warns that a VOTable's unicode column becomes char[]: the ids are ASCII
            warnings.simplefilter("ignore")
            t.write(
                dst,
                format="fits" if fmt == "fits" else "votable",
                **({"overwrite": True} if isinstance(dst, (str, Path)) else {}),
            )


def write_hits(path: str | Path, table: Any, fmt: str | None = None) -> Path:
    """Write a :func:`hits_table` as CSV, Parquet, JSON (a list of records), FITS or VOTable,
    atomically; ``path`` ``-`` writes to stdout (then ``fmt`` is needed)."""
    import io
    import sys

    from ..atomic import atomic_path

    f = hits_format(path, fmt)
    if str(path) == "-":
        buf = io.BytesIO()
        _encode(table, f, buf)
        sys.stdout.flush()
        sys.stdout.buffer.write(buf.getvalue())
        sys.stdout.buffer.flush()
        return Path("-")
    p = check_hits_path(path, fmt)
    with atomic_path(p) as tmp:
        _encode(table, f, tmp)
    return p
