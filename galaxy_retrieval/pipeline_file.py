"""Reading a pipeline file (``pipelines/*.toml``): the one reader the demo's and the
scale-out build's pipelines share, so both refuse a missing file, bad TOML and an unknown
section with the same one line naming the file."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["read_pipeline_file"]


def read_pipeline_file(path: str | Path, sections: Iterable[str]) -> dict[str, Any]:
    """The file's tables, each a known section."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: pipeline file not found")
    try:
        d = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
    known = list(sections)
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ConfigError(f"{p}: unknown section(s) {', '.join(unknown)} (known: {', '.join(known)})")
    return d
