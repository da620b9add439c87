"""`gr download`: streamed, resumed with HTTP Range, verified, never partial under the final name."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from galaxy_retrieval.catalog import open_catalog
from galaxy_retrieval.cli import app
from galaxy_retrieval.errors import FetchError
from galaxy_retrieval.fetch import DATASETS, HttpConfig, RemoteFile, download

from .conftest import write_galaxy10_h5
from .localhttp import LocalServer

FAST = HttpConfig(timeout_s=5.0, retries=2, backoff_s=0.01)
NAME = "Galaxy10_DECals.h5"


@pytest.fixture
def served(tmp_path: Path):
    root = tmp_path / "zenodo"
    root.mkdir()
    f = write_galaxy10_h5(root / NAME, n=40, size=32)  # the real file's layout, 40 galaxies
    with LocalServer(root) as s:
        yield s, f, hashlib.sha256(f.read_bytes()).hexdigest()


def _remote(sha: str | None) -> RemoteFile:
    return RemoteFile("g10", "https://unused.invalid/" + NAME, NAME, sha256=sha)


def test_fresh_download_is_verified_and_opens(served, tmp_path: Path) -> None:
    s, f, sha = served
    res = download(_remote(sha), tmp_path / "data", FAST, base_url=s.url)
    assert res.path == tmp_path / "data" / NAME and res.verified == "sha256" and res.resumed_from == 0
    assert res.path.read_bytes() == f.read_bytes() and not (tmp_path / "data" / (NAME + ".part")).exists()
    assert len(open_catalog(res.path)) == 40
    n = len(s.requests)
    again = download(_remote(sha), tmp_path / "data", FAST, base_url=s.url)
    assert again.already_there and len(s.requests) == n


def test_interrupted_download_resumes_with_a_range_request(served, tmp_path: Path) -> None:
    s, f, sha = served
    out = tmp_path / "data"
    out.mkdir()
    data = f.read_bytes()
    (out / (NAME + ".part")).write_bytes(data[:10_000])  # what a killed run leaves
    res = download(_remote(sha), out, FAST, base_url=s.url)
    assert s.requests[-1][1] == "bytes=10000-" and res.resumed_from == 10_000
    assert res.transferred == len(data) - 10_000 and (out / NAME).read_bytes() == data

    # a connection dropped mid-body: the retry resumes from what arrived
    (out / NAME).unlink()
    s.requests.clear()
    s.script = {NAME: ["truncate"]}
    res = download(_remote(sha), out, FAST, base_url=s.url)
    assert [r for _, r in s.requests] == [None, f"bytes={len(data) // 2}-"]
    assert (out / NAME).read_bytes() == data and res.attempts == 2

    # a server that ignores Range: start again from zero, still correct
    (out / NAME).unlink()
    (out / (NAME + ".part")).write_bytes(data[:5000])
    s.script = {NAME: ["norange"]}
    res = download(_remote(sha), out, FAST, base_url=s.url)
    assert (out / NAME).read_bytes() == data and any("does not resume" in n for n in res.notes)


def test_bad_downloads_never_land_under_the_final_name(served, tmp_path: Path) -> None:
    s, f, sha = served
    out = tmp_path / "data"
    with pytest.raises(
        FetchError, match="checksum mismatch: sha256 .* expected 0000.*the download was removed"
    ):
        download(_remote("0" * 64), out, FAST, base_url=s.url)
    assert not (out / NAME).exists() and not (out / (NAME + ".part")).exists()

    s.script = {NAME: ["truncate"] * 3}
    with pytest.raises(
        FetchError,
        match=r"cut short .*gave up after 3 attempts; \d[\d,]* bytes kept in .*\.part, rerun to resume",
    ):
        download(_remote(sha), out, FAST, base_url=s.url)
    assert not (out / NAME).exists() and (out / (NAME + ".part")).stat().st_size > 0

    s.script = {NAME: ["html"]}
    (out / (NAME + ".part")).unlink()
    with pytest.raises(FetchError, match="sent an HTML page"):
        download(_remote(None), out, FAST, base_url=s.url)
    with pytest.raises(FetchError, match="HTTP 404"):
        download(RemoteFile("x", "", "missing.h5"), out, FAST, base_url=s.url)
    assert not (out / NAME).exists()


def test_cli_download(served, tmp_path: Path) -> None:
    s, f, sha = served
    r = CliRunner().invoke(
        app,
        ["download", "galaxy10-decals", "--out", str(tmp_path / "d"), "--base-url", s.url, "--sha256", sha],
    )
    assert r.exit_code == 0, r.output
    assert (
        f"downloaded {tmp_path / 'd' / NAME}" in r.output.replace("\n", "") and "sha256 verified" in r.output
    )
    # the published checksum is used by default: this small file is not the real one
    r = CliRunner().invoke(
        app, ["download", "galaxy10-decals", "--out", str(tmp_path / "e"), "--base-url", s.url]
    )
    assert (
        r.exit_code == 2
        and "checksum mismatch" in r.output
        and DATASETS["galaxy10-decals"].sha256 in r.output
    )
    r = CliRunner().invoke(app, ["download", "galaxy11", "--out", str(tmp_path / "e")])
    assert r.exit_code == 2 and "unknown dataset 'galaxy11'; choices: galaxy10-decals" in r.output


def test_a_name_that_does_not_resolve_fails_at_once_and_leaves_no_folder(tmp_path: Path) -> None:
    import time

    out = tmp_path / "new" / "data"
    slow = HttpConfig(retries=4, backoff_s=2.0)  # retried, this would take 30 s
    t0 = time.perf_counter()
    with pytest.raises(
        FetchError,
        match=r"cannot resolve the host gr-test\.invalid .*gave up after 1 attempt; nothing was downloaded",
    ):
        download(RemoteFile("x", "http://gr-test.invalid/cat.h5", "cat.h5"), out, slow)
    assert time.perf_counter() - t0 < 10
    assert not (tmp_path / "new").exists()
