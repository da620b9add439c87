"""Checkpoint directories: safetensors weights + JSON metadata; loading never unpickles.

Layout of ``runs/NAME/`` (file names in :mod:`.layout`)::

    model.safetensors        best weights (lowest validation loss); the model config
                             (preprocessing included) is also in the file's metadata, so
                             the file alone is usable
    checkpoint.json          format version, package version, model config, training
                             config, epoch, best val loss, metric history, weights sha256;
                             with ``learn_score_weights`` also ``score_weights`` (the
                             best epoch's learned weights; the training config keeps the
                             initial ones)
    history.json             per-epoch metrics (the same list as in checkpoint.json)
    history.png              loss and loose accuracy per epoch (paper Fig. 3)
    last/                    the resume point (:mod:`galaxy_retrieval.train.state`)

Every file is written to a temporary name in the same directory and moved into place
with ``os.replace``, so a crash never leaves a half-written file under a real name.
Model configs of checkpoints written before :class:`~.config.ModelConfig` are read by
:mod:`.compat`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write_bytes, sha256_file
from ..errors import CheckpointError, ConfigError
from .backbone import Backbone
from .compat import is_legacy, legacy_suppress, model_config_from_dict
from .config import ModelConfig
from .layout import FORMAT_VERSION, KIND, LAST_DIR, META_FILE, META_KEY, WEIGHTS_FILE
from .pretrained import PRETRAINED_NAME, pretrained_dir
from .registry import create_model

__all__ = [
    "USAGE_KEYS",
    "sha256_file",
    "save_weights",
    "read_weights",
    "read_meta_json",
    "resolve_checkpoint",
    "config_from",
    "load_model",
    "load_weights_into",
    "weights_sha256",
]

#: metadata a training run also writes into the best weights file (when set), so that file
#: alone is used as the run intended: learned score weights, the descriptor fusion.
#: (Source suppression is in the model config's preprocessing; files written before it was
#: also carry ``suppress_sources``, read by :mod:`.compat`.)
USAGE_KEYS = ("score_weights", "fusion")


def _weights_bytes(model: Backbone, extra_meta: dict[str, Any] | None = None) -> bytes:
    from safetensors.torch import save

    sd = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    meta = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        **(extra_meta or {}),
    }
    # one metadata key: safetensors writes several keys in hash-map order, which would make
    # the bytes (hence the sha256 that identifies a model) differ between identical saves
    return save(sd, metadata={META_KEY: json.dumps(meta, sort_keys=True)})


def weights_sha256(model: Backbone) -> str:
    """sha256 the weights file of this model would have (identity of an unsaved model)."""
    return hashlib.sha256(_weights_bytes(model)).hexdigest()


def save_weights(path: str | Path, model: Backbone, extra_meta: dict[str, Any] | None = None) -> str:
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
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safetensors file, not a dict)
    except Exception as e:  # SafetensorError, OSError, header JSON errors…
        raise CheckpointError(
            f"{path}: not a readable safetensors file (corrupt or truncated?): {e}"
        ) from None
    meta: dict[str, Any] = {}
    if META_KEY in raw:
        try:
            meta = json.loads(raw[META_KEY])
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path}: metadata is not JSON ({e})") from None
        if not isinstance(meta, dict):
            raise CheckpointError(f"{path}: metadata must be a JSON object")
    return tensors, meta


def resolve_checkpoint(path: str | Path) -> tuple[Path, Path | None]:
    """(weights file, checkpoint.json or None) for a run directory or a weights file;
    ``"pretrained"`` names the model shipped in the package (:mod:`.pretrained`)."""
    if str(path) == PRETRAINED_NAME and not Path(path).exists():
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


def read_meta_json(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON metadata (``checkpoint.json``, a resume state) of a format this
    package reads; CheckpointError naming the file otherwise."""
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


def config_from(
    weights: Path,
    file_meta: dict[str, Any],
    meta: dict[str, Any] | None = None,
    meta_path: Path | None = None,
    legacy_suppress_default: Any = None,
) -> ModelConfig:
    """The model config of a checkpoint: ``checkpoint.json``'s when there is one, else the
    weights file's. An old flat config takes its suppression from where old checkpoints
    recorded it (:func:`.compat.legacy_suppress`), else ``legacy_suppress_default``."""
    raw, where, holder = None, weights, file_meta
    if meta is not None and "model" in meta:
        raw, where, holder = meta["model"], meta_path, meta
    elif "model_config" in file_meta:
        raw = file_meta["model_config"]
    if raw is None:
        raise CheckpointError(
            f"{weights}: no model config (neither {META_FILE} beside it nor safetensors metadata)"
        )
    try:
        if not is_legacy(raw):
            return model_config_from_dict(raw)
        sup = legacy_suppress(holder)
        return model_config_from_dict(raw, legacy_suppress_default if sup is None else sup)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{where}: invalid model config: {e}") from None


def load_model(
    path: str | Path, expect: ModelConfig | str | None = None
) -> tuple[Backbone, dict[str, Any], Path, str]:
    """Load a checkpoint onto the CPU → (model in eval mode, metadata dict, weights path, sha256).

    ``expect`` (a preset name or a :class:`ModelConfig`) makes a checkpoint of another
    preset or shape fail with a :class:`CheckpointError` that names both.
    """
    weights, meta_path = resolve_checkpoint(path)
    meta = read_meta_json(meta_path) if meta_path is not None else None
    tensors, file_meta = read_weights(weights)
    if file_meta.get("kind", KIND) != KIND:
        raise CheckpointError(f"{weights}: holds {file_meta.get('kind')!r} weights, not a {KIND} model")
    cfg = config_from(weights, file_meta, meta, meta_path)
    if expect is not None:
        if isinstance(expect, str):
            if cfg.name != expect:
                raise CheckpointError(
                    f"{weights}: checkpoint is {cfg.describe()}, but preset {expect!r} was asked for"
                )
        elif expect.shape_key() != cfg.shape_key():
            raise CheckpointError(
                f"{weights}: checkpoint is {cfg.describe()}, but the run expects {expect.describe()}"
            )
    model = create_model(cfg)
    load_weights_into(model, tensors, weights)
    model.eval()
    if meta is None:
        # the weights file alone: what training recorded in it about how to use the model
        meta = {"format_version": FORMAT_VERSION, "model": cfg.to_dict()}
        meta.update({k: file_meta[k] for k in USAGE_KEYS if file_meta.get(k) is not None})
    elif file_meta.get("fusion") is not None:
        # the fusion is part of what the weights file embeds (its sha256 covers it): the file wins
        meta = {**meta, "fusion": file_meta["fusion"]}
    return model, meta, weights, sha256_file(weights)


def load_weights_into(model: Backbone, tensors: dict[str, torch.Tensor], where: Path) -> None:
    """Copy ``tensors`` into ``model``; CheckpointError (naming ``where``) when their names or
    shapes are not the model's or a value is not finite."""
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
