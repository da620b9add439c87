"""The Ray engine's refusals that need no Ray cluster: Ray not installed, bad settings, and the
scale-out pipeline file read into one build config."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from galaxy_retrieval.errors import ConfigError
from galaxy_retrieval.index.build import BuildConfig
from galaxy_retrieval.index.pipeline import load_build_pipeline
from galaxy_retrieval.index.ray_engine import RayConfig

from .conftest import assert_user_error, gr

SCALE_OUT = Path(__file__).resolve().parents[2] / "pipelines" / "scale-out.toml"


def test_ray_not_installed_is_one_line_naming_the_extra(
    tiny: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an import of a module set to None raises ImportError, as on a machine without Ray
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    out = tmp_path / "idx"
    r = gr(
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        tiny["catalog"],
        "--out",
        out,
        "--engine",
        "ray",
        "--index-type",
        "flat",
    )
    assert_user_error(r, "Ray", "distributed", "pip install")
    assert not out.exists()  # a refused build leaves no directory behind


def test_unknown_engine_and_bad_ray_address_are_refused(tiny: dict[str, Path], tmp_path: Path) -> None:
    r = gr(
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        tiny["catalog"],
        "--out",
        tmp_path / "a",
        "--engine",
        "spark",
    )
    assert r.exit_code == 2 and "'spark' is not one of 'local'" in r.output  # a choice: typer's usage error
    with pytest.raises(ConfigError, match="engine must be one of local, ray, got 'spark'"):
        BuildConfig(engine="spark")
    r = gr(
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        tiny["catalog"],
        "--out",
        tmp_path / "b",
        "--engine",
        "ray",
        "--ray-address",
        "nowhere",
    )
    assert_user_error(r, "nowhere", "--ray-address")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_scale_out_pipeline_is_one_build_config_and_flags_win() -> None:
    cfg = load_build_pipeline(SCALE_OUT)
    assert (
        cfg.engine == "ray"
        and cfg.index.ondisk
        and cfg.ray == RayConfig(address="auto", cpus_per_worker=4, max_restarts=4)
    )
    cfg = load_build_pipeline(
        SCALE_OUT, {"build": {"shard_rows": 100}, "ray": {"address": "ray://head:10001"}}
    )
    assert cfg.shard_rows == 100 and cfg.ray.address == "ray://head:10001" and cfg.dtype == "float16"


def test_a_pipeline_with_an_unknown_key_names_it(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    p.write_text('[ray]\naddres = "auto"\n')
    with pytest.raises(ConfigError, match=r"\[ray\]: unknown key\(s\) addres"):
        load_build_pipeline(p)
    p.write_text("[cluster]\nx = 1\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_build_pipeline(p)
