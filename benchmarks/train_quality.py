"""Retrieval quality of a label-free training run, against its baselines, in one run.

Trains the chosen recipe(s) on a catalog (by default the 2,000-galaxy synthetic demo catalog,
generated when missing), evaluates each on the held-out 10 % with
:func:`galaxy_retrieval.evaluate.evaluate` (loose accuracy at batch 8 and 64; macro
precision@1/10, mAP@10, nDCG@10 against the whole catalog) and writes everything, with the
untrained-network and raw-pixel baselines measured in the same pass, to ``--out-json``::

    python benchmarks/train_quality.py --recipes default,paper --time-budget 300

Recipes: ``default`` is :class:`TrainConfig` as shipped; ``paper`` is
:meth:`TrainConfig.paper_faithful` (the paper's pairs: untouched anchor, one positive and
one harsh negative pair per image). The CPU may be shared with other processes, which
slows epochs down unpredictably; the JSON records per-epoch seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

from train_embed_speed import _git_commit, _machine  # noqa: E402  (benchmarks/ is the script dir)

from galaxy_retrieval.catalog.hdf5 import HDF5Catalog
from galaxy_retrieval.evaluate import evaluate
from galaxy_retrieval.model import pick_device
from galaxy_retrieval.train import TrainConfig, train


class _Print:
    """Minimal progress: log lines only."""

    from contextlib import contextmanager

    @contextmanager
    def task(self, description, total=None, unit="it"):
        class _H:
            def advance(self, n=1):
                pass

            def update(self, **f):
                pass

        yield _H()

    def log(self, message):
        print(message, flush=True)


def recipe(name: str, **kw) -> TrainConfig:
    if name == "default":
        return TrainConfig(**kw)
    if name == "paper":
        return TrainConfig.paper_faithful(**kw)
    raise SystemExit(f"unknown recipe {name!r}; choices: default, paper")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--catalog", type=Path, default=Path("data/demo.h5"))
    p.add_argument("--generate", action="store_true", help="render the synthetic catalog when it is missing")
    p.add_argument("--n", type=int, default=2000, help="objects to render with --generate")
    p.add_argument("--recipes", default="default", help="comma-separated: default, paper")
    p.add_argument("--preset", default="small")
    p.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    p.add_argument("--time-budget", type=float, default=300.0, help="seconds per training run (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs-dir", type=Path, default=Path("runs/bench"))
    p.add_argument("--out-json", type=Path, default=Path(__file__).parent / "results" / "train_quality.json")
    args = p.parse_args()

    if not args.catalog.exists():
        if not args.generate:
            raise SystemExit(f"{args.catalog}: missing; pass --generate to render it")
        from galaxy_retrieval.synth import SynthConfig, generate_catalog

        generate_catalog(SynthConfig(n=args.n, size=256, seed=args.seed), args.catalog, progress=_Print())
    cat = HDF5Catalog(args.catalog)
    runs = {}
    for name in args.recipes.split(","):
        kw = dict(preset=args.preset, seed=args.seed, time_budget_s=args.time_budget or None)
        if args.epochs:
            kw["epochs"] = args.epochs
        cfg = recipe(name, **kw)
        print(f"=== recipe {name}", flush=True)
        t0 = time.perf_counter()
        res = train(cfg, cat, args.runs_dir / name, progress=_Print(), overwrite=True)
        train_s = time.perf_counter() - t0
        rep = evaluate(args.runs_dir / name, cat, progress=_Print())
        runs[name] = {
            "train_config": cfg.to_dict(),
            "train": {**res.to_dict(), "wall_s": train_s},
            "eval": rep.to_dict(),
        }
    out = {
        "benchmark": "train_quality",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "machine": _machine(pick_device("auto")),
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "catalog": {"path": str(args.catalog), "n": len(cat), "source": cat.source},
        "runs": runs,
        "note": "quality on the held-out 10 % (queries) against the whole catalog (database); baselines measured in the "
        "same evaluation pass; the CPU may be shared with other processes (see per-epoch seconds in the history)",
    }
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(out, indent=2) + "\n")
    for name, r in runs.items():
        e = r["eval"]
        la, rt = e["loose_accuracy"], e["retrieval"] or {}
        line = f"{name:8s} train {r['train']['wall_s']:.0f} s, {r['train']['epochs_completed']} epochs | loose@8 {la['model']['8']:.3f} @64 {la['model']['64']:.3f}"
        if rt:
            line += " | macro P@10 " + ", ".join(
                f"{m} {v['macro']['precision@10']:.3f}" for m, v in rt.items()
            )
        print(line)
    print(f"wrote {args.out_json}")


if __name__ == "__main__":
    main()
