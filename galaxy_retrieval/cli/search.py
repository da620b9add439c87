"""Commands that search an index: query, outliers, explain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .errors import friendly
from .options import AsJson, Checkpoint, HitsFormat, IndexDir, OutputFormat, Survey
from .render import RichProgress, err, out

app = typer.Typer()


Image = Annotated[
    list[Path] | None,
    typer.Option(
        help=(
            "Query image(s): --image a.png b.png or --image a.png --image b.png; several run as one batch "
            "(one query each) unless combined."
        )
    ),
]
MoreImages = Annotated[
    list[Path] | None, typer.Argument(hidden=True, show_default=False, metavar="[IMAGE]...")
]
ObjectId = Annotated[
    list[str] | None,
    typer.Option("--object-id", help="A catalog object to find neighbours of; repeat it to combine several."),
]
Negative = Annotated[
    list[Path] | None,
    typer.Option(help="An image the hits should NOT look like (repeatable); combines the examples."),
]
NegativeId = Annotated[
    list[str] | None,
    typer.Option("--negative-id", help="A catalog object the hits should NOT look like (repeatable)."),
]
Targets = Annotated[
    Path | None,
    typer.Option(
        help=(
            "A CSV with one query per row: a column of object ids, or ra and dec, or image paths (relative "
            "to the CSV); all hits in one table with a query column."
        )
    ),
]
Combine = Annotated[
    bool,
    typer.Option(
        help="Treat every --image/--object-id as a positive example of ONE query: FAISS shortlists k×refine "
        "around the mean of the positives' embeddings, and candidates are ranked by their mean score to the "
        "positives minus their mean score to the negatives "
        "(implied by --negative/--negative-id or several --object-id)."
    ),
]
Ra = Annotated[
    str | None,
    typer.Option(
        help=(
            "Right ascension: degrees (148.05) or sexagesimal hours (09:52:12, 09h52m12s); or both "
            'coordinates in one string ("09h52m12s +02d09m15s") without --dec.'
        )
    ),
]
Dec = Annotated[
    str | None, typer.Option(help="Declination: degrees (2.154) or sexagesimal (+02:09:15, +02d09m15s).")
]
Refine = Annotated[int, typer.Option(help="Shortlist k×refine candidates from FAISS, rerank them exactly.")]
Exact = Annotated[
    bool, typer.Option("--exact", help="Bypass the index: exact scan of every vector (ground truth).")
]
Nprobe = Annotated[
    int | None, typer.Option(help="IVF lists searched (default: the index's); more recall, slower.")
]
EfSearch = Annotated[
    int | None, typer.Option(help="HNSW search breadth (default: the index's); more recall, slower.")
]
Mosaic = Annotated[
    Path | None,
    typer.Option(help="Write the query and its hits as a PNG grid (5 per row, cropped to each galaxy)."),
]
Fetch = Annotated[
    Survey | None,
    typer.Option(
        help=(
            "With --ra/--dec: when no catalog object is within --radius, download this survey's cutout "
            "there and search with it."
        )
    ),
]
FetchSize = Annotated[
    int, typer.Option(help="Side of the fetched cutout in pixels (match the catalog's images).")
]
FetchPixscale = Annotated[
    float | None,
    typer.Option(help="Arcsec per pixel of the fetched cutout (default: the survey's native scale)."),
]
BaseUrl = Annotated[
    str | None,
    typer.Option(help="A mirror of the cutout service (replaces the URL before the endpoint name)."),
]
CacheDir = Annotated[
    Path | None,
    typer.Option(help="Where fetched cutouts are kept (default ~/.cache/galaxy-retrieval/cutouts)."),
]
Where = Annotated[
    str | None,
    typer.Option(
        help=(
            "Only objects matching this condition over the metadata columns (one boolean expression: "
            'comparisons, AND/OR/NOT, IN, BETWEEN, LIKE, IS NULL, arithmetic), e.g. "label = 3 AND redshift '
            '< 0.05"; fewer than k hits when fewer match.'
        )
    ),
]
Least = Annotated[
    bool,
    typer.Option("--least", help="The k least similar objects instead (an exact scan; anomaly hunting)."),
]
MinSeparation = Annotated[
    float | None,
    typer.Option(
        help=(
            "Arcsec: drop a hit this close to the query object or to a better hit (duplicate cutouts of one "
            "galaxy) and refill the list."
        )
    ),
]
Output = Annotated[
    Path | None,
    typer.Option(
        help=(
            "Also write the hits (rank, query, object id, score, percentile, terms, metadata) to .csv, "
            ".parquet, .json, .fits or .vot (VOTable); - writes them to stdout (with --format)."
        )
    ),
]


@app.command()
@friendly
def query(
    index: IndexDir,
    image: Image = None,
    more_images: MoreImages = None,
    object_id: ObjectId = None,
    negative: Negative = None,
    negative_id: NegativeId = None,
    targets: Targets = None,
    combine: Combine = False,
    ra: Ra = None,
    dec: Dec = None,
    radius: Annotated[float, typer.Option(help="Search radius around --ra/--dec, arcsec.")] = 10.0,
    k: Annotated[int, typer.Option(help="Number of results.")] = 10,
    refine: Refine = 10,
    exact: Exact = False,
    nprobe: Nprobe = None,
    ef_search: EfSearch = None,
    checkpoint: Checkpoint = None,
    mosaic: Mosaic = None,
    fetch: Fetch = None,
    fetch_size: FetchSize = 256,
    fetch_pixscale: FetchPixscale = None,
    base_url: BaseUrl = None,
    cache_dir: CacheDir = None,
    where: Where = None,
    least: Least = False,
    min_separation: MinSeparation = None,
    output: Output = None,
    output_format: OutputFormat = None,
    as_json: AsJson = False,
) -> None:
    """Find the k catalog galaxies most similar to an image, an object id, or a sky position."""
    from ..search.options import SearchOptions
    from ..search.query import QueryRequest, run_query

    spec = None
    if fetch is not None:
        from ..fetch import CutoutSpec

        spec = CutoutSpec(survey=fetch, size=fetch_size, pixscale=fetch_pixscale, base_url=base_url)

    # `--image a.png b.png`: typer reads b.png as a positional argument; only there is it an image
    if more_images and not image:
        raise typer.BadParameter(f"unexpected argument {more_images[0]}; query images follow --image")
    res = run_query(
        QueryRequest(
            index=index,
            images=(*(image or ()), *(more_images or ())),
            positive_ids=tuple(object_id or ()),  # one alone is a plain object-id query
            negative_images=tuple(negative or ()),
            negative_ids=tuple(negative_id or ()),
            combine=combine,
            targets=targets,
            ra=ra,
            dec=dec,
            radius_arcsec=radius,
            options=SearchOptions(
                k=k,
                refine=refine,
                exact=exact,
                nprobe=nprobe,
                ef_search=ef_search,
                where=where,
                order="least" if least else "most",
                min_separation_arcsec=min_separation,
            ),
            checkpoint=checkpoint,
            mosaic=mosaic,
            fetch=spec,
            cache_dir=cache_dir,
            output=output,
            output_format=output_format,
        )
    )
    _render_query(res, f"RA {ra}, Dec {dec}", radius, fetch, output, as_json, k, where, min_separation, least)


def _render_query(
    res: Any,
    position: str,
    radius: float,
    fetch: str | None,
    output: Path | None,
    as_json: bool,
    k: int,
    where: str | None,
    min_separation: float | None,
    least: bool,
) -> None:
    if res.fetched is not None:
        err.print(
            (
                f'no catalog object within {radius:g}" of {position}: searched with the {fetch} cutout '
                f"{res.fetched}"
            ),
            highlight=False,
        )  # type: ignore[union-attr]
    if output is not None and str(output) == "-":  # stdout holds the hits file: the summary goes to stderr
        err.print(f"{sum(len(h) for h in res.hits)} hits in {res.seconds * 1000:.1f} ms", highlight=False)
        return
    if as_json:
        print(json.dumps(_query_payload(res), default=str))
        return
    _query_notes(res, k, where, min_separation)
    for q, hs in zip(res.queries, res.hits):
        out.print(_hits_table(q, hs, res.label_names or {}, least))
    out.print(
        f"{sum(len(h) for h in res.hits)} hits in {res.seconds * 1000:.1f} ms "
        f"(index opened and model loaded in {res.open_seconds:.1f} s)"
        + (f"; mosaic: {res.mosaic}" if res.mosaic else "")
        + (f"; hits written to {res.output}" if res.output else "")
    )


def _query_payload(res: Any) -> dict[str, Any]:
    """gr query --json: each query's hits, and what else the run made or skipped."""
    payload: dict[str, Any] = {
        "seconds": res.seconds,
        "results": [{"query": q, "hits": [h.to_dict() for h in hs]} for q, hs in zip(res.queries, res.hits)],
    }
    if res.mosaic:
        payload["mosaic"] = str(res.mosaic)
    if res.fetched:
        payload["cutout"] = str(res.fetched)
    if res.skipped:
        payload["skipped"] = [{"target": t, "why": w} for t, w in res.skipped]
    return payload


