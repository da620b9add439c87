"""The `gr query` use case as one library call: open, query, optionally draw the mosaic."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import QueryError
from ..paths import check_output_file
from .hits import Hit, check_hits_path, hits_table, write_hits
from .options import SearchOptions
from .searcher import GalaxySearcher

__all__ = ["QueryRequest", "QueryResult", "run_query"]


@dataclass(frozen=True)
class QueryRequest:
    index: Path
    images: tuple[Path, ...] = ()
    object_id: str | None = None
    ra: float | str | None = None  # degrees, or sexagesimal hours ("09:52:12"); or RA and Dec in one string
    dec: float | str | None = None
    radius_arcsec: float = 10.0
    # k, refine, exact, nprobe, ef_search, where (a filter), order, min_separation_arcsec
    options: SearchOptions = SearchOptions()
    checkpoint: Path | None = None
    mosaic: Path | None = None
    fetch: Any = None  # a fetch.CutoutSpec: with no catalog object near ra/dec, search the survey's cutout
    cache_dir: Path | None = (
        None  # where fetched cutouts are kept (default ~/.cache/galaxy-retrieval/cutouts)
    )
    http: Any = None  # a fetch.HttpConfig for that download
    output: Path | None = None  # the hits as .csv, .parquet, .json, .fits or .vot (Path("-"): stdout)
    output_format: str | None = None  # csv, parquet, json, fits or votable (default: by the file's ending)
    # several examples as one query (GalaxySearcher.query_examples): the images and object ids
    # above plus these are positives, the negatives below count against a candidate. One id
    # here alone (no negatives, combine off) is the plain object-id query; several combine.
    positive_ids: tuple[str, ...] = ()
    negative_images: tuple[Path, ...] = ()
    negative_ids: tuple[str, ...] = ()
    combine: bool = False  # the images/ids are positives of one query even with no negative
    targets: Path | None = None  # a CSV of object ids, ra/dec, or image paths: one query per row


@dataclass(frozen=True)
class QueryResult:
    queries: list[str]  # what each row of `hits` answers
    hits: list[list[Hit]]
    seconds: float  # query time, opening the index excluded
    mosaic: Path | None
    label_names: dict[int, str] | None
    open_seconds: float = 0.0  # opening + verifying the index, loading the model, warming the kernel
    fetched: Path | None = None  # the survey cutout searched with (a sky query with nothing near)
    output: Path | None = None  # where the hits table was written
    # targets of a batch that could not be searched (unknown id, nothing at the position,
    # unreadable image): (the target, why); the others were
    skipped: tuple[tuple[str, str], ...] = ()

    def table(self) -> Any:
        """All hits as one Arrow table with a ``query`` column."""
        return hits_table(self.queries, self.hits)


def _open(req: QueryRequest, model: bool) -> tuple[GalaxySearcher, float]:
    """Open the index for a request, check its filter (a bad one is refused before the model
    loads), warm what the queries will use; returns the searcher and the seconds it took."""
    t_open = time.perf_counter()
    s = GalaxySearcher.open(req.index, checkpoint=req.checkpoint)
    if req.options.where is not None:
        s.select(req.options.where)
    s.warmup(model=model)
    return s, time.perf_counter() - t_open


def _checked(req: QueryRequest) -> QueryRequest:
    """The request as it will run: refusals that need no index first; one object id given as
    an example, with nothing to combine it with, becomes the plain object-id query."""
    if req.fetch is not None and req.ra is None:
        raise QueryError("a cutout fetch applies to a query by RA and Dec only").resolved_by(
            "fetch", "ra", "dec"
        )
    alone = not (req.combine or req.negative_images or req.negative_ids)
    if alone and len(req.positive_ids) == 1 and req.object_id is None:
        return replace(req, object_id=req.positive_ids[0], positive_ids=())
    return req


def run_query(req: QueryRequest) -> QueryResult:
    req = _checked(req)
    if req.targets is not None:
        return _run_targets(req)
    if req.combine or req.positive_ids or req.negative_images or req.negative_ids:
        return _run_examples(req)
    kinds = [bool(req.images), req.object_id is not None, req.ra is not None or req.dec is not None]
    if sum(kinds) != 1:
        raise QueryError(
            "give exactly one kind of query: images (one or more), an object id, or a sky position (RA and Dec)"
        ).resolved_by("image", "object_id", "ra", "dec")
    coord = None
    if kinds[2]:
        from .sky import parse_sky

        coord = parse_sky(req.ra, req.dec)  # a bad position is refused before the index opens
    if req.mosaic is not None:
        check_output_file(req.mosaic)
    if req.output is not None:
        check_hits_path(req.output, req.output_format)
    s, open_seconds = _open(req, model=bool(req.images) or req.fetch is not None)
    t0 = time.perf_counter()
    fetched: Path | None = None
    if req.images:
        hits = s.query_batch(list(req.images), options=req.options)
        labels = [str(p) for p in req.images]
    elif req.object_id is not None:
        hits = [s.query(object_id=req.object_id, options=req.options)]
        labels = [f"object {req.object_id}"]
    else:
        sky = s.query_sky(
            coord,
            radius_arcsec=req.radius_arcsec,
            fetch=req.fetch,
            cache_dir=req.cache_dir,
            http=req.http,
            options=req.options,
        )
        hits = [sky.hits]
        labels = [sky.describe()]
        if sky.cutout is not None:
            fetched = sky.cutout
    seconds = time.perf_counter() - t0
    output = (
        write_hits(req.output, hits_table(labels, hits), req.output_format)
        if req.output is not None
        else None
    )
    mosaic = None
    names = s.label_names
    if req.mosaic is not None:
        if req.images or fetched is not None:
            queries: list[Any] = list(req.images) if req.images else [fetched]
        else:
            queries = [req.object_id if req.object_id is not None else labels[0].split()[1]]
        mosaic = _write_mosaics(req.mosaic, [s.mosaic(hs, query=q) for q, hs in zip(queries, hits)])
    return QueryResult(labels, hits, seconds, mosaic, names, open_seconds, fetched, output)


def _write_mosaics(path: Path, sheets: list[Any]) -> Path:
    """One PNG: each query's grid below the previous one."""
    from PIL import Image

    from ..atomic import atomic_path

    W = max(im.width for im in sheets)
    out = Image.new("RGB", (W, sum(im.height for im in sheets)), (18, 18, 24))
    y = 0
    for im in sheets:
        out.paste(im, (0, y))
        y += im.height
    with atomic_path(path) as tmp:
        out.save(tmp, format="PNG")
    return Path(path)


