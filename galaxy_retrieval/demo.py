"""The end-to-end demo: synthetic catalog → label-free training → evaluation → index → query.

Driven by a pipeline file (``pipelines/demo.toml``). Every step's output lands where the file
says; a step whose output already exists for the same settings is reused, so running the demo
twice costs seconds the second time (``fresh=True`` redoes everything).
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .atomic import atomic_path, atomic_write_json
from .errors import CheckpointError, ConfigError
from .pipeline_file import read_pipeline_file
from .progress import NULL_PROGRESS, Progress

__all__ = [
    "DemoConfig",
    "DemoResult",
    "load_demo_config",
    "run_demo",
    "demo_results",
    "DEFAULT_PIPELINE",
    "RESULTS_FILE",
]

DEFAULT_PIPELINE = Path(__file__).resolve().parent.parent / "pipelines" / "demo.toml"
#: the demo's figures, written into the run directory
RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class SynthStep:
    n: int = 2000
    size: int = 256
    seed: int = 0
    out: Path = Path("data/demo/catalog.h5")
    contact_sheet: Path = Path("data/demo/contact-sheet.png")


@dataclass(frozen=True)
class TrainStep:
    preset: str = "small"
    out: Path = Path("runs/demo")
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # any other TrainConfig field


@dataclass(frozen=True)
class IndexStep:
    out: Path = Path("indexes/demo")
    kind: str = "auto"
    shard_rows: int = 512


@dataclass(frozen=True)
class QueryStep:
    k: int = 10
    refine: int = 10
    query_image: Path = Path("data/demo/query.png")
    mosaic: Path = Path("runs/demo/query-mosaic.png")
    explain: Path | None = Path("runs/demo/explain.png")  # what each match was based on (gr explain)


@dataclass(frozen=True)
class DemoConfig:
    synth: SynthStep = field(default_factory=SynthStep)
    train: TrainStep = field(default_factory=TrainStep)
    index: IndexStep = field(default_factory=IndexStep)
    query: QueryStep = field(default_factory=QueryStep)


def _section(cls: type, d: dict[str, Any], where: str, root: Path) -> Any:
    known = {f.name: f for f in fields(cls)}
    kw: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for k, v in d.items():
        if k not in known:
            if "options" in known:
                extra[k] = v
                continue
            raise ConfigError(f"{where}: unknown key {k!r} (known: {', '.join(known)})")
        kw[k] = root / v if known[k].type in ("Path", Path, "Path | None") else v
    if extra:
        kw["options"] = extra
    return cls(**kw)


def load_demo_config(path: str | Path = DEFAULT_PIPELINE, root: str | Path = ".") -> DemoConfig:
    """Read a demo pipeline TOML; relative paths are taken from ``root``."""
    p = Path(path)
    parts = {"synth": SynthStep, "train": TrainStep, "index": IndexStep, "query": QueryStep}
    d = read_pipeline_file(p, parts)
    r = Path(root)
    return DemoConfig(
        **{name: _section(cls, d.get(name, {}), f"{p} [{name}]", r) for name, cls in parts.items()}
    )


@dataclass(frozen=True)
class DemoResult:
    catalog: Path
    contact_sheet: Path
    train: Any  # TrainResult, or None when an existing run was reused
    run_dir: Path
    evaluation: Any  # EvalReport
    build: Any  # BuildResult
    query: Any  # QueryResult
    query_object: str
    reused: list[str]
    explain: Any = None  # ExplainResult, when the pipeline asks for one
    seconds: dict[str, float] = field(default_factory=dict)  # per step, and "total"
    results_file: Path | None = None  # the run's figures as JSON (README tables are made from it)
    shipped: float | None = None  # held-out P@10 of the shipped model, zero-shot; None without one


def _catalog_matches(path: Path, s: SynthStep) -> bool:
    if not path.is_file():
        return False
    import h5py

    try:
        with h5py.File(path, "r") as f:
            from .synth.generate import FORMAT_VERSION

            # a file from an older generator is re-rendered, not reused
            version = f.attrs.get("version", "")
            version = version.decode() if isinstance(version, bytes) else str(version)
            return (
                version.endswith(f"+synth{FORMAT_VERSION}")
                and int(f.attrs.get("seed", -1)) == s.seed
                and int(f["images"].shape[0]) == s.n
                and int(f["images"].shape[1]) == s.size
            )
    except OSError:
        return False


def run_demo(cfg: DemoConfig, progress: Progress = NULL_PROGRESS, fresh: bool = False) -> DemoResult:
    from .evaluate import evaluate

    reused: list[str] = []
    clock = _Clock()
    s, t, q = cfg.synth, cfg.train, cfg.query
    cat, sheet = _catalog_step(s, progress, fresh, reused)
    clock.lap("catalog")

    train_result = _train_step(t, cat, progress, fresh, reused)
    clock.lap("training")

    progress.log("[3/5] evaluating on the held-out 10 % (labels only measure)")
    report = evaluate(t.out, cat, progress=progress)
    shipped = _shipped_model_score(cat, report.split_seed, progress, evaluate)
    clock.lap("evaluation")

    build = _index_step(cfg, cat, progress)
    clock.lap("index")

    rec, query_label, result = _query_step(cfg, cat, progress)
    clock.lap("query")
    explained = None
    if q.explain is not None:
        from .explain import explain_query

        explained = explain_query(cfg.index.out, q.query_image, q.explain, k=6)
        clock.lap("explain")
    cat.close()
    seconds = clock.laps()
    out = DemoResult(
        s.out,
        sheet,
        train_result,
        t.out,
        report,
        build,
        result,
        rec.object_id,
        reused,
        explained,
        seconds,
        shipped=shipped,
    )
    results_file = t.out / RESULTS_FILE
    atomic_write_json(results_file, demo_results(cfg, out, query_label))
    return DemoResult(**{**out.__dict__, "results_file": results_file})


def _catalog_step(s: SynthStep, progress: Progress, fresh: bool, reused: list[str]) -> tuple[Any, Path]:
    """Step 1: render the synthetic catalog (or reuse a matching one) and its contact sheet;
    the open catalog and the sheet's path."""
    from .catalog import open_catalog
    from .synth import SynthConfig, generate_catalog
    from .viz.catalog import catalog_contact_sheet

    if not fresh and _catalog_matches(s.out, s):
        progress.log(f"[1/5] synthetic catalog: reusing {s.out}")
        reused.append("catalog")
    else:
        progress.log(f"[1/5] synthetic catalog: rendering {s.n} galaxies at {s.size}² with GalSim")
        generate_catalog(
            SynthConfig(n=s.n, size=s.size, seed=s.seed), s.out, progress=progress, overwrite=True
        )
    cat = open_catalog(s.out)
    sheet = catalog_contact_sheet(cat, s.contact_sheet)
    return cat, sheet


