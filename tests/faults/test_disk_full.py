"""A full disk while building an index (issue 12, item 5): one line naming the file and
"no space left", exit 2, no temp file left behind, and a rerun with room resumes.

ENOSPC is raised here by the system call that meets it (``posix_fallocate`` for the vector
file, ``write`` for shards): the code paths above them are the real ones. A real tmpfs,
where one can be mounted, is in test_synth_faults.py and below."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.errors import NoSpaceError
from galaxy_retrieval.index.build import build_index
from galaxy_retrieval.search.searcher import GalaxySearcher

from .conftest import CFG, assert_user_error, gr


def _no_space(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.tmp")]


def test_full_disk_at_the_vector_file_then_resume(
    tiny: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "idx"
    monkeypatch.setattr(os, "posix_fallocate", _no_space)
    r = gr(
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        tiny["catalog"],
        "--out",
        out,
        "--shard-rows",
        8,
        "--batch-size",
        4,
        "--index-type",
        "flat",
    )
    assert_user_error(r, out / "vectors.npy", "no space left")
    assert not _tmp_files(out)
    assert len(list((out / "embeddings").glob("part-*.parquet"))) == 4  # the embedding work is kept
    monkeypatch.undo()
    with open_catalog(tiny["catalog"]) as c:
        res = build_index(tiny["checkpoint"], c, out, CFG)
    assert (res.reused_shards, res.embedded_shards) == (4, 0)
    assert (out / "vectors.npy").read_bytes() == (tiny["index"] / "vectors.npy").read_bytes()


def test_full_disk_while_writing_a_shard(
    tiny: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "idx"
    real = pq.write_table
    calls = [0]

    def write_table(table, where, **kw):  # the second shard meets a full disk half-way
        calls[0] += 1
        if calls[0] == 2:
            Path(where).write_bytes(b"PAR1 half a shard")
            raise OSError(f"IOError: error writing to {where}: No space left on device")
        return real(table, where, **kw)

    monkeypatch.setattr(pq, "write_table", write_table)
    with open_catalog(tiny["catalog"]) as c:
        with pytest.raises(NoSpaceError, match=r"part-00001\.parquet: no space left"):
            build_index(tiny["checkpoint"], c, out, CFG)
    assert not _tmp_files(out)
    monkeypatch.undo()
    with open_catalog(tiny["catalog"]) as c:
        res = build_index(tiny["checkpoint"], c, out, CFG)
    assert (res.reused_shards, res.embedded_shards) == (1, 3)
    GalaxySearcher.open(out, verify=True)


def test_a_killed_runs_temp_files_are_removed_by_the_next_run(tiny: dict[str, Path], tmp_path: Path) -> None:
    """A stale `.vectors.npy.PID.tmp` (its writer killed) used to stay and fill the disk."""
    out = tmp_path / "idx"
    shutil.copytree(tiny["index"], out)
    (out / "manifest.json").unlink()  # an interrupted build: state without manifest
    (out / "build-state.json").write_text("{}")
    stale = [out / ".vectors.npy.99999.tmp", out / "embeddings" / ".part-00001.parquet.99999.tmp"]
    for p in stale:
        p.write_bytes(b"\0" * 4096)
    r = gr(
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        tiny["catalog"],
        "--out",
        out,
        "--shard-rows",
        8,
        "--batch-size",
        4,
        "--index-type",
        "flat",
        "--overwrite",
    )
    assert r.exit_code == 0, r.output
    assert not _tmp_files(out)


@pytest.fixture
def small_disk(tmp_path: Path):
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here; the simulated ENOSPC tests above cover the writers")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_build_index_on_a_real_full_disk(tiny: dict[str, Path], small_disk: Path) -> None:
    out = small_disk / "idx"
    r = gr(
        "build-index",
        "--checkpoint",
        tiny["checkpoint"],
        "--catalog",
        tiny["catalog"],
        "--out",
        out,
        "--shard-rows",
        8,
        "--batch-size",
        4,
        "--index-type",
        "flat",
    )
    assert_user_error(r, "no space left")
    assert not _tmp_files(small_disk)
