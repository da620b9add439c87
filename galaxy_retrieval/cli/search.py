"""Commands that search an index: query, outliers, explain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from .errors import friendly
from .options import ExplainMethodChoice, HitsFormatChoice, SurveyChoice
from .render import RichProgress, err, out

app = typer.Typer()


@app.command()
@friendly
def query(
    index: Path = typer.Option(..., help="Index directory (indexes/NAME)."),
    image: Optional[list[Path]] = typer.Option(
        None, help="Query image(s): --image a.png b.png or --image a.png --image b.png; several run as one batch (one query each) unless combined."
    ),
    more_images: Optional[list[Path]] = typer.Argument(None, hidden=True, show_default=False, metavar="[IMAGE]..."),
    object_id: Optional[list[str]] = typer.Option(None, "--object-id", help="A catalog object to find neighbours of; repeat it to combine several."),
    negative: Optional[list[Path]] = typer.Option(None, help="An image the hits should NOT look like (repeatable); combines the examples."),
    negative_id: Optional[list[str]] = typer.Option(None, "--negative-id", help="A catalog object the hits should NOT look like (repeatable)."),
    targets: Optional[Path] = typer.Option(
        None, help="A CSV with one query per row: a column of object ids, or ra and dec, or image paths (relative to the CSV); all hits in one table with a query column."
    ),
    combine: bool = typer.Option(
        False,
        help="Treat every --image/--object-id as a positive example of ONE query: FAISS shortlists k×refine around the mean "
        "of the positives' embeddings, and candidates are ranked by their mean score to the positives minus their mean score "
        "to the negatives (implied by --negative/--negative-id or several --object-id).",
    ),
    ra: Optional[str] = typer.Option(
        None, help='Right ascension: degrees (148.05) or sexagesimal hours (09:52:12, 09h52m12s); or both coordinates in one string ("09h52m12s +02d09m15s") without --dec.'
    ),
    dec: Optional[str] = typer.Option(None, help="Declination: degrees (2.154) or sexagesimal (+02:09:15, +02d09m15s)."),
    radius: float = typer.Option(10.0, help="Search radius around --ra/--dec, arcsec."),
    k: int = typer.Option(10, help="Number of results."),
    refine: int = typer.Option(10, help="Shortlist k×refine candidates from FAISS, rerank them exactly."),
    exact: bool = typer.Option(False, "--exact", help="Bypass the index: exact scan of every vector (ground truth)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Use this checkpoint (must match the index)."),
    mosaic: Optional[Path] = typer.Option(None, help="Write the query and its hits as a PNG grid (5 per row, cropped to each galaxy)."),
    fetch: Optional[SurveyChoice] = typer.Option(None, help="With --ra/--dec: when no catalog object is within --radius, download this survey's cutout there and search with it."),
    fetch_size: int = typer.Option(256, help="Side of the fetched cutout in pixels (match the catalog's images)."),
    fetch_pixscale: Optional[float] = typer.Option(None, help="Arcsec per pixel of the fetched cutout (default: the survey's native scale)."),
    base_url: Optional[str] = typer.Option(None, help="A mirror of the cutout service (replaces the URL before the endpoint name)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Where fetched cutouts are kept (default ~/.cache/galaxy-retrieval/cutouts)."),
    where: Optional[str] = typer.Option(
        None, help='Only objects matching this condition over the metadata columns (one boolean expression: comparisons, AND/OR/NOT, IN, BETWEEN, LIKE, IS NULL, arithmetic), e.g. "label = 3 AND redshift < 0.05"; fewer than k hits when fewer match.'
    ),
    least: bool = typer.Option(False, "--least", help="The k least similar objects instead (an exact scan; anomaly hunting)."),
    min_separation: Optional[float] = typer.Option(
        None, help="Arcsec: drop a hit this close to the query object or to a better hit (duplicate cutouts of one galaxy) and refill the list."
    ),
    output: Optional[Path] = typer.Option(
        None, help="Also write the hits (rank, query, object id, score, percentile, terms, metadata) to .csv, .parquet, .json, .fits or .vot (VOTable); - writes them to stdout (with --format)."
    ),
    output_format: Optional[HitsFormatChoice] = typer.Option(None, "--format", help="Format of --output (default: by its ending); fits and votable open in TOPCAT and Aladin."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Find the k catalog galaxies most similar to an image, an object id, or a sky position."""
    from ..search.query import QueryRequest, run_query

    spec = None
    if fetch is not None:
        from ..fetch import CutoutSpec

        if ra is None:
            raise typer.BadParameter("--fetch applies to a query by --ra and --dec")
        spec = CutoutSpec(survey=fetch.value, size=fetch_size, pixscale=fetch_pixscale, base_url=base_url)

    if more_images and not image:
        raise typer.BadParameter(f"unexpected argument {more_images[0]}; query images follow --image")
    image = [*(image or ()), *(more_images or ())]
    ids = list(object_id or ())
    several = combine or bool(negative) or bool(negative_id) or len(ids) > 1
    res = run_query(
        QueryRequest(
            index=index,
            images=tuple(image or ()),
            object_id=ids[0] if ids and not several else None,
            positive_ids=tuple(ids) if several else (),
            negative_images=tuple(negative or ()),
            negative_ids=tuple(negative_id or ()),
            combine=several,
            targets=targets,
            ra=ra,
            dec=dec,
            radius_arcsec=radius,
            k=k,
            refine=refine,
            exact=exact,
            checkpoint=checkpoint,
            mosaic=mosaic,
            fetch=spec,
            cache_dir=cache_dir,
            where=where,
            order="least" if least else "most",
            min_separation_arcsec=min_separation,
            output=output,
            output_format=None if output_format is None else output_format.value,
        )
    )
    if res.fetched is not None:
        err.print(f"no catalog object within {radius:g}\" of RA {ra}, Dec {dec}: searched with the {fetch.value} cutout {res.fetched}", highlight=False)  # type: ignore[union-attr]
    if output is not None and str(output) == "-":  # stdout holds the hits file: the summary goes to stderr
        err.print(f"{sum(len(h) for h in res.hits)} hits in {res.seconds * 1000:.1f} ms", highlight=False)
        return
    if as_json:
        payload = {"seconds": res.seconds, "results": [{"query": q, "hits": [h.to_dict() for h in hs]} for q, hs in zip(res.queries, res.hits)]}
        if res.mosaic:
            payload["mosaic"] = str(res.mosaic)
        if res.fetched:
            payload["cutout"] = str(res.fetched)
        if res.skipped:
            payload["skipped"] = [{"target": t, "why": w} for t, w in res.skipped]
        print(json.dumps(payload, default=str))
        return
    for target, why in res.skipped[:20]:  # a batch skips its bad rows and says which
        err.print(f"[yellow]skipped[/] {escape(target)}: {escape(why)}", highlight=False, soft_wrap=True)
    if len(res.skipped) > 20:
        err.print(f"[yellow]… and {len(res.skipped) - 20} more skipped targets[/]")
    for q, hs in zip(res.queries, res.hits):
        if len(hs) < k:  # say why the list is short instead of leaving it to be noticed
            reasons = (["only that many match --where"] if where is not None else []) + (
                [f'the others lie within {min_separation:g}" of the query or of a better hit'] if min_separation is not None else []
            )
            err.print(f"[yellow]note:[/] {escape(q)}: {len(hs)} of {k} hits" + (f" ({'; '.join(reasons)})" if reasons else ""), highlight=False, soft_wrap=True)
    names = res.label_names or {}
    for q, hs in zip(res.queries, res.hits):
        t = Table(title=f"{'least similar to' if least else 'neighbours of'} {q}", title_justify="left", caption="score = (cos + 1/(1+L2) + 1/(1+L3)) / 3 by default; pct = its percentile among random catalog pairs")
        for col, just in (("#", "right"), ("object id", "left"), ("score", "right"), ("pct", "right"), ("cos", "right"), ("1/(1+L2)", "right"), ("1/(1+L3)", "right"), ("label", "left"), ("ra", "right"), ("dec", "right")):
            t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
        for h in hs:
            lab = h.metadata.get("label")
            lab_s = "" if lab is None else (names[lab] if isinstance(lab, int) and lab in names else str(lab))
            ra_v, dec_v = h.metadata.get("ra"), h.metadata.get("dec")
            t.add_row(
                str(h.rank), h.object_id, f"{h.score:.4f}", "—" if h.percentile is None else f"{h.percentile:.2f}", f"{h.cos:.3f}", f"{h.inv_l2:.3f}", f"{h.inv_l3:.3f}", lab_s,
                "" if ra_v is None else f"{ra_v:.4f}", "" if dec_v is None else f"{dec_v:.4f}",
            )
        out.print(t)
    out.print(
        f"{sum(len(h) for h in res.hits)} hits in {res.seconds * 1000:.1f} ms (index opened and model loaded in {res.open_seconds:.1f} s)"
        + (f"; mosaic: {res.mosaic}" if res.mosaic else "")
        + (f"; hits written to {res.output}" if res.output else "")
    )



