"""`gr build-index --overwrite` replaces a complete index only once the new one is complete
(issue 21, item 1): a rebuild that fails, or is killed, leaves the old index whole and
queryable; a user's file that merely matches ``part-*.parquet`` is never deleted.

Before the fix the overwrite deleted the old index's files first, then built in place: a
failed rebuild left "no manifest.json, not a complete index"."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.index.build import BuildConfig, build_index
from galaxy_retrieval.search.searcher import GalaxySearcher

from .conftest import CFG, assert_user_error, gr, make_checkpoint, snapshot


def _images(root: Path, n: int = 10, broken: int | None = None) -> Path:
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / f"g{i:02d}.png")
    if broken is not None:
        p = root / f"g{broken:02d}.png"
        p.write_bytes(p.read_bytes()[:60])  # truncated: unreadable
    return root


def _files(index: Path) -> dict[str, str]:
    """The index's files and their digests (the write lock holds the last writer's pid)."""
    return {k: v for k, v in snapshot(index).items() if not k.endswith(".gr-write.lock")}


def _answers(index: Path) -> list[str]:
    s = GalaxySearcher.open(index, verify=True)
    return [h.object_id for h in s.query(object_id="3", k=5)]


def test_a_failed_overwrite_leaves_the_old_index_queryable(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "k" / "o"
    shutil.copytree(tiny["index"], out)
    before, answers = _files(out), _answers(out)
    imgs = _images(tmp_path / "imgs", broken=6)
    r = gr(
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        imgs,
        "--out",
        out,
        "--overwrite",
        "--shard-rows",
        4,
        "--batch-size",
        2,
        "--index-type",
        "flat",
    )
    assert_user_error(r, "g06.png")
    assert _files(out) == before
    assert _answers(out) == answers
    assert sorted(p.name for p in out.parent.iterdir()) == ["o"]  # the failed replacement is gone too


def test_an_overwrite_replaces_the_index_and_leaves_nothing_beside_it(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "k" / "o"
    shutil.copytree(tiny["index"], out)
    os.chmod(out, 0o750)
    imgs = _images(tmp_path / "imgs")
    r = gr(
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        imgs,
        "--out",
        out,
        "--overwrite",
        "--shard-rows",
        4,
        "--batch-size",
        2,
        "--index-type",
        "flat",
    )
    assert r.exit_code == 0, r.output
    assert f"index {out}:" in r.output.replace("\n", "")
    assert GalaxySearcher.open(out, verify=True).manifest.count == 10
    assert sorted(p.name for p in out.parent.iterdir()) == ["o"]
    assert (out.stat().st_mode & 0o777) == 0o750


_KILLED = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import galaxy_retrieval.index.build as b
    import galaxy_retrieval.index.embed as e
    from galaxy_retrieval.catalog import open_catalog
    from galaxy_retrieval.index.candidates import IndexSpec

    stage, ck, cat, out = sys.argv[1:5]
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    if stage == "mid-embedding":
        write, n = e.write_shard, [0]
        def write_shard(*a, **k):
            write(*a, **k)
            n[0] += 1
            if n[0] == 2:
                die()
        e.write_shard = write_shard
    elif stage == "after the new manifest":
        finish = b.finish
        def _finish(*a, **k):
            finish(*a, **k)
            die()
        b.finish = _finish
    elif stage == "after the switch":
        b.shutil.rmtree = lambda *a, **k: die()
    cfg = b.BuildConfig(shard_rows=4, batch_size=2, index=IndexSpec(kind="flat"), overwrite=True)
    with open_catalog(cat) as c:
        b.build_index(ck, c, out, cfg)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["mid-embedding", "after the new manifest", "after the switch"])
def test_a_killed_overwrite_leaves_a_whole_index_and_a_rerun_finishes(
    tiny: dict[str, Path], tmp_path: Path, stage: str
) -> None:
    """kill -9 of the rebuild at each step: `out` is always one whole index (the old one until
    the switch, the new one after), and the rerun leaves exactly the new index."""
    out = tmp_path / "k" / "o"
    shutil.copytree(tiny["index"], out)
    before, answers = _files(out), _answers(out)
    imgs = _images(tmp_path / "imgs")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run(
        [sys.executable, "-c", _KILLED, stage, str(tiny["checkpoint"]), str(imgs), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == -9, p.stderr[-2000:]
    if stage == "after the switch":
        assert GalaxySearcher.open(out, verify=True).manifest.count == 10
    else:
        assert _files(out) == before
        assert _answers(out) == answers
    with open_catalog(imgs) as c:
        res = build_index(
            tiny["checkpoint"],
            c,
            out,
            BuildConfig(shard_rows=4, batch_size=2, index=CFG.index, overwrite=True),
        )
    assert res.path == out
    if stage == "mid-embedding":
        assert (res.reused_shards, res.embedded_shards) == (2, 1)  # the killed replacement resumed
    assert GalaxySearcher.open(out, verify=True).manifest.count == 10
    assert sorted(q.name for q in out.parent.iterdir()) == ["o"]


@pytest.mark.parametrize("name", ["part-mine.parquet", "part-00042.parquet"])
def test_overwrite_keeps_a_users_file_that_matches_part_parquet(
    tiny: dict[str, Path], tmp_path: Path, name: str
) -> None:
    """A Parquet file of the user's in embeddings/ (no index writer's metadata, not in the
    manifest) is theirs: the overwrite is refused naming it, and nothing changes."""
    out = tmp_path / "o"
    shutil.copytree(tiny["index"], out)
    mine = out / "embeddings" / name
    pq.write_table(pa.table({"x": [1, 2, 3]}), mine)
    before = snapshot(tmp_path)
    r = gr(
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        tiny["catalog"],
        "--out",
        out,
        "--overwrite",
        "--shard-rows",
        8,
        "--batch-size",
        4,
        "--index-type",
        "flat",
    )
    assert_user_error(r, out, name)
    assert snapshot(tmp_path) == before


def test_overwrite_of_another_models_index_resumes_nothing_of_it(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    """The replacement is built from scratch beside the old index: none of its shards is reused."""
    out = tmp_path / "o"
    shutil.copytree(tiny["index"], out)
    other = make_checkpoint(tmp_path / "other", seed=3)
    with open_catalog(tiny["catalog"]) as c:
        res = build_index(
            other, c, out, BuildConfig(shard_rows=8, batch_size=4, index=CFG.index, overwrite=True)
        )
    assert (res.reused_shards, res.embedded_shards) == (0, 4)
    s = GalaxySearcher.open(out, verify=True)
    assert s.manifest.model["sha256"] != GalaxySearcher.open(tiny["index"]).manifest.model["sha256"]
