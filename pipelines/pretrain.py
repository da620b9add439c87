"""Train the model that ships inside the package (``galaxy_retrieval/model/pretrained/``).

    .venv/bin/python pipelines/pretrain.py --catalog path/to/sdss_gz2_6k --out runs/pretrain
    .venv/bin/python pipelines/pretrain.py --catalog ... --out runs/pretrain --install

Label-free, on real unlabelled survey cutouts (the development set: 5,989 SDSS Galaxy Zoo 2
cutouts; ``gz2_spirals`` is deliberately left out so that it measures the shipped model
zero-shot, docs/model-card.md). The recipe is ``gr train``'s (the descriptor target, and the
descriptor fusion whose statistics come from these images) with a longer cosine schedule
and larger batches (more negatives per InfoNCE step); ``--install`` copies the best epoch's
weights into the package with the run's provenance (catalog, command, commit), which
``docs/model-card.md`` cites. On a GPU the same command runs there (``--device cuda``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from galaxy_retrieval.bench.machine import git_commit, machine_info
from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.cli.render import RichProgress
from galaxy_retrieval.model import model_config
from galaxy_retrieval.model.config import ANGLE_POOLS
from galaxy_retrieval.model.pretrained import install_pretrained
from galaxy_retrieval.train import TrainConfig, train
from galaxy_retrieval.train.augment import GALAXY_AUGMENT
from galaxy_retrieval.train.config import RECIPE_DESCRIPTOR_WEIGHT, RECIPE_FUSION_SHARE


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--catalog", required=True, help="image folder or HDF5 catalog of unlabelled cutouts")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--colour",
        type=float,
        default=None,
        help="per-band gain range of the positives (default: gr train's)",
    )
    p.add_argument(
        "--descriptor-weight",
        type=float,
        default=RECIPE_DESCRIPTOR_WEIGHT,
        help="weight of the descriptor target, as gr train's recipe (0: off)",
    )
    p.add_argument(
        "--angle-pool",
        choices=ANGLE_POOLS,
        default=None,
        help="the polar CNN's pooling over angle (default: the preset's)",
    )
    p.add_argument(
        "--held-out",
        action="append",
        default=[],
        help="name of a catalog kept out of training, recorded in the provenance (repeatable)",
    )
    p.add_argument(
        "--fusion-share",
        type=float,
        default=RECIPE_FUSION_SHARE,
        help="descriptor fusion share of the indexed vector, as gr train's recipe (0: off)",
    )
    p.add_argument("--time-budget", type=float, default=None, help="seconds")
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--install", action="store_true", help="copy the best weights into the package")
    a = p.parse_args(argv)
    augment = GALAXY_AUGMENT if a.colour is None else replace(GALAXY_AUGMENT, pos_colour=a.colour)
    cfg = TrainConfig(
        model=None if a.angle_pool is None else model_config("polar", angle_pool=a.angle_pool),
        augment=augment,
        descriptor_weight=a.descriptor_weight,
        # statistics over the pretraining images, on TrainConfig's default 32 principal axes:
        # the shipped model indexes the same kind of vector as a model fine-tuned with gr train
        fusion_share=a.fusion_share or None,
        epochs=a.epochs,
        batch_size=a.batch_size,
        lr=a.lr,
        temperature=a.temperature,
        seed=a.seed,
        lr_schedule="cosine",
        warmup_epochs=1.0,
        patience=a.epochs,
        time_budget_s=a.time_budget,
        device=a.device,
    )
    catalog = open_catalog(a.catalog, on_error="skip")
    res = train(cfg, catalog, a.out, progress=RichProgress(), resume=a.resume, overwrite=not a.resume)
    print(json.dumps({k: v for k, v in res.to_dict().items() if k != "history"}, indent=1))
    if a.install:
        dest = install_pretrained(
            Path(a.out),
            provenance={
                "catalog": Path(a.catalog).name,
                "catalog_size": len(catalog),
                "command": "python pipelines/pretrain.py " + shlex.join(sys.argv[1:]),
                "commit": git_commit(),
                "machine": machine_info({}),
                "best_epoch": res.best_epoch,
                "epochs_completed": res.epochs_completed,
                "stopped": res.stopped,
                "train_seconds": round(sum(h["seconds"] for h in res.history), 1),
                "held_out_catalogs": a.held_out,
            },
        )
        print(f"installed {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