@app.command()
@friendly
def outliers(
    index: Path = typer.Option(..., help="Index directory (indexes/NAME)."),
    n: int = typer.Option(20, help="Number of objects to show."),
    k: int = typer.Option(50, help="Rank by the score to each object's k-th nearest neighbour (lowest: least like any other)."),
    refine: int = typer.Option(1, help="Shortlist k×refine neighbours from FAISS, rescore them exactly."),
    where: Optional[str] = typer.Option(None, help='Only show objects matching this SQL condition over the metadata columns, e.g. "redshift < 0.05".'),
    mosaic: Optional[Path] = typer.Option(None, help="Write them as a PNG grid, strangest first."),
    output: Optional[Path] = typer.Option(None, help="Also write them to .csv, .parquet, .json, .fits or .vot; - for stdout (with --format)."),
    output_format: Optional[HitsFormatChoice] = typer.Option(None, "--format", help="Format of --output (default: by its ending)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The catalog's strangest galaxies: the lowest score to their k-th nearest neighbour
    (computed once per index version with the FAISS index, then cached beside it)."""
    from ..search.outliers import find_outliers

    res = find_outliers(
        index, n=n, k=k, refine=refine, where=where, mosaic=mosaic, output=output,
        output_format=None if output_format is None else output_format.value, progress=RichProgress(quiet=as_json or str(output) == "-"),
    )
    if output is not None and str(output) == "-":
        return
    if as_json:
        print(json.dumps({"k": k, "seconds": res.seconds, "cached": res.cached, "hits": [h.to_dict() for h in res.hits]}, default=str))
        return
    names = getattr(res.hits.searcher, "label_names", None) or {}
    t = Table(title=f"least like any other (score to the {k}-th neighbour, lowest first)", title_justify="left")
    for col, just in (("#", "right"), ("object id", "left"), (f"score@{k}", "right"), ("pct", "right"), ("label", "left"), ("ra", "right"), ("dec", "right")):
        t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for h in res.hits:
        lab = h.metadata.get("label")
        ra_v, dec_v = h.metadata.get("ra"), h.metadata.get("dec")
        t.add_row(
            str(h.rank), h.object_id, f"{h.score:.4f}", "—" if h.percentile is None else f"{h.percentile:.2f}",
            "" if lab is None else names.get(lab, str(lab)) if isinstance(lab, int) else str(lab),
            "" if ra_v is None else f"{ra_v:.4f}", "" if dec_v is None else f"{dec_v:.4f}",
        )
    out.print(t)
    out.print(
        f"{len(res.hits)} objects; scores {'read from the cache' if res.cached else 'computed'} in {res.seconds:.1f} s"
        + (f"; mosaic: {res.mosaic}" if res.mosaic else "") + (f"; written to {res.output}" if res.output else ""),
        highlight=False,
    )



@app.command()
@friendly
def explain(
    index: Path = typer.Option(..., help="Index directory (indexes/NAME)."),
    image: Optional[Path] = typer.Option(None, help="Query image."),
    object_id: Optional[str] = typer.Option(None, "--object-id", help="Or a catalog object as the query (itself left out of the hits)."),
    out_png: Path = typer.Option(..., "--out", help="PNG to write: the query and its hits, plain and with heat maps."),
    k: int = typer.Option(6, help="Number of results to explain."),
    method: ExplainMethodChoice = typer.Option(
        ExplainMethodChoice.similarity,
        help="similarity: which patches make up the score s(query, hit) (integrated gradients, per pair); "
        "rollout: where each embedding draws from (attention rollout, the same for any pair).",
    ),
    steps: int = typer.Option(32, help="Integration steps of --method similarity (fewer: faster, sums less exact)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Use this checkpoint (must match the index)."),
) -> None:
    """Show what the matches of a query image were based on: a heat map over each image's patches."""
    from ..explain import explain_query

    res = explain_query(index, image, out_png, k=k, method=method.value, steps=steps, checkpoint=checkpoint, object_id=object_id)
    out.print(f"explained {len(res.hits)} hits of {image if image is not None else f'object {object_id}'} ({res.method}) in {res.seconds:.1f} s: {res.out}", highlight=False)
