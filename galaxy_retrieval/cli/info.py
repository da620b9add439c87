"""gr info: describe a catalog, an index directory or the shipped model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .errors import friendly
from .options import AsJson, Columns, MetadataCsv, opened_catalog
from .render import out

app = typer.Typer()


InfoPath = Annotated[
    Path,
    typer.Argument(help="HDF5 catalog, image folder, index directory, or 'pretrained' (the shipped model)."),
]
FramingSheet = Annotated[
    Path | None,
    typer.Option(help="Also write a PNG of 24 random cutouts before and after framing (see --framing)."),
]
FramingSpec = Annotated[
    str, typer.Option(help="The framing the sheet shows: auto, auto:MARGIN, fixed:F or none (as gr train).")
]


@app.command()
@friendly
def info(
    path: InfoPath,
    metadata: MetadataCsv = None,
    columns: Columns = None,
    framing_sheet: FramingSheet = None,
    framing: FramingSpec = "auto",
    as_json: AsJson = False,
) -> None:
    """Describe a catalog (count, image shape, labels, columns) or an index directory."""
    # an interrupted build (state, no manifest) is an index too: read_manifest says so
    from ..index.layout import is_index_dir

    if str(path) == "pretrained" and not path.exists():
        _pretrained_info(as_json)
    elif is_index_dir(path):
        _index_info(path, as_json)
    else:
        with opened_catalog(path, metadata, columns=columns) as cat:
            inf = cat.info()
            if framing_sheet is not None:
                from ..viz.catalog import framing_sheet as write_sheet

                out.print(f"framing sheet ({framing}): {write_sheet(cat, framing_sheet, framing)}")
        _catalog_info(inf, as_json)


_PRETRAINED_ROWS = (
    "preset",
    "path",
    "catalog",
    "catalog_size",
    "best_epoch",
    "train_seconds",
    "commit",
    "command",
    "weights_sha256",
)


def _pretrained_info(as_json: bool) -> None:
    from ..model.pretrained import pretrained_info

    d = pretrained_info()
    if as_json:
        out.print_json(json.dumps(d, default=str))
        return
    t = Table(
        title="the model shipped in the package (docs/model-card.md)", show_header=False, title_justify="left"
    )
    for k in _PRETRAINED_ROWS:
        if d.get(k) is not None:
            t.add_row(k, str(d[k]))
    out.print(t)


def _index_info(path: Path, as_json: bool) -> None:
    from ..index.manifest import read_manifest

    m = read_manifest(path)
    if as_json:
        out.print_json(json.dumps(m.to_dict(), default=str))
        return
    t = Table(title=f"index {path}", show_header=False, title_justify="left")
    f = m.faiss or {}
    t.add_row("objects", f"{m.count:,}")
    t.add_row("embedding", f"{m.dim} × {m.dtype}")
    t.add_row("shards", f"{len(m.shards)} ({sum(s.bytes for s in m.shards) / 1e6:,.1f} MB)")
    lists = (
        f"; inverted lists on disk, {f['ondisk'].get('bytes', 0) / 1e6:,.1f} MB memory-mapped"
        if f.get("ondisk")
        else ""
    )
    t.add_row(
        "candidate index",
        f"{f.get('factory')} ({f.get('metric')}), {f.get('bytes', 0) / 1e6:,.1f} MB{lists}",
    )
    t.add_row(
        "version",
        f"{m.version}"
        + (f", {m.count - m.live_count:,} deleted (gr compact removes them)" if m.tombstones else ""),
    )
    bal = _ivf_balance(path, m)
    if bal is not None:
        t.add_row(
            "IVF lists",
            f"{bal['nlist']:,} lists, imbalance {bal['imbalance']:.2f} (1 = even), "
            f"largest {bal['largest_list']:,} vs mean {bal['mean_list']:,.1f}, {bal['empty_lists']:,} empty"
            + (" — consider gr reindex" if bal["imbalance"] > 3 else ""),
        )
    t.add_row("score weights", ", ".join(f"{k}={v:.3g}" for k, v in m.score_weights.items()))
    import numpy as np

    from ..index.reference import ScoreReference

    ref = ScoreReference.from_manifest(m.extra)
    if ref is not None:  # what a hit's percentile is measured against
        qs = {p: float(np.interp(p / 100, ref.probs, ref.quantiles)) for p in (50, 99, 99.9, 99.99)}
        t.add_row(
            "random pairs",
            f"{ref.pairs:,} scored: median {qs[50]:.4f}, "
            + ", ".join(f"p{p:g} {v:.4f}" for p, v in qs.items() if p != 50),
        )
    else:
        t.add_row("random pairs", "not recorded (an older index): hits have no percentile")
    t.add_row(
        "model",
        str((m.model or {}).get("preset", "—"))
        + f" sha256 {str((m.model or {}).get('sha256', ''))[:12]}"
        + (f", embedded in {m.model['precision']}" if (m.model or {}).get("precision") else ""),
    )
    t.add_row("catalog", str(m.catalog.get("source")))
    if m.catalog.get("label_names"):
        t.add_row("classes", ", ".join(f"{k} {v}" for k, v in m.catalog["label_names"].items()))
    t.add_row("created", f"{m.created} (galaxy-retrieval {m.package_version})")
    out.print(t)


def _catalog_info(inf: Any, as_json: bool) -> None:
    if as_json:
        d = dict(inf.__dict__)
        d["label_counts"] = (
            None if inf.label_counts is None else {str(k): v for k, v in inf.label_counts.items()}
        )
        d["label_names"] = (
            None if inf.label_names is None else {str(k): v for k, v in inf.label_names.items()}
        )
        out.print_json(json.dumps(d, default=str))
        return
    t = Table(title=str(inf.path), show_header=False, title_justify="left")
    t.add_row("kind", inf.kind)
    t.add_row("objects", f"{inf.count:,}")
    t.add_row(
        "image shape",
        "varies" if inf.image_shape is None else "×".join(map(str, inf.image_shape)) + f" {inf.dtype}",
    )
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


def _ivf_balance(path: Path, m: Any) -> Any:
    from ..index.candidates import ivf_balance, load_faiss_index

    f = path / m.faiss_file
    return ivf_balance(load_faiss_index(f)) if f.is_file() else None