def _query_notes(res: Any, k: int, where: str | None, min_separation: float | None) -> None:
    """Skipped targets and short hit lists, on stderr, with the reason."""
    for target, why in res.skipped[:20]:  # a batch skips its bad rows and says which
        err.print(f"[yellow]skipped[/] {escape(target)}: {escape(why)}", highlight=False, soft_wrap=True)
    if len(res.skipped) > 20:
        err.print(f"[yellow]… and {len(res.skipped) - 20} more skipped targets[/]")
    reasons = ["only that many match --where"] if where is not None else []
    if min_separation is not None:
        reasons.append(f'the others lie within {min_separation:g}" of the query or of a better hit')
    because = f" ({'; '.join(reasons)})" if reasons else ""
    for q, hs in zip(res.queries, res.hits):
        if len(hs) < k:  # say why the list is short instead of leaving it to be noticed
            err.print(
                f"[yellow]note:[/] {escape(q)}: {len(hs)} of {k} hits{because}",
                highlight=False,
                soft_wrap=True,
            )


_HIT_COLUMNS = (
    ("#", "right"),
    ("object id", "left"),
    ("score", "right"),
    ("pct", "right"),
    ("cos", "right"),
    ("1/(1+L2)", "right"),
    ("1/(1+L3)", "right"),
    ("label", "left"),
    ("ra", "right"),
    ("dec", "right"),
)


