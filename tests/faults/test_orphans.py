"""A kill between a write's new manifest and the removal of the old version's files leaves
those files; the next writer removes every index file no manifest names (issue 21, item 6).

Before the fix the next writer removed only versioned names (``*-vN*``): after a killed
compaction the build's ``vectors.npy``, ``faiss.index`` and ``embeddings/part-NNNNN.parquet``
stayed for ever, the index took twice the disk, and the README's DuckDB glob over
``embeddings/*.parquet`` returned old and new rows mixed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from galaxy_retrieval.index import read_manifest
from galaxy_retrieval.index.verify import verify_index
from galaxy_retrieval.search.searcher import GalaxySearcher

from ..conftest import write_galaxy10_h5
from .conftest import gr

_KILL_AFTER_MANIFEST = textwrap.dedent(
    """
    import os, signal, sys
    import galaxy_retrieval.index.writes as w
    from galaxy_retrieval.catalog import open_catalog
    what, index, cat = sys.argv[1:4]
    write = w.Manifest.write
    def dying(self, d):
        write(self, d)
        os.kill(os.getpid(), signal.SIGKILL)  # the new version is committed; nothing removed yet
    w.Manifest.write = dying
    if what == "compact":
        w.compact_index(index)
    else:
        with open_catalog(cat) as c:
            w.add_objects(index, c, batch_size=4)
    """
)


def _index_files(index: Path) -> set[str]:
    return {str(p.relative_to(index)) for p in index.rglob("*") if p.is_file() and p.parent.name != "model"}


def _named(index: Path) -> set[str]:
    m = read_manifest(index)
    return (
        {e.file for e in m.shards}
        | {m.vectors_file, m.faiss_file}
        | ({m.tombstones["file"]} if m.tombstones else set())
        | {"manifest.json", ".gr-write.lock"}
    )


@pytest.mark.slow
@pytest.mark.parametrize("what", ["compact", "add"])
def test_the_next_writer_removes_a_killed_writes_old_files(
    tiny: dict[str, Path], tmp_path: Path, what: str
) -> None:
    index = Path(shutil.copytree(tiny["index"], tmp_path / "index"))
    mine = index / "embeddings" / "part-notes.parquet"  # a user's file: never the index's to remove
    pq.write_table(pa.table({"x": [1]}), mine)
    cat = write_galaxy10_h5(tmp_path / "new.h5", n=4, size=32, seed=8)
    with h5py.File(cat, "a") as f:
        f.create_dataset(
            "object_id",
            data=np.array([f"new-{i}" for i in range(4)], dtype=object),
            dtype=h5py.string_dtype(),
        )
    if what == "compact":
        assert gr("delete", "--index", index, "--where", "label = 3").exit_code == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run(
        [sys.executable, "-c", _KILL_AFTER_MANIFEST, what, str(index), str(cat)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == -9, r.stderr[-2000:]
    left = _index_files(index) - _named(index) - {str(mine.relative_to(index))}
    assert left, "the kill should have left the old version's files"
    s = GalaxySearcher.open(index, verify=True)  # the new version answers
    live = s.manifest.live_count
    # the next writer (a delete that deletes nothing) removes them
    r = gr("delete", "--index", index, "--where", "label = 12345")
    assert r.exit_code == 0, r.output
    assert _index_files(index) - _named(index) == {str(mine.relative_to(index))}
    assert mine.exists()
    verify_index(index)
    # a plain glob over the shards sees exactly this version's rows
    rows = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{index}/embeddings/part-[0-9v]*.parquet')"
    ).fetchall()[0][0]
    assert rows == s.manifest.count
    assert live == GalaxySearcher.open(index).manifest.live_count
