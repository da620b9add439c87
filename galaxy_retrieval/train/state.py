"""The resume point of a training run: ``last/`` in the run directory.

    last/model.safetensors   weights after the latest epoch
    last/state.safetensors   optimizer moments, RNG state and learned score-weight logits,
                             as plain tensors
    last/state.json          everything scalar needed to resume, and each file's sha256

Written whole into ``last.new/`` and swapped in by renames, so a kill at any point leaves
one whole resume point (:func:`settle_last`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write_bytes, atomic_write_json, fsync_dir, sha256_file
from ..errors import CheckpointError
from ..model.backbone import Backbone
from ..model.checkpoint import config_from, load_weights_into, read_meta_json, read_weights, save_weights
from ..model.layout import (
    FORMAT_VERSION,
    LAST_DIR,
    META_FILE,
    META_KEY,
    STATE_JSON,
    STATE_TENSORS,
    WEIGHTS_FILE,
)
from .config import TrainConfig

__all__ = [
    "save_train_state",
    "load_train_state",
    "settle_last",
    "last_is_whole",
    "first_save_killed",
    "has_run",
    "check_resumable",
]


def save_train_state(
    run_dir: Path,
    model: Backbone,
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
) -> None:
    """Write ``last/``: weights, optimizer moments + extra tensors (RNG states), JSON state."""
    from safetensors.torch import save

    # The resume point is one unit: written whole into last.new/, then swapped in by renames
    # (a kill between writing the weights and the state once resumed "after epoch 3" with
    # epoch-4 weights). state.json also records each file's sha256, checked on resume.
    last = run_dir / LAST_DIR
    new = run_dir / (LAST_DIR + ".new")
    shutil.rmtree(new, ignore_errors=True)
    files = {WEIGHTS_FILE: save_weights(new / WEIGHTS_FILE, model)}
    osd = optimizer.state_dict()
    flat: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in osd["state"].items():
        for name, val in st.items():
            if isinstance(val, torch.Tensor):
                flat[f"optim.{idx}.{name}"] = val.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = val
    for k, v in tensors.items():
        flat[f"extra.{k}"] = v.detach().to("cpu").contiguous()
    data = save(flat, metadata={META_KEY: json.dumps({"kind": "galaxidnet-train-state"})})
    atomic_write_bytes(new / STATE_TENSORS, data)
    files[STATE_TENSORS] = hashlib.sha256(data).hexdigest()
    groups = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in osd["param_groups"]
    ]
    atomic_write_json(
        new / STATE_JSON,
        {
            "format_version": FORMAT_VERSION,
            "state": state,
            "optimizer": {"param_groups": groups, "scalars": scalars},
            "files": files,
        },
    )
    fsync_dir(new)
    old = run_dir / (LAST_DIR + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if last.exists():
        os.replace(last, old)
    os.replace(new, last)
    fsync_dir(run_dir)
    shutil.rmtree(old, ignore_errors=True)


def last_is_whole(last: Path) -> bool:
    """Whether ``last``-like directory holds a state.json whose recorded files match."""
    try:
        js = json.loads((last / STATE_JSON).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    files = js.get("files") if isinstance(js, dict) else None
    if not isinstance(files, dict):
        return False
    return all(
        (last / name).is_file() and sha256_file(last / name) == digest for name, digest in files.items()
    )


def settle_last(run_dir: str | Path) -> None:
    """Finish or undo a swap of the resume point that a kill interrupted (see
    :func:`save_train_state`): a whole ``last.new`` becomes ``last``; otherwise ``last``
    (or, if the kill fell between the two renames, ``last.old``) stays the resume point."""
    run_dir = Path(run_dir)
    last, new, old = (run_dir / (LAST_DIR + sfx) for sfx in ("", ".new", ".old"))
    if new.is_dir():
        if last_is_whole(new):
            if last.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(last, old)
            os.replace(new, last)
        else:
            shutil.rmtree(new, ignore_errors=True)
    if not last.exists() and old.is_dir():
        os.replace(old, last)
    shutil.rmtree(old, ignore_errors=True)


def load_train_state(
    run_dir: Path, model: Backbone, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restore ``last/`` into ``model`` and ``optimizer``; return (extra tensors, JSON state)."""
    last = run_dir / LAST_DIR
    settle_last(run_dir)
    state_json = last / STATE_JSON
    if not state_json.is_file():
        raise CheckpointError(f"{run_dir}: nothing to resume (no {LAST_DIR}/{STATE_JSON})")
    js = read_meta_json(state_json)
    for name, digest in (js.get("files") or {}).items():  # absent in runs written before the check
        if not (last / name).is_file() or sha256_file(last / name) != digest:
            raise CheckpointError(
                f"{last / name}: does not match {state_json} (the resume point was changed or only partly written); "
                "cannot resume this run"
            )
    tensors, file_meta = read_weights(last / WEIGHTS_FILE)
    # resume points written before the model config held the suppression never recorded
    # it: the run's own setting is the only one there is
    cfg = config_from(last / WEIGHTS_FILE, file_meta, legacy_suppress_default=model.config.suppress)
    if cfg.shape_key() != model.config.shape_key():
        raise CheckpointError(
            f"{last / WEIGHTS_FILE}: checkpoint is {cfg.describe()}, but the run expects {model.config.describe()}"
        )
    load_weights_into(model, tensors, last / WEIGHTS_FILE)
    flat, _ = read_weights(last / STATE_TENSORS)
    opt = js.get("optimizer") or {}
    osd_state: dict[int, dict[str, Any]] = {}
    for key, val in flat.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            osd_state.setdefault(int(idx), {})[name] = val
    for idx, sc in (opt.get("scalars") or {}).items():
        osd_state.setdefault(int(idx), {}).update(sc)
    groups = [
        {k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
        for g in opt.get("param_groups", [])
    ]
    try:
        optimizer.load_state_dict({"state": osd_state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(
            f"{last / STATE_TENSORS}: optimizer state does not fit this model ({e})"
        ) from None
    extra = {k[len("extra.") :]: v for k, v in flat.items() if k.startswith("extra.")}
    return extra, js.get("state", {})


def first_save_killed(out: Path) -> bool:
    """A kill during the first epoch's save: the best weights written, the resume point only
    partly (``last.new`` not whole), no ``last/``, no ``checkpoint.json``. A rerun used to
    say "resume it or overwrite it", and --resume "nothing to resume"."""
    new = out / (LAST_DIR + ".new")
    return (
        new.is_dir()
        and not (out / LAST_DIR).exists()
        and not (out / (LAST_DIR + ".old")).exists()
        and not (out / META_FILE).exists()
        and not last_is_whole(new)
    )


def has_run(out: Path) -> bool:
    return (out / WEIGHTS_FILE).exists() or (out / LAST_DIR).exists() or (out / META_FILE).exists()


def check_resumable(out: Path, cfg: TrainConfig) -> None:
    """Refuse to resume a run that ``cfg`` cannot continue; checked before any data is
    loaded (the seed fixes the split, so it cannot change)."""
    settle_last(out)  # a kill mid-save leaves the previous resume point or the new one, whole
    state_json = out / LAST_DIR / "state.json"
    if not state_json.is_file():
        raise CheckpointError(
            f"{out}: nothing to resume (no {LAST_DIR}/state.json); train without resume first"
        )
    try:
        saved = json.loads(state_json.read_text("utf-8")).get("state", {})
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{state_json}: unreadable resume state ({e})") from None
    saved_seed = saved.get("seed", cfg.seed)
    if saved_seed != cfg.seed:
        raise CheckpointError(
            f"{out / LAST_DIR}: run was trained with seed {saved_seed} (which fixes the data split); got seed {cfg.seed}"
        )
    saved_learn = bool(saved.get("learn_score_weights", False))
    if saved_learn != cfg.learn_score_weights:
        raise CheckpointError(
            f"{out / LAST_DIR}: run was trained with learn_score_weights={saved_learn}; "
            f"got learn_score_weights={cfg.learn_score_weights} (resume with the run's setting)"
        )
