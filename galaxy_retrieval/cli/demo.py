"""gr demo: the whole pipeline end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .errors import friendly
from .render import RichProgress, out, render_eval, render_train

app = typer.Typer()


Pipeline = Annotated[Path | None, typer.Option(help="Pipeline TOML (default: pipelines/demo.toml).")]
Fresh = Annotated[bool, typer.Option("--fresh", help="Redo every step instead of reusing finished ones.")]


@app.command()
@friendly
def demo(
    pipeline: Pipeline = None,
    fresh: Fresh = False,
) -> None:
    """Synthetic catalog → training → evaluation → index → query with a mosaic, end to end."""
    from ..demo import DEFAULT_PIPELINE, load_demo_config, run_demo

    cfg = load_demo_config(pipeline or DEFAULT_PIPELINE)
    res = run_demo(cfg, progress=RichProgress(), fresh=fresh)
    out.print(f"catalog: {res.catalog}  (contact sheet: {res.contact_sheet})")
    if res.train is not None:
        render_train(res.train)
    render_eval(res.evaluation)
    m = res.build.manifest
    out.print(
        f"index {res.build.path}: {m.count:,} objects, FAISS {(m.faiss or {}).get('factory')}, built in "
        f"{sum(res.build.seconds.values()):.1f} s"
    )
    names = res.query.label_names or {}
    hits = res.query.hits[0]
    t = Table(
        title=f"top {len(hits)} for {res.query.queries[0]} (object {res.query_object})", title_justify="left"
    )
    for col in ("rank", "object id", "score", "label"):
        t.add_column(col)
    for h in hits:
        lab = h.metadata.get("label")
        t.add_row(
            str(h.rank),
            h.object_id,
            f"{h.score:.4f}",
            f"{lab} {names.get(lab, '')}" if lab is not None else "",
        )
    out.print(t)
    out.print(f"query took {res.query.seconds * 1000:.1f} ms; mosaic: [bold]{res.query.mosaic}[/]")
    if res.explain is not None:
        out.print(f"why they matched ({res.explain.method} maps): [bold]{res.explain.out}[/]")
    out.print(
        (
            f"search it in the browser: [bold]gr serve --index {res.build.path}[/], then open "
            f"http://127.0.0.1:8000/?q={res.query_object}"
        ),
        highlight=False,
    )
