"""Checkpoint directories: safetensors weights + JSON metadata; loading never unpickles.

Layout of ``runs/NAME/``::

    model.safetensors        best weights (lowest validation loss); the model config is
                             also in the file's metadata, so the file alone is usable
    checkpoint.json          format version, package version, model config, training
                             config, epoch, best val loss, metric history, weights sha256;
                             with ``learn_score_weights`` also ``score_weights`` (the
                             best epoch's learned weights; the training config keeps the
                             initial ones)
    history.json             per-epoch metrics (the same list as in checkpoint.json)
    history.png              loss and loose accuracy per epoch (paper Fig. 3)
    last/model.safetensors   weights after the latest epoch (for --resume)
    last/state.safetensors   optimizer moments, RNG state and learned score-weight logits,
                             as plain tensors
    last/state.json          everything scalar needed to resume

Every file is written to a temporary name in the same directory and moved into place
with ``os.replace``, so a crash never leaves a half-written file under a real name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError
from ..atomic import atomic_write_bytes, atomic_write_json, fsync_dir, sha256_file
from .config import ViTConfig
from .vit import GalaxIDNetViT, build_model

__all__ = [
    "FORMAT_VERSION",
    "WEIGHTS_FILE",
    "META_FILE",
    "HISTORY_FILE",
    "PLOT_FILE",
    "LAST_DIR",
    "settle_last",
    "USAGE_KEYS",
    "sha256_file",
    "save_weights",
    "read_weights",
    "resolve_checkpoint",
    "load_model",
    "save_train_state",
    "load_train_state",
    "weights_sha256",
]

FORMAT_VERSION = 1
KIND = "galaxidnet-vit"
WEIGHTS_FILE = "model.safetensors"
META_FILE = "checkpoint.json"
HISTORY_FILE = "history.json"
PLOT_FILE = "history.png"
LAST_DIR = "last"
STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
_META_KEY = "galaxy_retrieval"
#: metadata a training run also writes into the best weights file (when set), so that file
#: alone is used as the run intended: learned score weights, source suppression
USAGE_KEYS = ("score_weights", "suppress_sources", "fusion")


def _weights_bytes(model: GalaxIDNetViT, extra_meta: dict[str, Any] | None = None) -> bytes:
    from safetensors.torch import save

    sd = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    meta = {"kind": KIND, "format_version": FORMAT_VERSION, "model_config": model.config.to_dict(), **(extra_meta or {})}
    # one metadata key: safetensors writes several keys in hash-map order, which would make
    # the bytes (hence the sha256 that identifies a model) differ between identical saves
    return save(sd, metadata={_META_KEY: json.dumps(meta, sort_keys=True)})


def weights_sha256(model: GalaxIDNetViT) -> str:
    """sha256 the weights file of this model would have (identity of an unsaved model)."""
    return hashlib.sha256(_weights_bytes(model)).hexdigest()


def save_weights(path: str | Path, model: GalaxIDNetViT, extra_meta: dict[str, Any] | None = None) -> str:
    """Write the model's weights atomically; return the file's sha256."""
    data = _weights_bytes(model, extra_meta)
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of a safetensors file; CheckpointError if unreadable."""
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # SafetensorError, OSError, header JSON errors…
        raise CheckpointError(f"{path}: not a readable safetensors file (corrupt or truncated?): {e}") from None
    meta: dict[str, Any] = {}
    if _META_KEY in raw:
        try:
            meta = json.loads(raw[_META_KEY])
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path}: metadata is not JSON ({e})") from None
        if not isinstance(meta, dict):
            raise CheckpointError(f"{path}: metadata must be a JSON object")
    return tensors, meta


def resolve_checkpoint(path: str | Path) -> tuple[Path, Path | None]:
    """(weights file, checkpoint.json or None) for a run directory or a weights file;
    ``"pretrained"`` names the model shipped in the package (:mod:`.pretrained`)."""
    if str(path) == "pretrained" and not Path(path).exists():
        from .pretrained import pretrained_dir

        path = pretrained_dir()
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint (expected a run directory or a {WEIGHTS_FILE} file)")
    if p.is_dir():
        w = p / WEIGHTS_FILE
        if not w.is_file():
            hint = " (training may not have finished an epoch yet)" if (p / LAST_DIR).is_dir() else ""
            raise CheckpointError(f"{p}: directory has no {WEIGHTS_FILE}; not a checkpoint{hint}")
        meta = p / META_FILE
        return w, (meta if meta.is_file() else None)
    meta = p.parent / META_FILE
    return p, (meta if meta.is_file() and p.name == WEIGHTS_FILE else None)


def _read_meta_json(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable checkpoint metadata ({e})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: checkpoint metadata must be a JSON object")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is not supported (this package reads ≤ {FORMAT_VERSION})"
        )
    return meta


def _describe(cfg: ViTConfig) -> str:
    return (
        f"preset {cfg.name!r}: image {cfg.image_size}, patch {cfg.patch_size}, hidden {cfg.hidden}, "
        f"depth {cfg.depth}, heads {cfg.num_heads}, mlp {cfg.mlp_hidden}, out {cfg.out_dim}"
    )


def _config_from(weights: Path, file_meta: dict[str, str], meta: dict[str, Any] | None, meta_path: Path | None) -> ViTConfig:
    raw = None
    where = weights
    if meta is not None and "model" in meta:
        raw, where = meta["model"], meta_path
    elif "model_config" in file_meta:
        raw = file_meta["model_config"]
    if raw is None:
        raise CheckpointError(f"{weights}: no model config (neither {META_FILE} beside it nor safetensors metadata)")
    try:
        return ViTConfig.from_dict(raw)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{where}: invalid model config: {e}") from None


