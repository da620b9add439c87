"""Training speed of the old path (float32, eager) and the new ones, side by side in one run.

    .venv/bin/python benchmarks/train_speed.py                     # polar and small, 7 rounds
    .venv/bin/python benchmarks/train_speed.py --presets polar --rounds 3

One training step is what ``gr train`` does per batch (galaxy_retrieval/train/loop.py): the
two augmented views of a batch of 128 catalog images (the galaxy transforms), one model call
over both, InfoNCE over the batch's weighted scores, backward, Adam. Settings:

- ``fp32``: float32, eager — the path before this benchmark (``precision="fp32"``);
- ``bf16``: bf16 autocast, channels-last (``precision="auto"`` on a CPU with AMX/AVX512-BF16);
- ``bf16+compile``: the same under ``torch.compile`` (``compile="auto"`` on long runs).

The settings are timed in interleaved rounds (each round times every setting once, so a
change of machine load hits them all alike); figures are medians over rounds of catalog
images per second, and the ratios to ``fp32`` are computed per round, then the median taken.
The compile's one-off cost is reported apart. Results: ``benchmarks/results/train_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from galaxy_retrieval.atomic import atomic_write_json
from galaxy_retrieval.bench.machine import git_commit, machine_info
from galaxy_retrieval.model import create_model, normalize, preset
from galaxy_retrieval.model.device import memory_format, resolve_precision, train_autocast
from galaxy_retrieval.score import ScoreWeights
from galaxy_retrieval.train.augment import GALAXY_AUGMENT, PairAugmenter
from galaxy_retrieval.train.pairs import make_pair_batch, pair_loss

OUT = Path(__file__).resolve().parent / "results" / "train_speed.json"
SETTINGS = {"fp32": ("fp32", False), "bf16": ("bf16", False), "bf16+compile": ("bf16", True)}


def make_step(name: str, precision: str, compiled: bool, batch: int, device: torch.device):
    cfg = preset(name)
    model = create_model(cfg, seed=0).to(device).train()
    layout = memory_format(precision, device)
    model = model.to(memory_format=layout)
    fn = torch.compile(model.embed) if compiled else model.embed
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    aug = PairAugmenter(GALAXY_AUGMENT)
    g = torch.Generator().manual_seed(0)
    pool = torch.randint(0, 256, (4 * batch, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8)

    def step() -> None:
        idx = torch.randint(0, len(pool), (batch,), generator=g)
        pb = make_pair_batch(pool[idx].float() / 255.0, None, aug, g, "in_batch", augment_anchors=True)
        x = normalize(pb.images.to(device), cfg).contiguous(memory_format=layout)
        with train_autocast(device, precision):
            emb = fn(x)
        loss, _ = pair_loss(emb.float(), pb, ScoreWeights(), 1.0, "info_nce", 0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def bench(name: str, batch: int, rounds: int, steps: int, device: torch.device) -> dict:
    fns, warm = {}, {}
    for s, (prec, comp) in SETTINGS.items():
        t0 = time.perf_counter()
        fns[s] = make_step(name, prec, comp, batch, device)
        fns[s]()
        fns[s]()  # a second step: the compile and the allocator are warm after it
        warm[s] = round(time.perf_counter() - t0, 2)
    per_round: dict[str, list[float]] = {s: [] for s in SETTINGS}
    for _ in range(rounds):
        for s, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            per_round[s].append(batch * steps / (time.perf_counter() - t0))
    out = {"batch": batch, "steps_per_round": steps, "rounds": rounds, "warm_up_s": warm, "settings": {}}
    for s, v in per_round.items():
        ratios = [a / b for a, b in zip(v, per_round["fp32"])]
        out["settings"][s] = {
            "catalog_images_per_s_median": round(statistics.median(v), 1),
            "catalog_images_per_s_all": [round(x, 1) for x in v],
            "speedup_vs_fp32_median": round(statistics.median(ratios), 2),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="polar,small")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=2, help="training steps per setting per round")
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    device = torch.device("cpu")
    load0 = machine_info({"torch_threads": torch.get_num_threads()})
    res = {
        "benchmark": "train_speed",
        "commit": git_commit(),
        "machine": load0,
        "native_bf16": resolve_precision("auto", device) == "bf16",
        "presets": {},
    }
    for name in a.presets.split(","):
        r = bench(name, a.batch, a.rounds, a.steps, device)
        res["presets"][name] = r
        print(
            name,
            json.dumps({s: v["catalog_images_per_s_median"] for s, v in r["settings"].items()}),
            "speed-up",
            json.dumps({s: v["speedup_vs_fp32_median"] for s, v in r["settings"].items()}),
            flush=True,
        )
    res["machine_after"] = {"load_average": machine_info({})["load_average"]}
    atomic_write_json(a.out, res)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