def _hits_table(q: str, hs: Any, names: dict[Any, str], least: bool) -> Table:
    t = Table(
        title=f"{'least similar to' if least else 'neighbours of'} {q}",
        title_justify="left",
        caption=(
            "score = (cos + 1/(1+L2) + 1/(1+L3)) / 3 by default; pct = its percentile among random catalog "
            "pairs"
        ),
    )
    for col, just in _HIT_COLUMNS:
        t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for h in hs:
        lab = h.metadata.get("label")
        lab_s = "" if lab is None else (names[lab] if isinstance(lab, int) and lab in names else str(lab))
        ra_v, dec_v = h.metadata.get("ra"), h.metadata.get("dec")
        t.add_row(
            str(h.rank),
            h.object_id,
            f"{h.score:.4f}",
            "—" if h.percentile is None else f"{h.percentile:.2f}",
            f"{h.cos:.3f}",
            f"{h.inv_l2:.3f}",
            f"{h.inv_l3:.3f}",
            lab_s,
            "" if ra_v is None else f"{ra_v:.4f}",
            "" if dec_v is None else f"{dec_v:.4f}",
        )
    return t


K = Annotated[
    int,
    typer.Option(
        help="Rank by the score to each object's k-th nearest neighbour (lowest: least like any other)."
    ),
]
OutliersRefine = Annotated[
    int, typer.Option(help="Shortlist k×refine neighbours from FAISS, rescore them exactly.")
]
OutliersWhere = Annotated[
    str | None,
    typer.Option(
        help=(
            'Only show objects matching this SQL condition over the metadata columns, e.g. "redshift < 0.05".'
        )
    ),
]
OutliersMosaic = Annotated[Path | None, typer.Option(help="Write them as a PNG grid, strangest first.")]
OutliersOutput = Annotated[
    Path | None,
    typer.Option(
        help="Also write them to .csv, .parquet, .json, .fits or .vot; - for stdout (with --format)."
    ),
]
OutliersFormat = Annotated[
    HitsFormat | None, typer.Option("--format", help="Format of --output (default: by its ending).")
]


