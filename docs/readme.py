"""Make the generated parts of README.md and docs/cli.md from their sources.

    python docs/readme.py                      # rewrite them
    python docs/readme.py --check              # exit 1 (and say where) if they are not current
    python docs/readme.py --record-demo runs/demo/results.json   # keep a demo run's figures

Nothing here is typed by hand: the command reference comes from the ``gr`` app itself (the
same text as ``--help``), and every figure from a result file under ``benchmarks/results/``
(written by the benchmark scripts, the quality protocol and ``gr demo``). README.md marks each
generated block with ``<!-- generated:NAME -->`` … ``<!-- /generated:NAME -->``;
``tests/test_readme.py`` fails when a block has drifted from what this script makes.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
CLI_DOC = ROOT / "docs" / "cli.md"
DEMO_RESULTS = RESULTS / "demo.json"


# --------------------------------------------------------------------------- commands


def _commands() -> tuple[list[tuple[str, Any, Any]], Any, Any]:
    """[(name, command, its context)], the group, the group's context."""
    import typer.main

    from galaxy_retrieval.cli import app

    group = typer.main.get_command(app)
    gctx = group.context_class(group, info_name="gr")
    cmds = [
        (name, cmd, cmd.context_class(cmd, info_name=name, parent=gctx))
        for name, cmd in group.commands.items()
    ]
    return cmds, group, gctx


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n\n")[0].replace("\n", " ")


def _records(cmd: Any, ctx: Any) -> list[tuple[str, str]]:
    """(flags, help) of each option exactly as ``--help`` prints them, ``--help`` itself left out."""
    recs = []
    for p in cmd.params:
        if p.param_type_name != "option":
            continue
        r = p.get_help_record(ctx)
        if r is not None and not r[0].startswith("-h"):
            recs.append(r)
    return recs


def _synopsis(name: str, cmd: Any, ctx: Any) -> str:
    parts = [f"gr {name}"]
    parts += [p.name.upper() for p in cmd.params if p.param_type_name == "argument"]
    recs = _records(cmd, ctx)
    parts += [
        flags.split(",")[0] if "<" not in flags else flags for flags, help in recs if "[required]" in help
    ]
    if any("[required]" not in help for _, help in recs):
        parts.append("[options]")
    return " ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def commands_table() -> str:
    cmds, _, _ = _commands()
    rows = ["| command | what it does |", "| --- | --- |"]
    for name, cmd, ctx in cmds:
        rows.append(f"| `{_cell(_synopsis(name, cmd, ctx))}` | {_cell(_first_line(cmd.help))} |")
    return "\n".join(rows)


def cli_reference() -> str:
    cmds, group, gctx = _commands()
    out = [
        "# `gr` command reference",
        "",
        "Generated from the commands' own `--help` by `python docs/readme.py`; do not edit by hand.",
        "",
        "Options before the command:",
        "",
        "| option | meaning |",
        "| --- | --- |",
    ]
    out += [f"| `{_cell(f)}` | {_cell(h)} |" for f, h in _records(group, gctx)]
    for name, cmd, ctx in cmds:
        out += [
            "",
            f"## `gr {name}`",
            "",
            (cmd.help or "").strip(),
            "",
            f"    {_synopsis(name, cmd, ctx)}",
            "",
        ]
        recs = _records(cmd, ctx)
        if recs:
            out += ["| option | meaning |", "| --- | --- |"]
            out += [f"| `{_cell(f)}` | {_cell(h)} |" for f, h in recs]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- figures


def _load(name: str) -> dict[str, Any] | None:
    p = RESULTS / name
    return json.loads(p.read_text("utf-8")) if p.is_file() else None


