"""The demo's pipeline file: read, validated, with paths taken from the repository root."""

from __future__ import annotations

from pathlib import Path

import pytest

from galaxy_retrieval.demo import DEFAULT_PIPELINE, load_demo_config
from galaxy_retrieval.errors import ConfigError


def test_shipped_pipeline_loads() -> None:
    cfg = load_demo_config(DEFAULT_PIPELINE, root="/repo")
    assert cfg.synth.n == 2000 and cfg.synth.size == 256
    assert cfg.synth.out == Path("/repo/data/demo/catalog.h5")
    assert cfg.train.preset == "polar" and cfg.index.out == Path("/repo/indexes/demo")


def test_bad_pipeline_files(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    p.write_text("[synth]\nn = 10\ncolour = 'red'\n")
    with pytest.raises(ConfigError, match=r"\[synth\]: unknown key 'colour'"):
        load_demo_config(p)
    p.write_text("[synth\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_demo_config(p)
    p.write_text("[extra]\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_demo_config(p)
    with pytest.raises(ConfigError, match="pipeline file not found"):
        load_demo_config(tmp_path / "nope.toml")