def _train_step(t: TrainStep, cat: Any, progress: Progress, fresh: bool, reused: list[str]) -> Any:
    """Step 2: train label-free (or reuse a run with the same settings); the TrainResult,
    None when reused."""
    from .train import TrainConfig, train, trained_with

    try:
        tcfg = TrainConfig(preset=t.preset, seed=t.seed, **t.options)
    except TypeError as e:
        raise ConfigError(f"[train] in the pipeline file: {e}") from None
    train_result = None
    if not fresh and trained_with(t.out, tcfg):
        progress.log(f"[2/5] training: reusing {t.out} (same settings; a fresh run retrains)")
        reused.append("training")
    else:
        progress.log(f"[2/5] training the {t.preset} preset label-free on {len(cat)} galaxies")
        train_result = train(tcfg, cat, t.out, progress=progress, overwrite=True)
    return train_result


def _index_step(cfg: DemoConfig, cat: Any, progress: Progress) -> Any:
    """Step 4: build the index from the trained run; the BuildResult."""
    from .index.build import BuildConfig, build_index
    from .index.candidates import IndexSpec

    progress.log(f"[4/5] building the index {cfg.index.out}")
    return build_index(
        cfg.train.out,
        cat,
        cfg.index.out,
        BuildConfig(shard_rows=cfg.index.shard_rows, index=IndexSpec(kind=cfg.index.kind), overwrite=True),
        progress=progress,
    )


