"""What a benchmark result must carry to be read later: the machine and the commit.

The scripts under ``benchmarks/`` each grew a private ``_machine()`` and ``_git_commit()``;
these are the library versions (``gr rerank-benchmark`` uses them), so new benchmarks record
the same fields. The load average is part of the record because the machines these numbers
come from are often shared: a result taken at load 3 on 2 cores is not a quiet-machine result.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["machine_info", "git_commit", "load_average", "usable_cpus"]

_ROOT = Path(__file__).resolve().parents[2]


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages, rounded (None where the OS has none)."""
    if not hasattr(os, "getloadavg"):
        return None
    return [round(v, 2) for v in os.getloadavg()]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_info(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Platform, CPU, cores, memory, load and library versions, as a JSON-ready dict.

    Versions of numpy, numba and faiss are included when they import; ``extra`` is merged in
    (e.g. the thread counts a benchmark used)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable_cpus(),
        "memory_bytes": _memory_bytes(),
        "load_average": load_average(),
        "python": sys.version.split()[0],
    }
    for mod in ("numpy", "numba", "faiss", "torch"):
        m = sys.modules.get(mod)
        if m is not None:
            info[mod] = getattr(m, "__version__", "?")
    numba = sys.modules.get("numba")
    if numba is not None:
        try:
            info["numba_threading_layer"] = numba.threading_layer()
        except ValueError:  # no parallel kernel has run yet
            pass
    info.update(extra or {})
    return info


def git_commit(paths: tuple[str, ...] = ("galaxy_retrieval", "benchmarks"), root: str | Path = _ROOT) -> str:
    """``HEAD``'s hash, with ``+uncommitted-changes`` when ``paths`` differ from it, or
    ``"unknown"`` outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0 or not head.stdout.strip():
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *paths],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+uncommitted-changes" if dirty.stdout.strip() else "")


@contextmanager
def search_threads(n: int) -> Iterator[None]:
    """Run FAISS (OpenMP) and the numba kernels with ``n`` threads (0 or less: leave them),
    then restore: one query at a time on one thread is how latency is timed."""
    import faiss
    import numba

    if n <= 0:
        yield
        return
    f0, n0 = faiss.omp_get_max_threads(), numba.get_num_threads()
    faiss.omp_set_num_threads(n)
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(f0)
        numba.set_num_threads(n0)
