"""`gr train`: a kill -9 while the resume point is saved, a diverging loss, small validation
sets, refused catalogs and output paths (issue 12, items 4, 8, 9, 10, 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from galaxy_retrieval.catalog.hdf5 import HDF5Catalog
from galaxy_retrieval.errors import CheckpointError
from galaxy_retrieval.model import build_model, preset, save_weights
from galaxy_retrieval.train import TrainConfig, train

from ..test_train import write_blob_catalog
from .conftest import assert_user_error, gr, snapshot

CFG = dict(preset="tiny", batch_size=16, seed=0, loose_batch_sizes=(4,))

# Runs training in a child process that SIGKILLs itself at one point of the third epoch's
# save: a real kill -9 (no finally blocks, no atexit), at an exact stage.
_KILLER = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    import galaxy_retrieval.train.state as ck
    from galaxy_retrieval.catalog import open_catalog
    from galaxy_retrieval.train import TrainConfig, train

    stage, run, cat, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    resume = stage == "resume"
    seen = [0]

    def die_on_third(hit):
        if hit:
            seen[0] += 1
            if seen[0] == 3:
                os.kill(os.getpid(), signal.SIGKILL)

    if stage == "weights written, state not":
        write = ck.atomic_write_bytes
        def patched(path, data):
            die_on_third(Path(path).name == "state.safetensors")
            return write(path, data)
        ck.atomic_write_bytes = patched
    elif stage == "between the renames":
        replace = os.replace
        def patched(a, b):
            die_on_third(Path(a).name == "last.new")
            return replace(a, b)
        os.replace = patched
    cfg = TrainConfig(preset="tiny", batch_size=16, seed=0, loose_batch_sizes=(4,), epochs=epochs)
    with open_catalog(cat) as c:
        res = train(cfg, c, run, resume=resume)
    print(json.dumps({"sha": res.weights_sha256, "losses": [h["train_loss"] for h in res.history], "from": res.resumed_from_epoch}))
    """
)


def _child(stage: str, run: Path, cat: Path) -> subprocess.CompletedProcess:
    # every run in a fresh process, as a user's would be: float results of a process that
    # already ran other tests need not match a fresh one's bit for bit
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-c", _KILLER, stage, str(run), str(cat), "4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("train")
    cat = write_blob_catalog(tmp / "blobs.h5")
    p = _child("none", tmp / "straight", cat)
    assert p.returncode == 0, p.stderr[-2000:]
    return cat, json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize(
    "stage, resumed_from", [("weights written, state not", 2), ("between the renames", 3)]
)
def test_kill_9_while_saving_resumes_like_an_uninterrupted_run(
    straight, tmp_path: Path, stage: str, resumed_from: int
) -> None:
    cat, ref = straight
    run = tmp_path / "run"
    p = _child(stage, run, cat)
    assert p.returncode == -9, p.stderr[-2000:]
    p = _child("resume", run, cat)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["from"] == resumed_from
    assert res["sha"] == ref["sha"]
    assert res["losses"] == pytest.approx(ref["losses"], rel=1e-5)
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("last")) == ["last"]


def test_a_changed_resume_point_is_refused(tmp_path: Path) -> None:
    cat = HDF5Catalog(write_blob_catalog(tmp_path / "blobs.h5"))
    run = tmp_path / "run"
    train(TrainConfig(**CFG, epochs=1), cat, run)
    save_weights(run / "last" / "model.safetensors", build_model(preset("tiny"), seed=5))
    with pytest.raises(CheckpointError, match="model.safetensors: does not match .*state.json"):
        train(TrainConfig(**CFG, epochs=2), cat, run, resume=True)


def test_small_validation_set_trains_and_reports(tmp_path: Path) -> None:
    """The README's own-data recipe on a small folder: fewer than 64 validation images."""
    cat = write_blob_catalog(tmp_path / "blobs.h5", n=40)
    r = gr(
        "train",
        "--catalog",
        cat,
        "--out",
        tmp_path / "run",
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--batch-size",
        "8",
    )
    assert r.exit_code == 0, r.output
    assert "batch 64: — (fewer validation images)" in r.output


def _empty(p: Path) -> Path:
    with h5py.File(p, "w") as f:
        f["images"] = np.zeros((0, 32, 32, 3), np.uint8)
    return p


@pytest.mark.parametrize(
    "case, args, message",
    [
        ("loss becomes NaN", ["--lr", "1e30"], "epoch 1"),
        ("empty catalog", ["--catalog", "{empty}"], "empty.h5"),
        ("bad device", ["--device", "tpu9"], "tpu9"),
        ("out under a regular file", ["--out", "{file}/run"], "is a file, not a folder"),
        ("out is a file", ["--out", "{file}"], "not a folder"),
        ("out in /proc", ["--out", "/proc/gr-run"], "/proc/gr-run"),
    ],
)
def test_refused_training_leaves_nothing(tmp_path: Path, case: str, args: list[str], message: str) -> None:
    cat = write_blob_catalog(tmp_path / "blobs.h5", n=40)
    names = {"empty": _empty(tmp_path / "empty.h5"), "file": tmp_path / "notes.txt"}
    names["file"].write_text("a file")
    base = {"--catalog": str(cat), "--out": str(tmp_path / "runs" / "run")}  # runs/ is created, then removed
    for i in range(0, len(args), 2):
        if args[i] in base:
            base[args[i]] = args[i + 1].format(**names)
    extra = [a for i in range(0, len(args), 2) if args[i] not in base for a in args[i : i + 2]]
    before = snapshot(tmp_path)
    r = gr(
        "train",
        *[x for kv in base.items() for x in kv],
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        *extra,
    )
    assert_user_error(r, message)
    assert snapshot(tmp_path) == before
    assert not Path("/proc/gr-run").exists()
