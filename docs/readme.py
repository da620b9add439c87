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
from pathlib import Path
from typing import Any, Callable

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
    cmds = [(name, cmd, cmd.context_class(cmd, info_name=name, parent=gctx)) for name, cmd in group.commands.items()]
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
    parts += [flags.split(",")[0] if "<" not in flags else flags for flags, help in recs if "[required]" in help]
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
        out += ["", f"## `gr {name}`", "", (cmd.help or "").strip(), "", f"    {_synopsis(name, cmd, ctx)}", ""]
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
    same = sum(1 for lab in q["hit_labels"] if lab == q["label"]) if q.get("label") is not None else None
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
    if same is not None:
        text += f" {same} of the query's {len(q['hit_labels'])} neighbours share its class."
    return text


def _rerank_best(d: dict[str, Any], at: float = 0.99) -> dict[str, Any] | None:
    ok = [p for p in d["results"] if p["k"] == 10 and p["recall"].get("10", 0) >= at]
    return min(ok, key=lambda p: p["p50_ms"]) if ok else None


def measured_table() -> str:
    rows = ["| what | figure | source |", "| --- | --- | --- |"]
    s = _load("synth_throughput.json")
    if s:
        pr = s["params"]
        rows.append(f"| synthetic catalog rendering, {pr['size']}², {pr['workers']} workers | {s['summary']['end_to_end_gal_per_s']:.1f} galaxies/s end to end | `synth_throughput.json` |")
    e = _load("exact_kernel.json")
    if e:
        pa = e["parameters"]
        for r in e["results"]:
            k1 = next((x for x in r["rows"] if x["what"] == "kernel" and x["nq"] == 1), None)
            if r["dtype"] == "float32" and k1:
                rows.append(f"| exact score scan (fused numba kernel), {pa['n']:,} × {pa['dim']} float32, one query | {k1['ratio_to_read']:.2f}× the time of a plain read of the matrix | `exact_kernel.json` |")
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
        name = {"gz2": "Galaxy Zoo 2 SDSS cutouts (spiral / other)", "first": "FIRST radio galaxies (four classes)", "synthetic": "synthetic GalSim catalog"}[cat]
        fig = f"`gr train` defaults: held-out macro precision@10 {p['model']['macro']['precision@10']:.3f}"
        if best:
            fig += f"; best baseline ({best}) {p[best]['macro']['precision@10']:.3f}"
        rows.append(f"| {name}, {q['catalog'].get('count', '?'):,} objects, seed 0 | {fig} | `quality_{cat}.json` |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- the files

BLOCKS: dict[str, Callable[[], str]] = {"demo": demo_paragraph, "commands": commands_table, "measured": measured_table}


def render_readme(text: str) -> str:
    for name, make in BLOCKS.items():
        pat = re.compile(rf"(<!-- generated:{name} -->\n)(.*?)(<!-- /generated:{name} -->)", re.S)
        if not pat.search(text):
            raise SystemExit(f"README.md: no <!-- generated:{name} --> block")
        body = make()
        text = pat.sub(lambda m: m.group(1) + body + "\n" + m.group(3), text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated block is not current")
    ap.add_argument("--record-demo", type=Path, help="copy a demo run's results.json to benchmarks/results/demo.json first")
    a = ap.parse_args(argv)
    if a.record_demo:
        json.loads(a.record_demo.read_text("utf-8"))  # a whole JSON file, not a half-written one
        shutil.copyfile(a.record_demo, DEMO_RESULTS)
    want = {README: render_readme(README.read_text("utf-8")), CLI_DOC: cli_reference()}
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
