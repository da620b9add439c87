"""Shared pieces of the fault suite: a tiny catalog, model and index, a snapshot of a folder
tree (so a refused command can be shown to have changed nothing), and the CLI error check."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner, Result

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.cli import app
from galaxy_retrieval.index.build import BuildConfig, build_index
from galaxy_retrieval.index.candidates import IndexSpec
from galaxy_retrieval.model import build_model, preset, save_weights

from ..conftest import write_galaxy10_h5

runner = CliRunner()
CFG = BuildConfig(shard_rows=8, batch_size=4, index=IndexSpec(kind="flat"))


def make_checkpoint(root: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    save_weights(root / "model.safetensors", build_model(preset("tiny")))
    return root


@pytest.fixture(scope="package")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """30 random 32×32 images, an untrained tiny model, and the flat index of the two."""
    tmp = tmp_path_factory.mktemp("faults")
    cat = write_galaxy10_h5(tmp / "cat.h5", n=30, size=32, seed=4)
    ck = make_checkpoint(tmp / "ck")
    with open_catalog(cat) as c:
        build_index(ck, c, tmp / "index", CFG)
    return {"tmp": tmp, "catalog": cat, "checkpoint": ck, "index": tmp / "index"}


def snapshot(*roots: Path) -> dict[str, str]:
    """Every path under ``roots`` (and the roots) → the sha256 of its bytes, or 'dir'."""
    out: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            out[str(root)] = "absent"
            continue
        for p in [root, *sorted(root.rglob("*"))]:
            out[str(p)] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def gr(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(r: Result, *names: object) -> None:
    """Exit code 2, one error line that names each of ``names``, no traceback (progress bars
    drawn before the refusal may precede it)."""
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.output
    assert r.output.rstrip().endswith(errors[0]), r.output
    for n in names:
        assert str(n) in errors[0], (n, errors[0])
