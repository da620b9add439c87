"""Build settings from a pipeline file (``pipelines/scale-out.toml``): ``[build]``, ``[index]``
and ``[ray]`` become one :class:`~.config.BuildConfig`.

Values given explicitly (``overrides``, e.g. the command line's flags) win over the file's,
and the file's over the defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..pipeline_file import read_pipeline_file
from .candidates import IndexSpec
from .config import BuildConfig
from .ray_engine import RayConfig

__all__ = ["load_build_pipeline", "SECTIONS"]

SECTIONS = {"build": BuildConfig, "index": IndexSpec, "ray": RayConfig}
_NOT_IN_FILE = {"build": {"index", "ray", "score_weights", "overwrite"}}


def _known(section: str) -> set[str]:
    return {f.name for f in dataclasses.fields(SECTIONS[section])} - _NOT_IN_FILE.get(section, set())


def load_build_pipeline(
    path: str | Path | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> BuildConfig:
    """The :class:`BuildConfig` of a pipeline file (None: defaults only), with ``overrides``
    (``{"build": {"engine": "ray"}, "index": {"kind": "flat"}, "ray": {"address": "auto"}}``)
    applied on top. Unknown sections and keys are refused, naming the file."""
    d: dict[str, Any] = {}
    where = "build settings"
    if path is not None:
        where = str(path)
        d = read_pipeline_file(path, SECTIONS)
    merged: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        sec = d.get(name, {})
        if not isinstance(sec, dict):
            raise ConfigError(f"{where}: [{name}] must be a table")
        bad = sorted(set(sec) - _known(name))
        if bad:
            raise ConfigError(
                f"{where} [{name}]: unknown key(s) {', '.join(bad)} (known: {', '.join(sorted(_known(name)))})"
            )
        merged[name] = {**sec, **dict((overrides or {}).get(name, {}))}
    try:
        index = IndexSpec(**merged["index"])
        ray = RayConfig(**merged["ray"]) if merged["ray"] or merged["build"].get("engine") == "ray" else None
        return BuildConfig(**merged["build"], index=index, ray=ray)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None