def _query_step(cfg: DemoConfig, cat: Any, progress: Progress) -> tuple[Any, Any, Any]:
    """Step 5: write a held-out galaxy as the query image and query the index with it; the
    query's catalog record, its label (None without labels) and the QueryResult."""
    from PIL import Image

    from .search.options import SearchOptions
    from .search.query import QueryRequest, run_query
    from .train import split_indices

    q = cfg.query
    _, _, test_rows = split_indices(len(cat), cfg.train.seed)
    labels = cat.labels()
    # a held-out spiral if there is one: the most recognisable query for a first look
    pick = next((int(r) for r in test_rows if labels is not None and labels[r] == 5), int(test_rows[0]))
    rec = cat[pick]
    with atomic_path(q.query_image) as tmp:
        Image.fromarray(rec.image).save(tmp, format="PNG")
    progress.log(f"[5/5] querying with {q.query_image} (held-out object {rec.object_id})")
    result = run_query(
        QueryRequest(
            index=cfg.index.out,
            images=(q.query_image,),
            options=SearchOptions(k=q.k, refine=q.refine),
            mosaic=q.mosaic,
        )
    )
    return rec, labels[pick] if labels is not None else None, result


def _shipped_model_score(cat: Any, split_seed: int, progress: Progress, evaluate: Any) -> float | None:
    """Held-out macro precision@10 of the model shipped in the package, zero-shot (it was
    trained on real SDSS cutouts, never on these synthetic galaxies); None without it."""
    from .model.pretrained import pretrained_dir

    try:
        shipped = pretrained_dir()
    except CheckpointError:  # an installation without the weights
        return None
    rep = evaluate(shipped, cat, baselines=False, split_seed=split_seed)
    p10 = rep.retrieval["model"].macro.get("precision@10") if rep.retrieval else None
    if p10 is not None:
        progress.log(
            f"the shipped model (trained on SDSS cutouts, never on these galaxies): held-out macro precision@10 {p10:.3f}"
        )
    return p10


class _Clock:
    def __init__(self) -> None:
        self._t0 = self._last = time.perf_counter()
        self._laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self._laps[name] = round(now - self._last, 2)
        self._last = now

    def laps(self) -> dict[str, float]:
        return {**self._laps, "total": round(time.perf_counter() - self._t0, 2)}


def demo_results(cfg: DemoConfig, res: DemoResult, query_label: Any) -> dict[str, Any]:
    """What a demo run measured, as the JSON ``runs/demo/results.json`` (and, copied with
    ``docs/readme.py --record-demo``, ``benchmarks/results/demo.json``, which README figures are made from)."""
    from .bench.machine import git_commit, machine_info

    rep = res.evaluation
    p10 = {}
    if rep.retrieval:
        p10 = {m: r.macro.get("precision@10") for m, r in rep.retrieval.items()}
    hits = res.query.hits[0] if res.query.hits else []
    return {
        "benchmark": "demo",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine_info(),
        "pipeline": {
            "synth": {"n": cfg.synth.n, "size": cfg.synth.size, "seed": cfg.synth.seed},
            "train": {"preset": cfg.train.preset, "seed": cfg.train.seed, **cfg.train.options},
            "index": {"kind": cfg.index.kind},
            "query": {"k": cfg.query.k, "refine": cfg.query.refine},
        },
        "reused": list(res.reused),
        "seconds": res.seconds,
        "epochs": None if res.train is None else len(res.train.history),
        "evaluation": {
            "split": rep.split,
            "n_queries": rep.n_queries,
            "precision@10_macro": p10,
            "best_baseline": rep.best_baseline(),
            "shipped_model_precision@10_macro": res.shipped,
            "loose_accuracy": {m: {str(b): v for b, v in d.items()} for m, d in rep.loose_accuracy.items()},
        },
        "query": {
            "object": res.query_object,
            "label": None if query_label is None else int(query_label),
            "hit_ids": [h.object_id for h in hits],
            "hit_labels": [h.metadata.get("label") for h in hits],
            "seconds": res.query.seconds,
        },
    }
