"""Training and embedding throughput of the model presets on this machine.

For each preset it measures, in one run:

* ``train``: training steps in each pair mode (pair batch built with the real augmentations
  from images already at model resolution, one forward/backward over all images of the
  batch, Adam step) → catalog images/s (what sets the epoch time), pairs/s and images/s
  through the model. ``paper``: 3 model images and 2 pairs per catalog image;
  ``in_batch`` (the default recipe, anchors augmented): 2 model images per catalog image
  and B² pairs per batch of B;
* ``embed``: :meth:`Embedder.embed` on uint8 256×256 catalog-sized images (resize
  included, as the index builder sees it) → images/s.

Timings are medians over ``--repeats`` timed steps after one warm-up step. Run::

    python benchmarks/train_embed_speed.py --presets small,paper

Results (machine, device, commit, parameters, timings) go to ``--out-json``. The CPU may
be shared with other processes; the note in the JSON says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from galaxy_retrieval.model import Embedder, count_parameters, create_model, normalize, pick_device, preset
from galaxy_retrieval.model.device import PRECISIONS, autocast_for, resolve_precision
from galaxy_retrieval.score import ScoreWeights
from galaxy_retrieval.train.augment import PairAugmenter
from galaxy_retrieval.train.pairs import make_pair_batch, pair_loss


def _git_commit() -> str:
    from galaxy_retrieval.bench.machine import git_commit

    return git_commit()


def _machine(device: torch.device) -> dict:
    from galaxy_retrieval.bench.machine import machine_info

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return machine_info(
        {
            "torch_threads": torch.get_num_threads(),
            "device": str(device),
            "device_name": name,
            "torch": torch.__version__,
        }
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_train(
    name: str, batch: int, repeats: int, device: torch.device, mode: str = "paper", precision: str = "auto"
) -> dict:
    cfg = preset(name)
    precision = resolve_precision(precision, device, cfg.backbone)
    model = create_model(cfg, seed=0).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    aug = PairAugmenter()
    g = torch.Generator().manual_seed(0)
    s = cfg.image_size
    pool = torch.rand(4 * batch, 3, s, s)
    times = []
    for i in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        idx = torch.randint(0, len(pool), (2, batch), generator=g)
        pb = make_pair_batch(pool[idx[0]], pool[idx[1]], aug, g, mode, augment_anchors=mode == "in_batch")
        x = normalize(pb.images.to(device), cfg)
        with autocast_for(device, precision):
            emb = model.embed(x)
        loss, _ = pair_loss(emb.float(), pb, ScoreWeights(), 1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    pairs = 2 * batch if mode == "paper" else batch * batch
    model_images = pb.images.shape[0]
    return {
        "mode": mode,
        "precision": precision,
        "batch_images": batch,
        "pairs_per_step": pairs,
        "model_images_per_step": model_images,
        "step_s_median": step,
        "step_s_all": times,
        "catalog_images_per_s": batch / step,
        "pairs_per_s": pairs / step,
        "model_images_per_s": model_images / step,
    }


def bench_embed(
    name: str, batch: int, repeats: int, device: torch.device, src: int, precision: str = "auto"
) -> dict:
    cfg = preset(name)
    emb = Embedder.from_model(create_model(cfg, seed=0), device=device, precision=precision)
    ims = np.random.default_rng(0).integers(0, 256, (batch, src, src, 3), dtype=np.uint8)
    times = []
    for i in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        emb.embed(ims, batch_size=batch)
        _sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    return {
        "precision": emb.precision,
        "batch_images": batch,
        "source_size": src,
        "batch_s_median": t,
        "batch_s_all": times,
        "images_per_s": batch / t,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="small,paper", help="comma-separated preset names")
    p.add_argument("--train-batch", default="small=64,paper=8", help="images per training step, per preset")
    p.add_argument("--embed-batch", default="small=256,paper=32", help="images per embed call, per preset")
    p.add_argument("--repeats", type=int, default=3, help="timed steps after one warm-up")
    p.add_argument("--modes", default="in_batch,paper", help="training pair modes to time")
    p.add_argument("--source-size", type=int, default=256, help="side of the uint8 images given to embed()")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto: bf16 where it is native (the product's rule)",
    )
    p.add_argument(
        "--out-json", type=Path, default=Path(__file__).parent / "results" / "train_embed_speed.json"
    )
    args = p.parse_args()

    device = pick_device(args.device)
    tb = dict((k, int(v)) for k, v in (kv.split("=") for kv in args.train_batch.split(",")))
    eb = dict((k, int(v)) for k, v in (kv.split("=") for kv in args.embed_batch.split(",")))
    results = {}
    t_all = time.perf_counter()
    for name in args.presets.split(","):
        cfg = preset(name)
        r = {
            "config": cfg.to_dict(),
            "parameters_paper_count": count_parameters(create_model(cfg)),
            "train": {
                m: bench_train(name, tb.get(name, 16), args.repeats, device, m, args.precision)
                for m in args.modes.split(",")
            },
            "embed": bench_embed(
                name, eb.get(name, 64), args.repeats, device, args.source_size, args.precision
            ),
        }
        results[name] = r
        for m, t in r["train"].items():
            print(
                f"{name:6s} train[{m:8s}] {t['catalog_images_per_s']:7.1f} catalog img/s, {t['pairs_per_s']:8.1f} pairs/s, "
                f"{t['model_images_per_s']:7.1f} img/s through the model  [{device}]",
                flush=True,
            )
        print(
            f"{name:6s} embed {r['embed']['images_per_s']:8.1f} img/s from {args.source_size}² uint8  [{device}]",
            flush=True,
        )
    out = {
        "benchmark": "train_embed_speed",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "machine": _machine(device),
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": results,
        "wall_s": time.perf_counter() - t_all,
        "note": "medians of timed steps after one warm-up; training steps include augmentation; embed includes "
        "resizing from source_size; the CPU may be shared with other processes (2-core VM shared by several agents)",
    }
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out_json}")


if __name__ == "__main__":
    main()