def _run_examples(req: QueryRequest) -> QueryResult:
    """Several positive (and negative) examples as one query."""
    positives: list[Any] = [
        *req.images,
        *([req.object_id] if req.object_id is not None else []),
        *req.positive_ids,
    ]
    negatives: list[Any] = [*req.negative_images, *req.negative_ids]
    if not positives:
        raise QueryError(
            "give at least one positive example (an image or an object id) next to the negative ones"
        )
    if req.ra is not None or req.dec is not None or req.fetch is not None:
        raise QueryError(
            "a sky position cannot be combined with other examples; give the object id found there"
        )
    if req.options.least or req.options.min_separation_arcsec is not None or req.mosaic is not None:
        raise QueryError(
            "several examples combine with a filter, k, refine and exact only (not least, a minimum separation or a mosaic)"
        )
    if req.output is not None:
        check_hits_path(req.output, req.output_format)
    s, open_seconds = _open(req, model=bool(req.images or req.negative_images))
    t0 = time.perf_counter()
    hits = s.query_examples(positives, negatives, options=req.options)
    seconds = time.perf_counter() - t0
    label = (
        "like "
        + ", ".join(str(p) for p in positives)
        + ("; unlike " + ", ".join(str(n) for n in negatives) if negatives else "")
    )
    output = (
        write_hits(req.output, hits_table([label], [hits]), req.output_format)
        if req.output is not None
        else None
    )
    return QueryResult([label], [hits], seconds, None, s.label_names, open_seconds, None, output)


