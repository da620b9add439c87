"""No output replaces a special file (issue 21, item 4).

`gr query --mosaic /dev/full` exited 0 and replaced the device node with a PNG (run as root,
as in a container); `gr explain --out /dev/full` the same: ``atomic.commit_file`` renamed onto
any path. A FIFO in a temp folder stands in for a device here: a test must never risk a real
device node, and a FIFO is a special file the old code replaced just the same."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from galaxy_retrieval.atomic import atomic_write_bytes, commit_file
from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.errors import OutputPathError

from .conftest import assert_user_error, gr


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    p = tmp_path / "special"
    os.mkfifo(p)
    return p


def _still_a_fifo(p: Path) -> bool:
    return stat.S_ISFIFO(os.lstat(p).st_mode)


def test_commit_file_refuses_a_special_file(tmp_path: Path, fifo: Path) -> None:
    tmp = tmp_path / ".x.tmp"
    tmp.write_bytes(b"png")
    with pytest.raises(OutputPathError, match="not a regular file"):
        commit_file(tmp, fifo)
    assert _still_a_fifo(fifo)
    with pytest.raises(OutputPathError, match="not a regular file"):
        atomic_write_bytes(fifo, b"png")
    assert _still_a_fifo(fifo)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".x.tmp", "special"]  # atomic_write's temp removed


def test_commit_file_still_replaces_files_and_links(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"old")
    atomic_write_bytes(tmp_path / "a", b"new")
    assert (tmp_path / "a").read_bytes() == b"new"
    (tmp_path / "elsewhere").write_bytes(b"keep")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    atomic_write_bytes(tmp_path / "link", b"new")  # the link is replaced, not what it names
    assert (tmp_path / "elsewhere").read_bytes() == b"keep" and (tmp_path / "link").read_bytes() == b"new"


def test_gr_query_mosaic_onto_a_special_file_is_refused(tiny: dict[str, Path], fifo: Path) -> None:
    r = gr("query", "--index", tiny["index"], "--object-id", "3", "--k", 3, "--mosaic", fifo)
    assert_user_error(r, fifo, "not a regular file")
    assert _still_a_fifo(fifo)


def test_gr_explain_out_onto_a_special_file_is_refused(
    tiny: dict[str, Path], tmp_path: Path, fifo: Path
) -> None:
    with open_catalog(tiny["catalog"]) as c:
        Image.fromarray(np.asarray(c[3].image)).save(tmp_path / "q.png")
    r = gr(
        "explain",
        "--index",
        tiny["index"],
        "--image",
        tmp_path / "q.png",
        "--out",
        fifo,
        "--k",
        2,
        "--steps",
        2,
    )
    assert_user_error(r, fifo, "not a regular file")
    assert _still_a_fifo(fifo)


def test_a_special_file_that_appears_during_the_work_is_not_replaced(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    """The early check passed (nothing there); the special file appeared before the commit."""
    import galaxy_retrieval.atomic as atomic
    from galaxy_retrieval.search.options import SearchOptions
    from galaxy_retrieval.search.query import QueryRequest, run_query

    out = tmp_path / "m.png"
    real = atomic.commit_file

    def late(tmp: Path, target: Path) -> Path:
        if Path(target) == out and not out.exists():
            os.mkfifo(out)
        return real(tmp, target)

    atomic.commit_file = late
    try:
        with pytest.raises(OutputPathError):
            run_query(
                QueryRequest(index=tiny["index"], object_id="3", options=SearchOptions(k=3), mosaic=out)
            )
    finally:
        atomic.commit_file = real
    assert _still_a_fifo(out)