def _mmss(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def demo_paragraph() -> str:
    d = _load(DEMO_RESULTS.name)
    if d is None:
        return "The demo's figures appear here once a run is recorded (`python docs/readme.py --record-demo runs/demo/results.json`)."
    ev = d["evaluation"]
    p10 = ev["precision@10_macro"]
    best = ev.get("best_baseline")
    others = [m for m in ("untrained", "pixels") if p10.get(m) is not None]
    load = d["machine"].get("load_average")
    q = d["query"]
    # the query is a catalog object's own image, so it finds itself first: count the others
    neighbours = [
        lab
        for oid, lab in zip(q.get("hit_ids", [None] * len(q["hit_labels"])), q["hit_labels"])
        if oid != q["object"]
    ]
    same = sum(1 for lab in neighbours if lab == q["label"]) if q.get("label") is not None else None
    text = (
        f"Recorded run ({d['created'][:10]}, commit {d['commit'][:7]}, {d['machine'].get('cpu_count')} CPUs, load average "
        f"{load[0] if load else '?'} at the start): {_mmss(d['seconds']['total'])} after the set-up"
        f"{' (reusing ' + ', '.join(d['reused']) + ')' if d['reused'] else ''}, of which training "
        f"{_mmss(d['seconds'].get('training', 0))} ({d['epochs']} epochs of the `{d['pipeline']['train']['preset']}` model). "
        f"Held-out macro precision@10 {p10['model']:.3f}"
    )
    if best:
        text += f" against the best classical baseline ({best}) {p10[best]:.3f}"
    if others:
        text += ", " + " and ".join(f"{m} {p10[m]:.3f}" for m in others)
    text += "."
    shipped = ev.get("shipped_model_precision@10_macro")
    if shipped is not None:
        text += (
            f" The model shipped in the package, trained on real SDSS cutouts and never on these synthetic "
            f"galaxies, scores {shipped:.3f} on the same queries zero-shot."
        )
    if same is not None:
        text += f" {same} of the query's {len(neighbours)} neighbours share its class."
    return text


def _rerank_best(d: dict[str, Any], at: float = 0.99) -> dict[str, Any] | None:
    ok = [p for p in d["results"] if p["k"] == 10 and p["recall"].get("10", 0) >= at]
    return min(ok, key=lambda p: p["p50_ms"]) if ok else None


def measured_table() -> str:
    rows = ["| what | figure | source |", "| --- | --- | --- |"]
    s = _load("synth_throughput.json")
    if s:
        pr = s["params"]
        rows.append(
            f"| synthetic catalog rendering, {pr['size']}², {pr['workers']} workers | {s['summary']['end_to_end_gal_per_s']:.1f} galaxies/s end to end | `synth_throughput.json` |"
        )
    e = _load("exact_kernel.json")
    if e:
        pa = e["parameters"]
        for r in e["results"]:
            k1 = next((x for x in r["rows"] if x["what"] == "kernel" and x["nq"] == 1), None)
            if r["dtype"] == "float32" and k1:
                rows.append(
                    f"| exact score scan (fused numba kernel), {pa['n']:,} × {pa['dim']} float32, one query | {k1['ratio_to_read']:.2f}× the time of a plain read of the matrix | `exact_kernel.json` |"
                )
    r = _load("rerank_synth-1M-d2048-float32.json")
    if r and (b := _rerank_best(r)):
        build = next((i for i in r["indexes"] if i["factory"] == b["factory"]), {})
        rows.append(
            f"| {r['dataset']['n']:,} × {r['dataset']['dim']}, `{b['factory']}` + exact rerank (refine {b['refine']}, nprobe {b['nprobe']}) "
            f"| recall@10 {b['recall']['10']:.3f} vs exact, p50 {b['p50_ms']:.1f} ms, {b['speedup_vs_exact']:,.0f}× faster than the exact scan, "
            f"built in {build.get('build_s', float('nan')):.0f} s | `{'rerank_synth-1M-d2048-float32.json'}` |"
        )
    for cat in ("gz2", "first", "synthetic"):
        q = _load(f"quality_{cat}.json")
        v = (q or {}).get("variants", {}).get("defaults")
        if not v:
            continue
        ev = v["eval"]
        best = ev.get("best_baseline")
        p = ev["retrieval"]
        name = {
            "gz2": "Galaxy Zoo 2 SDSS cutouts (spiral / other)",
            "first": "FIRST radio galaxies (four classes)",
            "synthetic": "synthetic GalSim catalog",
        }[cat]
        fig = f"`gr train` defaults: held-out macro precision@10 {p['model']['macro']['precision@10']:.3f}"
        if best:
            fig += f"; best baseline ({best}) {p[best]['macro']['precision@10']:.3f}"
        rows.append(
            f"| {name}, {q['catalog'].get('count', '?'):,} objects, seed 0 | {fig} | `quality_{cat}.json` |"
        )
    pre = _load("quality_pretrained.json")
    for cat, r in ((pre or {}).get("catalogs") or {}).items():
        m, best = r["methods"][pre.get("shipped_method", "model")], r["best_descriptor"]
        seen = (
            "never seen in training" if cat == "gz2_spirals" else "images seen in pretraining, labels never"
        )
        rows.append(
            f"| {cat}, {r['n']:,} objects ({seen}) | the shipped model, no training: macro precision@10 {m['held_out']['mean']:.3f} held-out "
            f"(3 seeds), {m['all']:.3f} every object; best descriptor ({best}) {r['methods'][best]['held_out']['mean']:.3f} / "
            f"{r['methods'][best]['all']:.3f} | `quality_pretrained.json` |"
        )
    return "\n".join(rows)


# --------------------------------------------------------------------------- benchmarks/README.md


def _ms(s: float) -> str:
    return f"{s * 1e3:.1f} ms"


def bench_exact_kernel() -> str:
    e = _load("exact_kernel.json")
    if e is None:
        return "(no result recorded)"
    pa = e["parameters"]
    f32 = next(r for r in e["results"] if r["dtype"] == "float32")
    out = [
        f"Results for {pa['n']:,} × {pa['dim']} ({f32['matrix_bytes'] / 1e9:.2f} GB in float32), the median of {pa['repeats']} repeats:",
        "",
        "| dtype | read | kernel, 1 query | exact_knn (with top-k), 1 query | kernel, batch of 32 | naive numpy |",
        "|---|---|---|---|---|---|",
    ]
    for r in e["results"]:
        rows = {(x["what"], x["nq"]): x for x in r["rows"]}
        k1, e1, k32 = rows.get(("kernel", 1)), rows.get(("exact_knn", 1)), rows.get(("kernel", 32))
        read = r["read"]
        cells = [
            r["dtype"],
            f"{_ms(read['s'])} ({read['gb_per_s']:.1f} GB/s)",
            f"{_ms(k1['s_per_query'])} = {k1['ratio_to_read']:.2f}× read" if k1 else "—",
            f"{_ms(e1['s_per_query'])} = {e1['ratio_to_read']:.2f}×" if e1 else "—",
            f"{_ms(k32['s_per_query'])}/query = {k32['ratio_to_read']:.2f}×" if k32 else "—",
            f"{r['naive_numpy_one_query']['ratio_to_read']:.0f}× read",
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def bench_synth() -> str:
    s = _load("synth_throughput.json")
    if s is None:
        return "(no result recorded)"
    pr, su = s["params"], s["summary"]
    return (
        f"`gr synth` renders GalSim galaxies at {pr['size']}² with {pr['workers']} worker processes. The end-to-end rate "
        f"(start-up and HDF5 write included) was **{su['end_to_end_gal_per_s']:.1f} galaxies/s**. The steady rate was "
        f"{su['steady_gal_per_s']:.1f} gal/s, and one core alone did {su['single_core_gal_per_s']:.1f} gal/s: a parallel "
        f"speed-up of {su['parallel_speedup_steady_vs_single']:.2f} on the shared CPU (load average {s['machine'].get('load_average')})."
    )


def _point_row(p: dict[str, Any], label: str) -> str:
    r = p["recall"]
    r100 = f"{r['100']:.3f}" if "100" in r else "—"
    return (
        f"| {label} | {p['refine']} | {p['candidates_mean']:.0f} | {r.get('1', float('nan')):.3f} | {r.get('10', float('nan')):.4f} | {r100} | "
        f"{p['p50_ms']:.2f} | {p['p99_ms']:.2f} | {p['search_p50_ms']:.2f} / {p['rerank_p50_ms']:.2f} | {p['qps_batch']:,.0f} | {p['speedup_vs_exact']:,.0f} |"
    )


def bench_rerank_1m() -> str:
    r = _load("rerank_synth-1M-d2048-float32.json")
    if r is None:
        return "(no result recorded)"
    ex, ds = r["exact"], r["dataset"]
    best = _rerank_best(r)
    load = r["machine"].get("load_average")
    out = [
        f"Exact scan: **{ex['single_query_s'] * 1e3:.0f} ms/query**, {ex['scan_over_read']:.2f}× a plain read of the "
        f"{ex['catalog_bytes'] / 1e9:.2f} GB ({ex['read_s'] * 1e3:.0f} ms, {ex['read_gb_per_s']:.0f} GB/s), in the same run "
        f"(load average {load[0] if load else '?'} at the start).",
        "",
    ]
    if best:
        b_idx = next(i for i in r["indexes"] if i["factory"] == best["factory"])
        k100 = [
            p
            for p in r["results"]
            if p["factory"] == best["factory"] and "100" in p["recall"] and p["recall"]["100"] >= 0.99
        ]
        out += [
            "| target | measured | |",
            "|---|---|---|",
            f"| recall@10 ≥ 0.99 at p50 ≤ 5 ms | `{best['factory']}`, nprobe {best['nprobe']}, refine {best['refine']}: **R@10 {best['recall']['10']:.4f}** "
            f"(R@1 {best['recall']['1']:.3f}), **p50 {best['p50_ms']:.2f} ms**, p99 {best['p99_ms']:.2f} ms | {'met' if best['p50_ms'] <= 5 else 'not met'} |",
            f"| ≥ 100× faster than the exact scan, same run | **{best['speedup_vs_exact']:,.0f}×** the exact scan; {best['speedup_vs_read']:,.0f}× the plain read "
            f"(the bandwidth bound) | {'met' if best['speedup_vs_exact'] >= 100 else 'not met'} |",
            f"| index build ≤ 10 min | **{b_idx['build_s']:.0f} s**: {b_idx['train_s']:.0f} s training (on a {b_idx['train_size']:,} sample), "
            f"{b_idx['add_s']:.0f} s adding {ds['n']:,} vectors | {'met' if b_idx['build_s'] <= 600 else 'not met'} |",
        ]
        if k100:
            q = min(k100, key=lambda p: p["p50_ms"])
            out.append(
                f"| (recall@100 ≥ 0.99, for reference) | nprobe {q['nprobe']}, k 100, refine {q['refine']}: R@100 {q['recall']['100']:.4f} at p50 {q['p50_ms']:.2f} ms ({q['speedup_vs_exact']:,.0f}×) | |"
            )
        out += [
            "",
            f"Memory: the index takes {b_idx['index_bytes_per_vector']:.0f} B/vector ({b_idx['index_bytes'] / 1e6:.0f} MB), and the "
            f"{ds['dtype']} vectors the reranker reads take {ds['vector_bytes']:,} B/vector ({ds['vector_bytes'] * ds['n'] / 1e9:.1f} GB page-cached; "
            "nothing is copied into the process).",
            "",
            f"The Pareto front of that run (`{best['factory']}`, k = 10 unless noted):",
            "",
            "| nprobe | refine | cand | R@1 | R@10 | R@100 | p50 ms | p99 ms | search / rerank p50 ms | QPS batch | × exact |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        front = sorted(
            (r["results"][i] for i in r["pareto"] if r["results"][i]["factory"] == best["factory"]),
            key=lambda p: (p["nprobe"], p["k"], p["refine"]),
        )
        for p in front:
            out.append(_point_row(p, f"{p['nprobe']}" + (f" (k {p['k']})" if p["k"] != 10 else "")))
    return "\n".join(out)


def bench_rerank_cold() -> str:
    r = _load("rerank_synth-1M-d2048-float16-cold.json")
    if r is None:
        return "(no result recorded)"
    ex = r["exact"]
    out = [
        f"Exact scan in the same run: {ex['single_query_s'] * 1e3:.0f} ms/query (page-cached {r['dataset']['dtype']}, "
        f"{ex['scan_over_read']:.2f}× a {ex['read_s'] * 1e3:.0f} ms read, load average {r['machine'].get('load_average')}).",
        "",
        "| index | RAM B/vec | disk B/vec | build (train / add) | point | R@10 | p50 ms | p99 ms | × exact |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for b in r["indexes"]:
        pts = [p for p in r["results"] if p["factory"] == b["factory"] and p["k"] == 10]
        ok = sorted((p for p in pts if p["recall"]["10"] >= 0.99), key=lambda p: p["p50_ms"])
        show = (
            ok[:1] + [max(pts, key=lambda p: (p["recall"]["10"], -p["p50_ms"]))]
            if ok
            else [max(pts, key=lambda p: p["recall"]["10"])]
        )
        for j, p in enumerate(dict.fromkeys(map(id, show))):
            p = next(q for q in show if id(q) == p)
            build = f"{b['build_s']:.0f} s ({b['train_s']:.0f} / {b['add_s']:.0f})" if j == 0 else ""
            tag = "fastest at R@10 ≥ 0.99" if ok and p is ok[0] else "highest recall"
            out.append(
                f"| `{b['factory']}` | {p['ram_bytes_per_vector']:,.0f} | {p['disk_bytes_per_vector']:,.0f} | {build} | nprobe {p['nprobe']}, refine {p['refine']} ({tag}) | "
                f"{p['recall']['10']:.4f} | {p['p50_ms']:.2f} | {p['p99_ms']:.1f} | {p['speedup_vs_exact']:,.0f} |"
            )
    return "\n".join(out)


def bench_scaling() -> str:
    rows = [
        "| N | exact scan / plain read (ms) | IVF index | build s (train / add) | index B/vec | RAM B/vec (index + vectors) | best point | p50 / p99 ms | QPS batch | × exact | HNSW: best p50 at R@10 ≥ 0.99 (build s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label in (("10k", "10k"), ("100k", "100k"), ("1M", "1M")):
        r = _load(f"rerank_synth-{name}-d2048-float32.json")
        if r is None:
            continue
        ex = r["exact"]
        ivf = next((i for i in r["indexes"] if "IVF" in i["factory"]), None)
        hnsw = next((i for i in r["indexes"] if "HNSW" in i["factory"]), None)
        best = _rerank_best(r)
        hb = None
        if hnsw:
            ok = [
                p
                for p in r["results"]
                if p["factory"] == hnsw["factory"] and p["k"] == 10 and p["recall"]["10"] >= 0.99
            ]
            hb = min(ok, key=lambda p: p["p50_ms"]) if ok else None
            hmax = max(
                (p["recall"]["10"] for p in r["results"] if p["factory"] == hnsw["factory"] and p["k"] == 10),
                default=float("nan"),
            )
        hcell = (
            "—"
            if hnsw is None
            else (
                f"{hb['p50_ms']:.2f} ms, ef {hb['ef_search']} ({hnsw['build_s']:.0f} s)"
                if hb
                else f"not reached: max R@10 {hmax:.2f} ({hnsw['build_s']:.0f} s)"
            )
        )
        if ivf is None or best is None:
            continue
        nlist = re.search(r"IVF(\d+)", ivf["factory"]).group(1)
        rows.append(
            f"| {label} | {ex['single_query_s'] * 1e3:.1f} / {ex['read_s'] * 1e3:.1f} | IVF{nlist} | {ivf['build_s']:.0f} ({ivf['train_s']:.0f} / {ivf['add_s']:.1f})"
            f"{' reused' if ivf['reused'] else ''} | {ivf['index_bytes_per_vector']:,.0f} | {best['ram_bytes_per_vector']:,.0f} | nprobe {best['nprobe']}, refine {best['refine']}, "
            f"R@10 {best['recall']['10']:.4f} | {best['p50_ms']:.2f} / {best['p99_ms']:.2f} | {best['qps_batch']:,.0f} | {best['speedup_vs_exact']:,.0f} | {hcell} |"
        )
    return "\n".join(rows)


def bench_serve() -> str:
    parts = [
        _serve_block(s)
        for s in (_load("serve_gz2-2000.json"), _load("serve_10M-ondisk.json"))
        if s is not None
    ]
    return "\n\n".join(parts) if parts else "(no result recorded)"


def _serve_block(s: dict) -> str:
    pa, res = s["parameters"], s["results"]
    names = {
        "id_search": "id search (JSON)",
        "image_search": "image upload (PNG, embedded per request)",
        "image_search_again": "image upload, second run",
    }
    out = [
        f"{pa['clients']} clients for {pa['seconds']:g} s per phase against `gr serve` ({pa['workers']} worker) on a {pa['index_count']:,}-object "
        f"{pa['dims']}-d {pa['faiss']} index; load average {s['machine'].get('load_average')} at the start; server memory grew "
        f"{s['server_rss_bytes']['growth'] / 1e6:.0f} MB over the run.",
    ]
    cold, mem = s.get("cold_start"), s.get("server_memory_bytes")
    if cold and mem:
        anon = {k: v.get("RssAnon", 0) / 1e6 for k, v in mem.items()}
        last = [k for k in mem if k.startswith("after_")][-1]
        out[0] += (
            f" Cold start: {cold['to_health_s']:.1f} s from the process start to its first health answer, first search answered"
            f" {cold['first_search_s'] * 1e3:.0f} ms later ({cold['to_first_answer_s']:.1f} s in all). The server's own memory"
            f" (RssAnon) {anon['at_health']:.0f} MB when it first answered, {anon[last]:.0f} MB after the last phase"
            f" (page-cache pages of the memory-mapped vectors and lists not counted)."
        )
        if s.get("image_phases", "run") != "run":
            out[0] += " Image phases skipped: the index holds vectors without images."
    out += ["", "| phase | requests/s | p50 | p99 | errors |", "| --- | --- | --- | --- | --- |"]
    for k in ("id_search", "image_search", "image_search_again"):
        if k in res:
            x = res[k]
            out.append(
                f"| {names[k]} | {x['requests_per_s']:.1f} | {x['p50_ms']:.1f} ms | {x['p99_ms']:.1f} ms | {x['errors']} |"
            )
    return "\n".join(out)


def bench_filter_widening_real() -> str:
    d = _load("filtered_real-shipped-7389-d256.json")
    if d is None:
        return "(no result recorded)"
    p = d["params"]
    base = next(r for r in d["filtered"] if r["selectivity"] == 1.0)
    out = [
        f"{p['n']:,} real embeddings (the shipped model on the two SDSS development folders, 256-d, float16) in `{p['factory']}`, "
        f"nprobe {base['nprobe']} unfiltered (recall@{p['k']} {base['recall_at_k']:.3f}); {p['compare_queries']} held-out queries per row, "
        f"FAISS with the selection as an ID selector, against the exact filtered top {p['k']}; commit `{d['commit'][:12]}`.",
        "",
        "| fraction selected | rows | nprobe widened by 1/√f | recall@10 | nprobe as given | recall@10 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in d["filtered"]:
        if r["selectivity"] == 1.0:
            continue
        f = r["selectivity"]
        same = next((w for w in d["sweep"] if w["selectivity"] == f and w["nprobe"] == base["nprobe"]), None)
        out.append(
            f"| {f:g} | {r['matched']:,} | {r['forced_faiss']['nprobe']} | {r['forced_faiss']['recall_at_k']:.3f} | {base['nprobe']} | "
            f"{same['recall_at_k'] if same else float('nan'):.3f} |"
        )
    return "\n".join(out)


def bench_ray_embed() -> str:
    d = _load("ray_embed.json")
    if d is None:
        return "(no result recorded)"
    p, m = d["parameters"], d["machine"]
    names = {
        "ray1": "Ray, 1 worker (1 CPU)",
        "ray2": "Ray, 2 workers (1 CPU each)",
        "local": "local, one process (all threads)",
    }
    out = [
        f"{p['n']:,} images of {p['size']}² embedded by the `{p['preset']}` preset (untrained) into {-(-p['n'] // p['shard_rows'])} shards "
        f"(batches of {p['batch_size']}) on a local Ray of {p['cpus']} CPUs, {p['repeats']} interleaved repeats; commit `{d['commit'][:12]}`, "
        f"Ray {m.get('ray')}; load average {m.get('load_average_start')} at the start, {d.get('load_average_end')} at the end.",
        "",
        "| engine | images/s (median) | each run (images/s) |",
        "| --- | --- | --- |",
    ]
    for name, s in d["summary"].items():
        each = ", ".join(f"{r['images_per_s']:.0f}" for r in d["runs"] if r["engine"] == name)
        out.append(f"| {names.get(name, name)} | {s['images_per_s_median']:.0f} | {each} |")
    r = d["ratios"]
    local = (
        f"; 2 Ray workers / the local build: **{r['ray2_over_local']:.2f}×**"
        if "ray2_over_local" in r
        else ""
    )
    out += ["", f"2 workers / 1 worker: **{r['ray2_over_ray1']:.2f}×**{local}."]
    return "\n".join(out)


def bench_filtered_query() -> str:
    """§5: filtered queries at three selectivities, the probe-width sweep, adds (benchmarks/filtered_query.py)."""
    name = "filtered_1M-d256-float16.json"
    r = _load(name)
    if r is None:
        return "(no result recorded)"
    p, m, a = r["params"], r["machine"], r["add"]
    load = m.get("load_average")
    threads = p.get("threads", 0)
    out = [
        f"**`results/{name}`** ({'one FAISS and one numba thread per query' if threads == 1 else 'all cores on each query' if not threads else f'{threads} threads per query'}): "
        f"{p['n']:,} × {p['dim']} {p['dtype']}, `{p['factory']}`, "
        f"k {p['k']}, refine {p['refine']}, {p['queries']} held-out queries "
        f"({p['compare_queries']} with each path forced); {m.get('cpu_count', m.get('cpus', '?'))} CPUs, load average {load} at the end; commit `{str(r['commit'])[:10]}`.",
        "",
        "| index nprobe | selectivity | rows matched | plan | nprobe used | recall@10 | p50 ms | p90 ms | forced exact: recall / p50 ms | forced FAISS: recall / p50 ms | DuckDB select ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["filtered"]:
        fe, ff = row.get("forced_exact"), row.get("forced_faiss")
        out.append(
            f"| {row['index_nprobe']} | {row['selectivity'] * 100:g} % | {row['matched']:,} | {row['path']} | {row['nprobe'] if row['nprobe'] is not None else '–'} | "
            f"{row['recall_at_k']:.4f} | {row['p50_ms']:.2f} | {row['p90_ms']:.2f} | "
            + (
                f"{fe['recall_at_k']:.4f} / {fe['p50_ms']:.2f} | {ff['recall_at_k']:.4f} / {ff['p50_ms']:.2f} | {row['select_ms_uncached']:.0f} |"
                if fe
                else "– | – | – |"
            )
        )
    out.append("")
    for npr in dict.fromkeys(row["index_nprobe"] for row in r["filtered"]):
        aims = [row for row in r["filtered"] if row["selectivity"] < 1 and row["index_nprobe"] == npr]
        met = [row for row in aims if row["recall_at_k"] >= 0.99 and row["p50_ms"] <= 10]
        out.append(
            f"Aim (recall@10 ≥ 0.99 and p50 ≤ 10 ms at every selectivity), index nprobe {npr}: met at {len(met)} of {len(aims)} selectivities"
            + (
                "."
                if len(met) == len(aims)
                else "; missed at "
                + ", ".join(f"{row['selectivity'] * 100:g} %" for row in aims if row not in met)
                + "."
            )
        )
    if r.get("sweep"):
        widths = list(dict.fromkeys(x["nprobe"] for x in r["sweep"]))
        out += [
            "",
            "FAISS + ID selector at fixed probe widths (no widening; recall@10 / p50 ms):",
            "",
            "| selectivity | " + " | ".join(f"nprobe {w}" for w in widths) + " |",
            "|---|" + "---|" * len(widths),
        ]
        for sel in dict.fromkeys(x["selectivity"] for x in r["sweep"]):
            cells = {
                x["nprobe"]: f"{x['recall_at_k']:.4f} / {x['p50_ms']:.2f}"
                for x in r["sweep"]
                if x["selectivity"] == sel
            }
            out.append(f"| {sel * 100:g} % | " + " | ".join(cells.get(w, "–") for w in widths) + " |")
    out += [
        "",
        "| add | objects | onto | seconds | objects/s |",
        "|---|---|---|---|---|",
        f"| full build from shards | {a['onto'] + a['added']:,} | – | {a['full_build_seconds']:.1f} | {a['full_build_objects_per_s']:,.0f} |",
        f"| add | {a['added']:,} | {a['onto']:,} | {a['add_seconds']:.1f} | {a['add_objects_per_s']:,.0f} |",
    ]
    if "small_added" in a:
        out.append(
            f"| add | {a['small_added']:,} | {a['small_onto']:,} | {a['small_add_seconds']:.2f} | {a['small_add_objects_per_s']:,.0f} |"
        )
    out += [
        "",
        f"Adding {a['added']:,} took {a['add_vs_rebuild_speedup']:g}× less time than rebuilding all {a['onto'] + a['added']:,}.",
    ]
    return "\n".join(out)


def bench_rerank_galsim() -> str:
    r = _load("rerank_galsim-100k-polar.json")
    if r is None:
        return "(no result recorded)"
    ds, ex = r["dataset"], r["exact"]
    out = [
        f"{ds['n']:,} synthetic GalSim galaxies (96², seed 11) embedded by the demo's trained `polar` model "
        f"({ds['dim']}-d {ds['dtype']}, index built with `--index-type auto` = `{ds['faiss_factory']}`), "
        f"{ds['queries']:,} of its own objects as queries (themselves excluded); exact scan {ex['single_query_s'] * 1e3:.1f} ms/query; "
        f"load average {r['machine'].get('load_average')}. Per index, the fastest point at recall@10 ≥ 0.99 and the best at refine 1:",
        "",
        "| index | build s | fastest at R@10 ≥ 0.99 | p50 ms | R@10 at refine 1 (best) |",
        "|---|---|---|---|---|",
    ]
    seen = set()
    for b in r["indexes"]:
        if b["factory"] in seen:
            continue
        seen.add(b["factory"])
        pts = [p for p in r["results"] if p["factory"] == b["factory"] and p["k"] == 10]
        ok = [p for p in pts if p["recall"]["10"] >= 0.99]
        best = min(ok, key=lambda p: p["p50_ms"]) if ok else None
        r1 = max((p["recall"]["10"] for p in pts if p["refine"] == 1), default=float("nan"))
        knob = (
            ""
            if best is None
            else ", ".join(
                x
                for x in (
                    f"nprobe {best['nprobe']}" if best["nprobe"] else "",
                    f"ef {best['ef_search']}" if best["ef_search"] else "",
                    f"refine {best['refine']}",
                )
                if x
            )
        )
        cell = "not reached" if best is None else f"{knob}: R@10 {best['recall']['10']:.4f}"
        out.append(
            f"| `{b['factory']}` | {b['build_s']:.1f} | {cell} | {'—' if best is None else format(best['p50_ms'], '.2f')} | {r1:.3f} |"
        )
    return "\n".join(out)


_INGEST_PATHS = {
    "baseline": "before: one process decodes, frames, embeds (the code before the fast path)",
    "old": "in-process path of today's code (no workers, no box store)",
    "new-cold": "fast path, boxes measured (first command on a folder)",
    "new-warm": "fast path, boxes reused from the box store",
    "new-warm-main": "fast path, boxes reused, embedding in the main process only",
}


def bench_ingest() -> str:
    """§10: JPEG files → a finished index, old path and fast path in one run (benchmarks/ingest.py)."""
    d = _load("ingest.json")
    if d is None:
        return "(no result recorded)"
    p, m = d["parameters"], d["machine"]
    out = [
        f"`{p['preset']}` preset (untrained weights: speed only), `auto` framing, boxes measured at ≥ {p['measure_side']} px, "
        + (
            f"*before* = the in-process build of commit `{p['baseline_ref']}` (the code before the fast path, run from a `git archive` of it in a child process, same machine, same rounds), "
            if p.get("baseline_ref")
            else ""
        )
        + f"{m.get('cpus_usable')} usable CPUs ({m.get('cpu')}); commit `{str(d['commit'])[:12]}`; load average "
        f"{m.get('load_average_start')} at the start, {d.get('load_average_end')} at the end"
        + (
            f"; each path's median of {p['repeats']} interleaved rounds (images/s of every round below the table)."
            if p.get("repeats", 1) > 1
            else " (other jobs shared the CPUs)."
        ),
        "",
        "| folder | path | images/s | × before | × in-process today | CPU cores busy | decode | framing | resize | embed | write | boxes measured / reused | load at end |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def times(f: dict[str, Any], path: str, ref: str) -> str:
        if path == ref:
            return "1"
        v = f["ratios"].get(f"{path}_over_{ref}")
        return "—" if v is None else f"**{v:.2f}×**" if ref == "baseline" else f"{v:.2f}×"

    for name, f in d["folders"].items():
        old = f.get("old_stages_ms_per_image") or {}
        for r in f["runs"]:
            st = r.get("stages_ms_per_image")
            if r["path"] == "baseline":  # a child process on the old tree: end to end only
                st = {"write": r["write_s"] * 1e3 / r["images"]}
            elif st is None:  # the old path, timed stage by stage on a sample in one process
                st = {
                    "decode": old.get("decode_ms"),
                    "framing": old.get("framing_ms"),
                    "resize": old.get("resize_ms"),
                    "embed": old.get("embed_ms"),
                    "write": r["write_s"] * 1e3 / r["images"],
                }
            cells = [
                ("—" if st.get(k) is None else f"{st[k]:.2f}")
                for k in ("decode", "framing", "resize", "embed", "write")
            ]
            bx = r.get("boxes")
            boxes = "—" if bx is None else f"{bx['measured']:,} / {bx['reused']:,}"
            load = r["load_average_end"][0] if r.get("load_average_end") else "?"
            out.append(
                f"| {name} ({r['images']:,}) | {_INGEST_PATHS.get(r['path'], r['path'])}"
                + (f", {r['precision']}" if r.get("precision") else "")
                + f" | {r['images_per_s']:.0f} | "
                f"{times(f, r['path'], 'baseline')} | {times(f, r['path'], 'old')} | {r['cpu_cores_used']:.2f} | "
                + " | ".join(cells)
                + f" | {boxes} | {load} |"
            )
    rounds = [(name, f["rounds"]) for name, f in d["folders"].items() if f.get("rounds")]
    if rounds and p.get("repeats", 1) > 1:
        out += ["", "Every round, images/s in round order:", ""]
        for name, rs in rounds:
            per: dict[str, list[str]] = {}
            for r in rs:
                per.setdefault(r["path"], []).append(f"{r['images_per_s']:.0f}")
            out.append(
                f"- {name}: "
                + "; ".join(f"{_INGEST_PATHS.get(k, k)} {' / '.join(v)}" for k, v in per.items())
            )
    moves = [(name, f["box_moves"]) for name, f in d["folders"].items() if f.get("box_moves")]
    if moves:
        out += [
            "",
            "How far the boxes measured on the reduced JPEG decode are from those measured on the full image "
            "(full-resolution pixels, every image of the folder):",
            "",
            "| folder | same box | largest edge move p50 / p90 / p99 / max (px) | side change p50 / p90 / p99 | found ≠ | median box side |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, m in moves:
            e, q = m["largest_edge_move_px"], m["side_change_fraction"]
            out.append(
                f"| {name} ({m['images']:,}) | {m['same_box']:.1%} | {e['p50']:g} / {e['p90']:g} / {e['p99']:g} / {e['max']} | "
                f"{q['p50']:.1%} / {q['p90']:.1%} / {q['p99']:.1%} | {m['found_differs']} | {m['box_side_px_median']:g} |"
            )
    out += [
        "",
        "Stage columns are milliseconds per image: for the fast path the CPU time summed over its worker processes "
        "(embed too, except in the main-process variant, where it is that process's wall time); for the old path timed stage by stage on "
        f"{p['stage_sample']} images in one process. `write` is the shards, the vectors file, the FAISS index, the hashes and (since it is written at build time) the searcher's metadata cache.",
        "",
        "Projected embedding pass at the measured rates, on 1, 10 and 100 such machines (Ray: the pass splits by shard; "
        "the FAISS build of a large index is measured in §7):",
        "",
        "| folder | path | 1M: 1 / 10 / 100 machines | 40M: 1 / 10 / 100 machines |",
        "| --- | --- | --- | --- |",
    ]

    def span(h: float) -> str:
        return f"{h:.1f} h" if h >= 1 else f"{h * 60:.0f} min" if h * 60 >= 1 else "< 1 min"

    for name, f in d["folders"].items():
        for path, pr in f["projection_hours"].items():
            cell = lambda n: " / ".join(span(pr[n][f"{k}_machines_hours"]) for k in (1, 10, 100))  # noqa: E731, B023 (called at once)
            out.append(f"| {name} | {path} | {cell('1000000')} | {cell('40000000')} |")
    cpus = m.get("cpus_usable") or 2
    starved = [
        f"{name} {r['path']} ({r['cpu_cores_used']:.2f})"
        for name, f in d["folders"].items()
        for r in f["runs"]
        if r["path"] in ("new-cold", "new-warm") and r["cpu_cores_used"] < 0.75 * cpus
    ]
    if starved:
        out += [
            "",
            f"Fast-path runs (every process busy by design) that got less than {0.75 * cpus:g} of the {cpus} cores (other jobs took the rest; "
            f"their CPU seconds per image match the other runs): {', '.join(starved)}.",
        ]
    return "\n".join(out)


def ingest_expectation() -> str:
    """README: what ``gr build-index`` costs per 1,000 cutouts (benchmarks/results/ingest.json)."""
    d = _load("ingest.json")
    if d is None:
        return "(no ingest benchmark recorded)"
    parts = []
    for name, f in d["folders"].items():
        s = f["seconds_per_1000"]
        side = "424-px" if "gz2_spirals" in name else "128-px" if "6k" in name else name
        new = f"about **{s['new-cold']:.1f} s** per 1,000 {side} JPEG cutouts" if "new-cold" in s else ""
        warm = f", {s['new-warm']:.1f} s once their framing boxes are stored" if "new-warm" in s else ""
        before = "baseline" if "baseline" in s else "old"
        old = f" (the in-process path before it: {s[before]:.1f} s)" if before in s else ""
        parts.append(new + warm + old)
    p = d["parameters"]
    return (
        f"On a 2-core machine `gr build-index` with the `{p['preset']}` model takes "
        + "; ".join(parts)
        + ". "
        "`gr train` and `gr evaluate` measure each image's framing box once and keep it in a box store "
        "(`~/.cache/galaxy-retrieval/framing-boxes`; `GALAXY_RETRIEVAL_CACHE=DIR` moves the package's cache, `off` turns it off), so the build after them "
        "reuses the boxes; the logs say how many were measured and how many reused. "
        "Measured by `benchmarks/ingest.py` (`benchmarks/results/ingest.json`, shared CPU: see its load figures)."
    )


def bench_metadata_memory() -> str:
    """§11: the searcher's metadata table on the heap against memory-mapped (benchmarks/metadata_memory.py)."""
    d = _load("metadata_memory.json")
    if d is None:
        return "(no result recorded)"
    names = {
        "heap": "read into RAM (cache off)",
        "mapped_first_open": "first open: read, cached, mapped",
        "mapped": "later opens: mapped",
    }
    sizes = d["parameters"]["n"]
    out = [
        f"Commit `{str(d['commit'])[:12]}`; load average {d['machine'].get('load_average_start', '?')} at the start, {d.get('load_average_end')} at the end. "
        "RssAnon growth of a fresh process per object, after opening the table and after 1,000 metadata reads plus one id lookup:",
        "",
        "| table | "
        + " | ".join(f"{n:,} objects: open / use (B/object)" for n in sizes)
        + " | table size at the largest |",
        "| --- | " + " | ".join("---" for _ in sizes) + " | --- |",
    ]
    for mode, label in names.items():
        cells = [
            f"{d['runs'][str(n)][mode]['anon_open_bytes_per_object']:.0f} / {d['runs'][str(n)][mode]['anon_use_bytes_per_object']:.0f}"
            for n in sizes
        ]
        out.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {d['runs'][str(sizes[-1])][mode]['table_bytes'] / 1e6:.0f} MB |"
        )
    sl = d.get("slope_bytes_per_object")
    if sl:
        out += [
            "",
            f"Growth per added object between {sizes[0]:,} and {sizes[-1]:,} objects, after the open: "
            f"**{sl['heap']['after_open']:.0f} B** on the heap, **{sl['mapped']['after_open']:.0f} B** memory-mapped "
            "(the use column adds the id → position hash the searcher builds up to 2M objects).",
        ]
    return "\n".join(out)


def bench_train_speed() -> str:
    d = _load("train_speed.json")
    if d is None:
        return "Run `python benchmarks/train_speed.py` to fill this table."
    la = d["machine"].get("load_average") or ["?"]
    out = [
        f"Measured {d['machine'].get('cpu', '?')} ({d['machine'].get('cpus_usable', '?')} CPUs, torch {d['machine'].get('torch', '?')}, "
        f"native bf16: {'yes' if d.get('native_bf16') else 'no'}), commit `{d['commit'][:7]}`, load average {la[0]} at the start; "
        "catalog images per second through one training step (batch 128, both views augmented, InfoNCE, Adam), "
        "median of interleaved rounds; speed-up = median of the per-round ratios to `fp32`.",
        "",
        "| preset | setting | images/s | speed-up | warm-up (s) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in d["presets"].items():
        for s_name, v in r["settings"].items():
            out.append(
                f"| `{name}` | {s_name} | {v['catalog_images_per_s_median']:.1f} | {v['speedup_vs_fp32_median']:.2f}× | {r['warm_up_s'][s_name]:.1f} |"
            )
    return "\n".join(out)


def model_card_quality() -> str:
    d = _load("quality_pretrained.json")
    if d is None:
        return "Run `python benchmarks/quality/pretrained.py` to fill this table."
    la = d["machine"].get("load_average") or ["?"]
    out = [
        f"Checkpoint sha256 `{d['sha256'][:12]}…`, commit `{d['commit'][:7]}`, {d['machine'].get('cpu', '?')}, load average {la[0]}. "
        f"Macro precision@10 (relevant = same label; chance 0.5 on both sets), exact weighted score; held-out = the test 10 % "
        f"of seeds {', '.join(map(str, d['seeds']))} as queries against the whole catalog (mean ± std); all = every object a query.",
        "",
        "| catalog | seen in pretraining | method | P@10 held-out | P@10 all | per class (all) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    names = {
        "model": "network alone",
        "indexed": "network + its descriptor fusion, as indexed",
        "pixels": "raw pixels",
        "polar": "polar Fourier descriptor",
        "morphology": "morphology (CAS, Gini, M20, …)",
    }
    for cat, r in d["catalogs"].items():
        seen = "no (zero-shot)" if cat == "gz2_spirals" else "images only, never labels"
        labels = r.get("label_names") or {}
        for m, v in r["methods"].items():
            label = names.get(
                m, f"fused, descriptor share {m.split('-', 1)[1]}" if m.startswith("fused-") else m
            )
            if m == r["best_descriptor"]:
                label += " (best descriptor)"
            if m == d.get("shipped_method"):
                label = f"**{label} (shipped)**"
            per = ", ".join(f"{labels.get(c, c)} {x:.2f}" for c, x in v["per_class_all"].items())
            ho = v["held_out"]
            out.append(
                f"| {cat} | {seen} | {label} | {ho['mean']:.3f} ± {ho['std']:.3f} | {v['all']:.3f} | {per} |"
            )
    return "\n".join(out)


MODEL_CARD = ROOT / "docs" / "model-card.md"
MODEL_CARD_BLOCKS: dict[str, Callable[[], str]] = {"pretrained-quality": model_card_quality}

BENCH_README = ROOT / "benchmarks" / "README.md"
BENCH_BLOCKS: dict[str, Callable[[], str]] = {
    "train-speed": bench_train_speed,
    "exact-kernel": bench_exact_kernel,
    "synth": bench_synth,
    "rerank-1m": bench_rerank_1m,
    "rerank-cold": bench_rerank_cold,
    "rerank-galsim": bench_rerank_galsim,
    "scaling": bench_scaling,
    "serve": bench_serve,
    "ray-embed": bench_ray_embed,
    "filtered-query": bench_filtered_query,
    "filter-widening-real": bench_filter_widening_real,
    "ingest": bench_ingest,
    "metadata-memory": bench_metadata_memory,
}


# --------------------------------------------------------------------------- the files

BLOCKS: dict[str, Callable[[], str]] = {
    "demo": demo_paragraph,
    "commands": commands_table,
    "measured": measured_table,
    "ingest": ingest_expectation,
}


def render_readme(text: str, blocks: dict[str, Callable[[], str]] | None = None) -> str:
    for name, make in (BLOCKS if blocks is None else blocks).items():
        pat = re.compile(rf"(<!-- generated:{name} -->\n)(.*?)(<!-- /generated:{name} -->)", re.S)
        if not pat.search(text):
            raise SystemExit(f"no <!-- generated:{name} --> block")
        body = make()
        text = pat.sub(lambda m: m.group(1) + body + "\n" + m.group(3), text)  # noqa: B023 (called at once)
    return text


def _architecture_blocks() -> tuple[Path, dict[str, Callable[[], str]]]:
    """docs/architecture.md and its generated blocks (docs/layers.py, loaded by path: this
    script runs as a file, not as a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gr_docs_layers", ROOT / "docs" / "layers.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod.ARCHITECTURE, mod.ARCHITECTURE_BLOCKS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated block is not current")
    ap.add_argument(
        "--record-demo",
        type=Path,
        help="copy a demo run's results.json to benchmarks/results/demo.json first",
    )
    a = ap.parse_args(argv)
    if a.record_demo:
        json.loads(a.record_demo.read_text("utf-8"))  # a whole JSON file, not a half-written one
        shutil.copyfile(a.record_demo, DEMO_RESULTS)
    want = {
        README: render_readme(README.read_text("utf-8")),
        BENCH_README: render_readme(BENCH_README.read_text("utf-8"), BENCH_BLOCKS),
        CLI_DOC: cli_reference(),
    }
    if MODEL_CARD.is_file():
        want[MODEL_CARD] = render_readme(MODEL_CARD.read_text("utf-8"), MODEL_CARD_BLOCKS)
    architecture, blocks = _architecture_blocks()
    want[architecture] = render_readme(architecture.read_text("utf-8"), blocks)
    stale = [p for p, t in want.items() if not p.is_file() or p.read_text("utf-8") != t]
    if a.check:
        for p in stale:
            print(f"{p.relative_to(ROOT)} is not current: run python docs/readme.py", file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        p.write_text(want[p], "utf-8")
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
