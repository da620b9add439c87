"""The model that ships inside the package: weights trained label-free on real SDSS cutouts.

A new user gets neighbours from a trained network without training first
(``gr build-index`` without a checkpoint, ``GalaxySearcher`` and ``gr query`` on such an
index, ``gr train --init pretrained`` to fine-tune it). The files here are a checkpoint
directory like any run's (``model.safetensors`` + ``checkpoint.json``) plus
``provenance.json``: the catalog, command and commit that made it
(``pipelines/pretrain.py``); ``docs/model-card.md`` has its measured quality.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ...atomic import atomic_path, atomic_write_json
from ...errors import CheckpointError
from ..compat import legacy_suppress, model_config_from_dict
from ..layout import META_FILE, WEIGHTS_FILE

__all__ = [
    "PRETRAINED",
    "PRETRAINED_NAME",
    "pretrained_dir",
    "pretrained_info",
    "install_pretrained",
    "resolve_init",
]

#: the name users give for the shipped model (``--checkpoint pretrained``, ``--init pretrained``)
PRETRAINED_NAME = "pretrained"
PRETRAINED = Path(__file__).resolve().parent
PROVENANCE_FILE = "provenance.json"


def pretrained_dir() -> Path:
    """The shipped checkpoint's directory; CheckpointError when this install has none."""
    if not (PRETRAINED / WEIGHTS_FILE).is_file():
        raise CheckpointError(
            f"{PRETRAINED}: this installation ships no pretrained weights; train a model and give its run directory"
        )
    return PRETRAINED


def pretrained_info() -> dict[str, Any]:
    """What ``gr info`` shows of the shipped model: provenance and the checkpoint's summary."""
    d = pretrained_dir()
    out: dict[str, Any] = {"path": str(d)}
    prov = d / PROVENANCE_FILE
    if prov.is_file():
        out.update(json.loads(prov.read_text("utf-8")))
    meta = d / META_FILE
    if meta.is_file():
        m = json.loads(meta.read_text("utf-8"))
        out["preset"] = m.get("model", {}).get("name")
        out["weights_sha256"] = m.get("weights_sha256")
    return out


def install_pretrained(run_dir: Path, provenance: dict[str, Any], dest: Path = PRETRAINED) -> Path:
    """Copy a finished run's best weights and checkpoint.json into ``dest`` (the package),
    each file replaced atomically, with ``provenance`` beside them."""
    for name in (WEIGHTS_FILE, META_FILE):
        src = run_dir / name
        if not src.is_file():
            raise CheckpointError(f"{run_dir}: no {name}; not a finished training run")
    meta = json.loads((run_dir / META_FILE).read_text("utf-8"))
    # the shipped copy keeps what loading needs, not the training curve (kilobytes per epoch)
    meta.pop("history", None)
    with atomic_path(dest / WEIGHTS_FILE) as tmp:
        shutil.copyfile(run_dir / WEIGHTS_FILE, tmp)
    atomic_write_json(dest / META_FILE, meta)
    atomic_write_json(dest / PROVENANCE_FILE, provenance)
    return dest


def resolve_init(init: str | None, model_config: Any) -> str | None:
    """What a training run starts from. ``"auto"``: the shipped model when this installation
    has one of the same shape as ``model_config`` (the default ``polar`` preset), else a
    random initialisation; ``"none"``/None: random; anything else is returned as given (a
    checkpoint path or ``"pretrained"``, checked when training loads it). Fine-tuning the
    shipped model beat training from scratch under the same time budget on both real
    development sets (benchmarks/quality/README.md), hence ``auto``."""
    if init is None or init == "none":
        return None
    if init != "auto":
        return init
    if not (PRETRAINED / WEIGHTS_FILE).is_file() or not (PRETRAINED / META_FILE).is_file():
        return None
    meta = json.loads((PRETRAINED / META_FILE).read_text("utf-8"))
    shipped = model_config_from_dict(meta["model"], legacy_suppress(meta))
    return PRETRAINED_NAME if shipped.architecture_key() == model_config.architecture_key() else None
