"""`gr synth`: orphaned workers after kill -9, a full disk, replacing files, output paths
(issue 12, items 5, 6, 9, 13)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import assert_user_error, gr, snapshot


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc to find the workers")
def test_kill_9_of_synth_takes_its_workers_along(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "galaxy_retrieval.cli",
            "synth",
            "--n",
            "3000",
            "--size",
            "64",
            "--workers",
            "2",
            "--out",
            str(tmp_path / "s.h5"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        workers: list[int] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and p.poll() is None:
            workers = [
                c for c in _children(p.pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()
            ]
            if len(workers) >= 2:
                break
            time.sleep(0.2)
        assert len(workers) >= 2, "the workers never started"
        time.sleep(1.0)  # let them start rendering
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        left = [w for w in workers if _alive(w)]
    finally:
        for w in _children(p.pid) if p.poll() is None else []:
            os.kill(w, signal.SIGKILL)
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, f"orphaned workers {left} still running"


def test_synth_needs_overwrite_to_replace_a_file(tmp_path: Path) -> None:
    out = tmp_path / "mine.h5"
    out.write_text("the user's file")
    r = gr("synth", "--n", "2", "--size", "32", "--workers", "1", "--out", out)
    assert_user_error(r, out, "--overwrite")
    assert out.read_text() == "the user's file"
    r = gr("synth", "--n", "2", "--size", "32", "--workers", "1", "--out", out, "--overwrite")
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", "{file}/x.h5"], "is a file, not a folder"),
        (["--out", "/proc/gr-x.h5"], "/proc/gr-x.h5"),
        (["--out", "{tmp}/ok.h5", "--sheet", "{file}/sheet.png"], "sheet.png"),
        (["--out", "{tmp}/ok.h5", "--sheet", "{tmp}"], "is a folder"),
    ],
)
def test_bad_output_paths_are_refused_before_rendering(tmp_path: Path, args: list[str], message: str) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("a file")
    before = snapshot(tmp_path)
    r = gr(
        "synth", "--n", "2", "--size", "32", "--workers", "1", *[a.format(file=f, tmp=tmp_path) for a in args]
    )
    assert_user_error(r, message)
    assert "rendering" not in r.output
    assert snapshot(tmp_path) == before


def test_stale_partial_of_a_dead_run_is_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"s.h5.partial-{dead.pid}"
    stale.write_bytes(b"\0" * 1000)
    assert (
        gr("synth", "--n", "2", "--size", "32", "--workers", "1", "--out", tmp_path / "s.h5").exit_code == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs: a real full disk where the test may mount one (root on Linux)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here; test_disk_full.py simulates ENOSPC instead")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_synth_on_a_full_disk_is_one_line_and_leaves_nothing(small_disk: Path) -> None:
    out = small_disk / "s.h5"
    r = gr("synth", "--n", "40", "--size", "128", "--workers", "1", "--out", out)
    assert_user_error(r, out, "no space left")
    assert list(small_disk.iterdir()) == []


def test_synth_that_fits_the_small_disk_is_written(small_disk: Path) -> None:
    """The space check is not a blanket refusal: a catalog that fits is written."""
    assert (
        gr("synth", "--n", "4", "--size", "32", "--workers", "1", "--out", small_disk / "s.h5").exit_code == 0
    )
    assert sorted(p.name for p in small_disk.iterdir()) == ["s.h5"]