@app.command()
@friendly
def outliers(
    index: IndexDir,
    n: Annotated[int, typer.Option(help="Number of objects to show.")] = 20,
    k: K = 50,
    refine: OutliersRefine = 1,
    where: OutliersWhere = None,
    mosaic: OutliersMosaic = None,
    output: OutliersOutput = None,
    output_format: OutliersFormat = None,
    as_json: AsJson = False,
) -> None:
    """The catalog's strangest galaxies: the lowest score to their k-th nearest neighbour
    (computed once per index version with the FAISS index, then cached beside it)."""
    from ..search.outliers import find_outliers

    res = find_outliers(
        index,
        n=n,
        k=k,
        refine=refine,
        where=where,
        mosaic=mosaic,
        output=output,
        output_format=output_format,
        progress=RichProgress(quiet=as_json or str(output) == "-"),
    )
    if output is not None and str(output) == "-":
        return
    if as_json:
        print(
            json.dumps(
                {
                    "k": k,
                    "seconds": res.seconds,
                    "cached": res.cached,
                    "hits": [h.to_dict() for h in res.hits],
                },
                default=str,
            )
        )
        return
    names = getattr(res.hits.searcher, "label_names", None) or {}
    t = Table(
        title=f"least like any other (score to the {k}-th neighbour, lowest first)", title_justify="left"
    )
    for col, just in (
        ("#", "right"),
        ("object id", "left"),
        (f"score@{k}", "right"),
        ("pct", "right"),
        ("label", "left"),
        ("ra", "right"),
        ("dec", "right"),
    ):
        t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for h in res.hits:
        lab = h.metadata.get("label")
        ra_v, dec_v = h.metadata.get("ra"), h.metadata.get("dec")
        t.add_row(
            str(h.rank),
            h.object_id,
            f"{h.score:.4f}",
            "—" if h.percentile is None else f"{h.percentile:.2f}",
            "" if lab is None else names.get(lab, str(lab)) if isinstance(lab, int) else str(lab),
            "" if ra_v is None else f"{ra_v:.4f}",
            "" if dec_v is None else f"{dec_v:.4f}",
        )
    out.print(t)
    out.print(
        (
            f"{len(res.hits)} objects; scores {'read from the cache' if res.cached else 'computed'} in "
            f"{res.seconds:.1f} s"
        )
        + (f"; mosaic: {res.mosaic}" if res.mosaic else "")
        + (f"; written to {res.output}" if res.output else ""),
        highlight=False,
    )


ExplainObjectId = Annotated[
    str | None,
    typer.Option("--object-id", help="Or a catalog object as the query (itself left out of the hits)."),
]
OutPng = Annotated[
    Path, typer.Option("--out", help="PNG to write: the query and its hits, plain and with heat maps.")
]
Method = Annotated[
    str,
    typer.Option(
        help="similarity: which patches make up the score s(query, hit) (integrated gradients, per pair); "
        "rollout: where each embedding draws from (attention rollout, the same for any pair)."
    ),
]
Steps = Annotated[
    int, typer.Option(help="Integration steps of --method similarity (fewer: faster, sums less exact).")
]


@app.command()
@friendly
def explain(
    index: IndexDir,
    *,  # --out is required but listed after the optional query options
    image: Annotated[Path | None, typer.Option(help="Query image.")] = None,
    object_id: ExplainObjectId = None,
    out_png: OutPng,
    k: Annotated[int, typer.Option(help="Number of results to explain.")] = 6,
    method: Method = "similarity",
    steps: Steps = 32,
    checkpoint: Checkpoint = None,
) -> None:
    """Show what the matches of a query image were based on: a heat map over each image's patches."""
    from ..explain import explain_query

    res = explain_query(
        index, image, out_png, k=k, method=method, steps=steps, checkpoint=checkpoint, object_id=object_id
    )
    out.print(
        (
            f"explained {len(res.hits)} hits of {image if image is not None else f'object {object_id}'} "
            f"({res.method}) in {res.seconds:.1f} s: {res.out}"
        ),
        highlight=False,
    )
