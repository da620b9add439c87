"""Whether a run directory already holds what a config would train: the one test the demo,
the quality protocol and resuming use, so a run is reused exactly when it is the same run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..model.layout import LAST_DIR, META_FILE, STATE_JSON, WEIGHTS_FILE
from .config import TrainConfig

__all__ = ["same_config", "trained_with", "resumable_with"]


def same_config(recorded: Any, cfg: TrainConfig) -> bool:
    """Whether a recorded training config (``TrainConfig.to_dict()``, as the run wrote it) is
    ``cfg``. Fields added to TrainConfig since the run was recorded take their defaults, so a
    new option does not make every old run look different."""
    if not isinstance(recorded, dict):
        return False
    try:
        return TrainConfig.from_dict(recorded) == cfg
    except (ConfigError, TypeError, KeyError, ValueError):
        return False


def _recorded(run: Path) -> Any:
    try:
        return json.loads((run / META_FILE).read_text("utf-8")).get("train")
    except (OSError, ValueError, AttributeError):
        return None


def trained_with(run: str | Path, cfg: TrainConfig) -> bool:
    """A finished run in ``run`` (best weights and their metadata) trained with ``cfg``."""
    run = Path(run)
    return (run / WEIGHTS_FILE).is_file() and same_config(_recorded(run), cfg)


def resumable_with(run: str | Path, cfg: TrainConfig) -> bool:
    """An interrupted run in ``run`` (a resume point) that ``cfg`` would continue."""
    run = Path(run)
    return (run / LAST_DIR / STATE_JSON).is_file() and same_config(_recorded(run), cfg)
