"""kill -9 at each stage of `gr build-index` and `gr synth`, then a rerun: the result is the
same bytes an uninterrupted run writes, and nothing of the killed run is left over.

The child process SIGKILLs itself at an exact point (a real kill -9: no finally blocks,
no atexit, the lock released only by the kernel)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.index.build import build_index

from .conftest import CFG

_BUILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import numpy as np
    import galaxy_retrieval.index.build as b
    import galaxy_retrieval.index.directory as d
    import galaxy_retrieval.index.embed as e
    from galaxy_retrieval.catalog import open_catalog
    from galaxy_retrieval.index.candidates import IndexSpec

    stage, ck, cat, out = sys.argv[1:5]
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    if stage == "after two shards":
        write, n = e.write_shard, [0]
        def write_shard(*a, **k):
            write(*a, **k)
            n[0] += 1
            if n[0] == 2:
                die()
        e.write_shard = write_shard
    elif stage == "mid-shard":
        write = e.write_shard
        def write_shard(path, *a, **k):
            if Path(path).name == "part-00001.parquet":
                Path(path).with_name(".part-00001.parquet.%d.tmp" % os.getpid()).write_bytes(b"PAR1 half")
                die()
            write(path, *a, **k)
        e.write_shard = write_shard
    elif stage == "assembling vectors":
        reserve = d.reserve_space
        def reserve_space(path, n):
            reserve(path, n)
            die()
        d.reserve_space = reserve_space
    elif stage == "before the manifest":
        d.Manifest.write = lambda self, _: die()
    cfg = b.BuildConfig(shard_rows=8, batch_size=4, index=IndexSpec(kind="flat"))
    with open_catalog(cat) as c:
        b.build_index(ck, c, out, cfg)
    """
)


def _child(code: str, *args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "stage", ["after two shards", "mid-shard", "assembling vectors", "before the manifest"]
)
def test_build_index_killed_then_rerun_is_identical(
    tiny: dict[str, Path], tmp_path: Path, stage: str
) -> None:
    out = tmp_path / "idx"
    p = _child(_BUILD, stage, tiny["checkpoint"], tiny["catalog"], out)
    assert p.returncode == -9, p.stderr[-2000:]
    assert not (out / "manifest.json").exists()
    with open_catalog(tiny["catalog"]) as c:
        build_index(tiny["checkpoint"], c, out, CFG)  # the killed writer's lock died with it
    for name in ["vectors.npy", "faiss.index", *[f"embeddings/part-0000{i}.parquet" for i in range(4)]]:
        assert (out / name).read_bytes() == (tiny["index"] / name).read_bytes(), name
    assert not list(out.rglob("*.tmp")) and not (out / "build-state.json").exists()


_SYNTH = textwrap.dedent(
    """
    import os, signal, sys
    import galaxy_retrieval.synth.generate as g
    from galaxy_retrieval.synth import SynthConfig

    out, n = sys.argv[1], [0]
    write = g._write
    def _write(f, chunk):
        write(f, chunk)
        n[0] += 1
        if n[0] == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    g._write = _write
    g.generate_catalog(SynthConfig(n=24, size=32, seed=1, chunk_size=4, workers=2), out)
    """
)


@pytest.mark.slow
def test_synth_killed_then_rerun_is_identical(tmp_path: Path) -> None:
    from galaxy_retrieval.synth import SynthConfig, generate_catalog

    p = _child(_SYNTH, tmp_path / "a.h5")
    assert p.returncode == -9, p.stderr[-2000:]
    assert [q.name for q in tmp_path.iterdir() if ".partial-" in q.name]  # what a kill leaves
    generate_catalog(SynthConfig(n=24, size=32, seed=1, chunk_size=4, workers=1), tmp_path / "a.h5")
    generate_catalog(SynthConfig(n=24, size=32, seed=1, chunk_size=4, workers=1), tmp_path / "ref.h5")
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "ref.h5").read_bytes()
    assert sorted(q.name for q in tmp_path.iterdir()) == ["a.h5", "ref.h5"]  # the partial is gone


_SLOW_BUILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import galaxy_retrieval.index.build as b
    import galaxy_retrieval.index.embed as e
    from galaxy_retrieval.catalog import open_catalog
    from galaxy_retrieval.index.candidates import IndexSpec

    ck, cat, out, go = sys.argv[1:5]
    write = e.write_shard
    def write_shard(path, *a, **k):
        write(path, *a, **k)
        if Path(path).name == "part-00001.parquet":  # mid-build: let the other writer try
            print("building", flush=True)
            while not Path(go).exists():
                time.sleep(0.05)
    e.write_shard = write_shard
    with open_catalog(cat) as c:
        b.build_index(ck, c, out, b.BuildConfig(shard_rows=8, batch_size=4, index=IndexSpec(kind="flat")))
    """
)


@pytest.mark.slow
def test_a_second_builder_with_overwrite_is_refused_and_the_first_finishes(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    """Two builders on one --out used to mix two models' shards into an index that verified."""
    from .conftest import assert_user_error, gr, make_checkpoint

    out, go = tmp_path / "idx", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    a = subprocess.Popen(
        [sys.executable, "-c", _SLOW_BUILD, str(tiny["checkpoint"]), str(tiny["catalog"]), str(out), str(go)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert a.stdout.readline().strip() == "building"
        other = make_checkpoint(tmp_path / "other", seed=1)
        r = gr(
            "build-index",
            "--checkpoint",
            other,
            "--catalog",
            tiny["catalog"],
            "--out",
            out,
            "--overwrite",
            "--shard-rows",
            8,
            "--batch-size",
            4,
        )
        assert_user_error(r, f"pid {a.pid}")
    finally:
        go.touch()
        a.wait(timeout=300)
    assert a.returncode == 0
    for name in ["vectors.npy", *[f"embeddings/part-0000{i}.parquet" for i in range(4)]]:
        assert (out / name).read_bytes() == (tiny["index"] / name).read_bytes(), name
