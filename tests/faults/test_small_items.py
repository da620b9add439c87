"""The smaller findings of issue 21 (item 8): bad coordinates in a catalog, a NaN radius, and
what `gr serve` says when it listens beyond this machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.index.foreign import build_index_from_parquet
from galaxy_retrieval.search.searcher import GalaxySearcher

from .conftest import CFG, assert_user_error, gr


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(2)
    root.mkdir()
    lines = ["filename,object_id,ra,dec"]
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / f"g{i}.png")
        ra = {3: "n/a", 5: "400"}.get(i, f"{10 + i * 0.001:.4f}")
        lines.append(f"g{i}.png,o{i},{ra},{-5 + i * 0.001:.4f}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def test_bad_coordinates_are_nan_and_listed_and_sky_queries_work(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    """A non-numeric `ra` built fine and then made every sky query and --min-separation a
    traceback (HTTP 500)."""
    imgs = _folder(tmp_path / "imgs")
    with open_catalog(imgs) as c:
        assert any(
            "ra of 2 objects is not a valid coordinate" in w
            and "g3.png ('n/a')" in w
            and "g5.png ('400')" in w
            for w in c.warnings
        ), c.warnings
    out = tmp_path / "idx"
    r = gr(
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        imgs,
        "--out",
        out,
        "--shard-rows",
        4,
        "--batch-size",
        4,
        "--index-type",
        "flat",
    )
    assert r.exit_code == 0, r.output
    assert "g3.png" in r.output
    r = gr("query", "--index", out, "--ra", 10.0, "--dec", -5.0, "--k", 3, "--min-separation", 0.5)
    assert r.exit_code == 0, r.output
    s = GalaxySearcher.open(out)
    md = {h.object_id: h.metadata for h in s.query(object_id="o0", k=7)}
    assert md["o3"]["ra"] is None and md["o5"]["ra"] is None and md["o1"]["ra"] == pytest.approx(10.001)


def test_an_index_holding_text_coordinates_still_answers_sky_queries(tmp_path: Path) -> None:
    """An index made before the check (here: from a Parquet file whose ra is text)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 8)).astype(np.float32)
    src = tmp_path / "v.parquet"
    pq.write_table(
        pa.table(
            {
                "id": [f"o{i}" for i in range(12)],
                "ra": ["n/a" if i == 4 else f"{20 + i * 0.001}" for i in range(12)],
                "dec": [1.0 + i * 0.001 for i in range(12)],
                **{f"f{j}": x[:, j] for j in range(8)},
            }
        ),
        src,
    )
    res = build_index_from_parquet(src, tmp_path / "idx", "id", "f*", CFG)
    s = GalaxySearcher.open(res.path)
    sky = s.query_sky(20.002, 1.002, radius_arcsec=5, k=3, min_separation_arcsec=1.0)
    assert sky.object_id == "o2"
    assert len(sky.hits) == 3


@pytest.mark.parametrize("radius", ["nan", "0", "-1"])
def test_a_radius_that_is_not_a_positive_number_is_refused(tiny: dict[str, Path], radius: str) -> None:
    r = gr("query", "--index", tiny["index"], "--ra", 10.0, "--dec", 0.0, "--radius", radius)
    assert_user_error(r, "radius")


def test_serve_on_every_address_without_a_key_warns_and_names_the_real_address(tiny: dict[str, Path]) -> None:
    """The banner said http://127.0.0.1:… while it listened on all addresses, with no warning.
    (Port 0 is refused after the banner, so no server starts.)"""
    pytest.importorskip("uvicorn")
    r = gr("serve", "--index", tiny["index"], "--host", "0.0.0.0", "--port", 0)
    assert "warning: listening on 0.0.0.0 without an API key" in r.output
    assert "http://0.0.0.0:0/ (every address of this machine)" in r.output
    assert "127.0.0.1" not in r.output
    r = gr("serve", "--index", tiny["index"], "--host", "0.0.0.0", "--port", 0, "--api-key", "k")
    assert "warning" not in r.output
    r = gr("serve", "--index", tiny["index"], "--port", 0)
    assert "warning" not in r.output and "http://127.0.0.1:0/" in r.output


_KILL_FIRST_SAVE = """
import os, signal, sys
from pathlib import Path
import galaxy_retrieval.train.state as ck
from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.train import TrainConfig, train
run, cat = sys.argv[1:3]
write = ck.atomic_write_bytes
def patched(path, data):
    if Path(path).name == "state.safetensors":  # the first epoch's resume point, half written
        os.kill(os.getpid(), signal.SIGKILL)
    return write(path, data)
ck.atomic_write_bytes = patched
with open_catalog(cat) as c:
    train(TrainConfig(preset="tiny", batch_size=16, seed=0, loose_batch_sizes=(4,), epochs=2), c, run)
"""


@pytest.mark.slow
@pytest.mark.parametrize("rerun", ["plain", "--resume"])
def test_a_kill_during_the_first_checkpoint_save_does_not_block_the_rerun(tmp_path: Path, rerun: str) -> None:
    """A rerun said "resume or overwrite" and --resume said "nothing to resume"; only
    --overwrite worked. Now a plain rerun and --resume both train from the beginning."""
    import os
    import subprocess
    import sys

    from galaxy_retrieval.catalog.hdf5 import HDF5Catalog
    from galaxy_retrieval.train import TrainConfig, train

    from ..test_train import write_blob_catalog

    cat = write_blob_catalog(tmp_path / "blobs.h5")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run(
        [sys.executable, "-c", _KILL_FIRST_SAVE, str(run), str(cat)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == -9, p.stderr[-2000:]
    assert (
        (run / "model.safetensors").exists()
        and not (run / "last").exists()
        and not (run / "checkpoint.json").exists()
    )
    res = train(
        TrainConfig(preset="tiny", batch_size=16, seed=0, loose_batch_sizes=(4,), epochs=2),
        HDF5Catalog(cat),
        run,
        resume=rerun == "--resume",
    )
    assert res.resumed_from_epoch == 0 and len(res.history) == 2
    assert (run / "last" / "state.json").exists() and (run / "checkpoint.json").exists()