def read_targets(path: Path) -> tuple[str, list[Any]]:
    """The queries of a targets CSV: ("object_id", ids) | ("sky", [(ra, dec)]) | ("image",
    paths relative to the CSV's folder). Column names are recognised as catalogs' are
    (``objid``, ``RAJ2000``, ``file`` …); object ids win over positions over images."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from ..catalog.columns import resolve_columns

    try:
        t = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
    except FileNotFoundError:
        raise QueryError(f"{path}: no such targets file") from None
    except (pa.ArrowInvalid, OSError) as e:
        raise QueryError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    cmap = resolve_columns(t.column_names, where=str(path))
    by = {cmap.canonical(c): c for c in t.column_names}
    if t.num_rows == 0:
        raise QueryError(f"{path}: no targets (the file has a header only)")
    if "object_id" in by:
        return "object_id", [str(v) for v in t.column(by["object_id"]).to_pylist()]
    if "ra" in by and "dec" in by:
        from .sky import parse_sky

        ra, dec = t.column(by["ra"]).to_pylist(), t.column(by["dec"]).to_pylist()
        out = []
        for i, (r, d) in enumerate(zip(ra, dec)):
            if r is None or d is None:
                raise QueryError(f"{path}: row {i + 1} has no ra/dec ({r!r}, {d!r})")
            try:  # degrees, or sexagesimal as catalogs write it (09:52:12, +02:09:15)
                c = parse_sky(r, d)
            except QueryError as e:
                raise QueryError(f"{path}: row {i + 1}: {e}") from None
            out.append((float(c.ra.deg), float(c.dec.deg)))
        return "sky", out
    if "filename" in by:
        return "image", [path.parent / str(v) for v in t.column(by["filename"]).to_pylist()]
    raise QueryError(
        f"{path}: needs a column of object ids, ra and dec, or image paths; the columns are {', '.join(t.column_names)}"
    )


def _run_targets(req: QueryRequest) -> QueryResult:
    """One query per row of a targets CSV, all hits in one table (``query`` column)."""
    if (
        req.images
        or req.object_id is not None
        or req.ra is not None
        or req.dec is not None
        or req.positive_ids
        or req.negative_images
        or req.negative_ids
    ):
        raise QueryError(f"{req.targets}: a targets file replaces the single query; give one or the other")
    if req.mosaic is not None:
        raise QueryError("a mosaic shows one query; leave it out with a targets file")
    if req.output is not None:
        check_hits_path(req.output, req.output_format)
    kind, targets = read_targets(Path(req.targets))  # type: ignore[arg-type]
    s, open_seconds = _open(req, model=kind == "image")
    t0 = time.perf_counter()
    skipped: list[tuple[str, str]] = []
    hits: list[Any] = []
    labels: list[str] = []
    # one bad row (an id not in the index, nothing at a position, an unreadable image) is
    # skipped and listed, as fetch-cutouts does, not the end of the whole batch
    if kind == "image":
        from ..catalog.images import read_image
        from ..errors import ImageReadError

        images = []
        for p in targets:
            try:
                images.append(read_image(p))
                labels.append(str(p))
            except ImageReadError as e:
                skipped.append((str(p), str(e)))
        hits = s.query_batch(images, options=req.options) if images else []
    elif kind == "object_id":
        for oid in targets:
            try:
                hits.append(s.query(object_id=oid, options=req.options))
                labels.append(f"object {oid}")
            except QueryError as e:
                if "is not in the index" not in str(e) and "was deleted" not in str(e):
                    raise  # a bad k or filter is the request's fault, not the row's
                skipped.append((str(oid), str(e)))
    else:
        for ra, dec in targets:
            try:
                f = s.query_sky(ra, dec, radius_arcsec=req.radius_arcsec, options=req.options)
            except QueryError as e:
                if "no catalog object within" not in str(e):
                    raise
                skipped.append((f"{ra:g} {dec:+g}", str(e)))
                continue
            hits.append(f.hits)
            labels.append(f.describe())
    if not hits:
        raise QueryError(
            f"{req.targets}: none of the {len(targets)} targets could be searched (first: {skipped[0][1]})"
            if skipped
            else f"{req.targets}: no targets"
        )
    seconds = time.perf_counter() - t0
    output = (
        write_hits(req.output, hits_table(labels, hits), req.output_format)
        if req.output is not None
        else None
    )
    return QueryResult(labels, hits, seconds, None, s.label_names, open_seconds, None, output, tuple(skipped))