def load_model(
    path: str | Path, expect: ViTConfig | str | None = None
) -> tuple[GalaxIDNetViT, dict[str, Any], Path, str]:
    """Load a checkpoint onto the CPU → (model in eval mode, metadata dict, weights path, sha256).

    ``expect`` (a preset name or a :class:`ViTConfig`) makes a checkpoint of another
    preset or shape fail with a :class:`CheckpointError` that names both.
    """
    weights, meta_path = resolve_checkpoint(path)
    meta = _read_meta_json(meta_path) if meta_path is not None else None
    tensors, file_meta = read_weights(weights)
    if file_meta.get("kind", KIND) != KIND:
        raise CheckpointError(f"{weights}: holds {file_meta.get('kind')!r} weights, not a {KIND} model")
    cfg = _config_from(weights, file_meta, meta, meta_path)
    if expect is not None:
        if isinstance(expect, str):
            if cfg.name != expect:
                raise CheckpointError(f"{weights}: checkpoint is {_describe(cfg)}, but preset {expect!r} was asked for")
        elif expect.shape_key() != cfg.shape_key():
            raise CheckpointError(f"{weights}: checkpoint is {_describe(cfg)}, but the run expects {_describe(expect)}")
    model = build_model(cfg)
    _load_state(model, tensors, weights)
    model.eval()
    if meta is None:
        # the weights file alone: what training recorded in it about how to use the model
        meta = {"format_version": FORMAT_VERSION, "model": cfg.to_dict()}
        meta.update({k: file_meta[k] for k in USAGE_KEYS if file_meta.get(k) is not None})
    elif file_meta.get("fusion") is not None:
        # the fusion is part of what the weights file embeds (its sha256 covers it): the file wins
        meta = {**meta, "fusion": file_meta["fusion"]}
    return model, meta, weights, sha256_file(weights)


def _load_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:5])}{' …' if len(unexpected) > 5 else ''}")
        raise CheckpointError(f"{where}: weights do not match the model config ({'; '.join(parts)})")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"{where}: tensor {k!r} has shape {tuple(tensors[k].shape)} but the model config needs {tuple(v.shape)}"
            )
        if not torch.isfinite(tensors[k]).all():
            raise CheckpointError(f"{where}: tensor {k!r} contains NaN or infinite values")
    model.load_state_dict({k: t.to(torch.float32) for k, t in tensors.items()})


# ---- resume state -------------------------------------------------------------------------


def save_train_state(
    run_dir: Path,
    model: GalaxIDNetViT,
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
    data = save(flat, metadata={_META_KEY: json.dumps({"kind": "galaxidnet-train-state"})})
    atomic_write_bytes(new / STATE_TENSORS, data)
    files[STATE_TENSORS] = hashlib.sha256(data).hexdigest()
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in osd["param_groups"]]
    atomic_write_json(
        new / STATE_JSON,
        {"format_version": FORMAT_VERSION, "state": state, "optimizer": {"param_groups": groups, "scalars": scalars}, "files": files},
    )
    fsync_dir(new)
    old = run_dir / (LAST_DIR + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if last.exists():
        os.replace(last, old)
    os.replace(new, last)
    fsync_dir(run_dir)
    shutil.rmtree(old, ignore_errors=True)


def _last_is_whole(last: Path) -> bool:
    """Whether ``last``-like directory holds a state.json whose recorded files match."""
    try:
        js = json.loads((last / STATE_JSON).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    files = js.get("files") if isinstance(js, dict) else None
    if not isinstance(files, dict):
        return False
    return all((last / name).is_file() and sha256_file(last / name) == digest for name, digest in files.items())


def settle_last(run_dir: str | Path) -> None:
    """Finish or undo a swap of the resume point that a kill interrupted (see
    :func:`save_train_state`): a whole ``last.new`` becomes ``last``; otherwise ``last``
    (or, if the kill fell between the two renames, ``last.old``) stays the resume point."""
    run_dir = Path(run_dir)
    last, new, old = (run_dir / (LAST_DIR + sfx) for sfx in ("", ".new", ".old"))
    if new.is_dir():
        if _last_is_whole(new):
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
    run_dir: Path, model: GalaxIDNetViT, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restore ``last/`` into ``model`` and ``optimizer``; return (extra tensors, JSON state)."""
    last = run_dir / LAST_DIR
    settle_last(run_dir)
    state_json = last / STATE_JSON
    if not state_json.is_file():
        raise CheckpointError(f"{run_dir}: nothing to resume (no {LAST_DIR}/{STATE_JSON})")
    js = _read_meta_json(state_json)
    for name, digest in (js.get("files") or {}).items():  # absent in runs written before the check
        if not (last / name).is_file() or sha256_file(last / name) != digest:
            raise CheckpointError(
                f"{last / name}: does not match {state_json} (the resume point was changed or only partly written); "
                "cannot resume this run"
            )
    tensors, file_meta = read_weights(last / WEIGHTS_FILE)
    cfg = _config_from(last / WEIGHTS_FILE, file_meta, None, None)
    if cfg.shape_key() != model.config.shape_key():
        raise CheckpointError(
            f"{last / WEIGHTS_FILE}: checkpoint is {_describe(cfg)}, but the run expects {_describe(model.config)}"
        )
    _load_state(model, tensors, last / WEIGHTS_FILE)
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
        raise CheckpointError(f"{last / STATE_TENSORS}: optimizer state does not fit this model ({e})") from None
    extra = {k[len("extra."):]: v for k, v in flat.items() if k.startswith("extra.")}
    return extra, js.get("state", {})
