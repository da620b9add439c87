"""Downloading a public catalog file (Galaxy10 DECaLS): streamed, resumable, verified.

The body streams into ``<name>.part`` beside the target. An interrupted transfer (a dropped
connection, Ctrl-C, a crash) leaves the ``.part`` file, and the next call asks the server for
the rest with an HTTP ``Range`` request; a server that ignores ranges sends the whole file and
the download restarts. Only a file whose checksum (or, without one, size and format) checks out
is renamed to its final name, so a file under the final name is always the complete file.

Not :func:`~galaxy_retrieval.atomic.atomic_path`: its temporary file is deleted when
the writer fails, and here the partial file is exactly what must survive to be resumed.
"""

from __future__ import annotations

import os
import re
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ..atomic import commit_file, sha256_file
from ..errors import ConfigError, FetchError
from ..paths import first_missing, remove_created_dirs
from ..progress import NULL_PROGRESS, Progress
from .http import (
    RETRY_STATUS,
    HttpConfig,
    is_name_error,
    make_client,
    name_error_message,
    retry_wait,
    transport_failure,
)

__all__ = ["RemoteFile", "DATASETS", "DownloadResult", "download", "download_dataset"]


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    filename: str
    sha256: str | None = None
    size: int | None = None  # bytes, when known
    description: str = ""


#: public catalogs ``gr download`` knows. Galaxy10 DECaLS: Leung & Bovy's file on Zenodo
#: (record 10845026), checksum as published with astroNN's loader.
DATASETS: dict[str, RemoteFile] = {
    "galaxy10-decals": RemoteFile(
        name="galaxy10-decals",
        url="https://zenodo.org/records/10845026/files/Galaxy10_DECals.h5",
        filename="Galaxy10_DECals.h5",
        sha256="19aefc477c41bb7f77ff07599a6b82a038dc042f889a111b0d4d98bb755c1571",
        description="Galaxy10 DECaLS: 17,736 galaxies, 256×256×3 g/r/z cutouts in 10 Galaxy Zoo classes, about 2.7 GB",
    ),
}


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    bytes: int  # size of the file
    transferred: int  # bytes received by this call
    resumed_from: int  # bytes already in the .part file when this call started (0: fresh)
    verified: str  # "sha256", or "size and format" without a known checksum
    already_there: bool = False
    attempts: int = 0
    notes: list[str] = field(default_factory=list)


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED = re.compile(r"bytes\s+\*/(\d+)")


def _check_format(path: Path) -> None:
    if path.name.lower().endswith((".h5", ".hdf5")):
        import h5py

        if not h5py.is_hdf5(path):
            raise FetchError(
                f"{path}: the downloaded file is not an HDF5 file (an error page saved as the file?)"
            )


def download(
    remote: RemoteFile,
    out_dir: str | Path,
    http: HttpConfig = HttpConfig(),
    base_url: str | None = None,
    sha256: str | None = None,
    progress: Progress = NULL_PROGRESS,
    client: httpx.Client | None = None,
) -> DownloadResult:
    """Download ``remote`` into ``out_dir`` (see module doc); return where it is.

    ``base_url`` replaces the URL's directory (a mirror; the file name stays). ``sha256``
    overrides the known checksum. A file already at the final name is verified and kept."""
    expected = (sha256 or remote.sha256 or "").lower() or None
    if expected is not None and not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise ConfigError(f"sha256 {expected!r} is not 64 hexadecimal digits")
    out = Path(out_dir)
    created = first_missing(out)  # removed again if the download fails with nothing in it
    out.mkdir(parents=True, exist_ok=True)
    final = out / remote.filename
    part = out / (remote.filename + ".part")
    url = f"{base_url.rstrip('/')}/{remote.filename}" if base_url else remote.url
    if final.is_file():
        verified = _verify(final, expected, remote.size, keep=True)
        return DownloadResult(final, final.stat().st_size, 0, 0, verified, already_there=True)

    resumed_from = part.stat().st_size if part.is_file() else 0
    own = client is None
    c = client or make_client(http)
    try:
        t = _fetch_part(c, _Transfer(remote, url, part, progress), http)
    except FetchError:
        _drop_empty_part(part, out, created)
        raise
    finally:
        if own:
            c.close()
    if not t.complete:
        have = part.stat().st_size if part.is_file() else 0
        if have == 0:
            _drop_empty_part(part, out, created)
        tries = f"gave up after {t.attempt} attempt{'s' if t.attempt != 1 else ''}"
        kept = f"{have:,} bytes kept in {part}, rerun to resume" if have else "nothing was downloaded"
        raise FetchError(f"{url}: {t.reason} ({tries}; {kept})")
    verified = _verify(part, expected, remote.size, keep=False)
    commit_file(part, final)
    return DownloadResult(
        final, final.stat().st_size, t.transferred, resumed_from, verified, attempts=t.attempt, notes=t.notes
    )


def _drop_empty_part(part: Path, out: Path, created: Path | None) -> None:
    """An empty (or absent) .part has nothing to resume: remove it, and the folders this call
    made, so a refused download leaves no empty folder behind."""
    if not (part.is_file() and part.stat().st_size):
        part.unlink(missing_ok=True)
        remove_created_dirs(out, created)


class _Retry(Exception):
    """A transient failure of one attempt; its argument is the reason."""


@dataclass
class _Transfer:
    """One download across its attempts: what arrived, and what to tell the user."""

    remote: RemoteFile
    url: str
    part: Path
    progress: Progress
    attempt: int = 0  # attempts made (a fresh start after a refused resume is not one)
    complete: bool = False
    transferred: int = 0  # bytes received
    reason: str = ""  # why the last attempt failed
    notes: list[str] = field(default_factory=list)
    task: Any = None  # the progress bar, opened at the first answer that says the size
    response: httpx.Response | None = None  # the last answer (its Retry-After paces the next try)


def _fetch_part(c: httpx.Client, t: _Transfer, http: HttpConfig) -> _Transfer:
    """Attempt the transfer into ``t.part`` until it is complete or the retries are spent."""
    attempts = http.retries + 1
    with ExitStack() as stack:
        while t.attempt < attempts and not t.complete:
            t.attempt += 1
            try:
                outcome = _attempt(c, t, stack)
            except _Retry as e:
                t.reason, outcome = str(e), "retry"
            except httpx.TransportError as e:
                if is_name_error(e):
                    t.reason = name_error_message(t.url, e)
                    break  # the name will not resolve on the next try either
                t.reason, outcome = transport_failure(e, http.timeout_s), "retry"
            if outcome == "restart":
                t.attempt -= 1  # not the server's fault: a fresh start is not a retry
                continue
            if not t.complete and t.attempt < attempts:
                time.sleep(retry_wait(http, t.attempt, t.response))
    return t


def _attempt(c: httpx.Client, t: _Transfer, stack: ExitStack) -> str:
    """One request for the rest of the file: "done" (``t.complete``), or "restart" when the
    server refused to resume and the .part was removed. Raises :class:`_Retry`."""
    offset = t.part.stat().st_size if t.part.is_file() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    t.response = None
    with c.stream("GET", t.url, headers=headers) as response:
        t.response = response
        if response.status_code == 416 and offset:
            # the .part already holds at least the whole file
            m = _UNSATISFIED.search(response.headers.get("content-range", ""))
            if m and int(m.group(1)) == offset:
                t.complete = True
                return "done"
            t.notes.append(f"the server refused to resume at byte {offset:,}; starting again")
            t.part.unlink()
            return "restart"
        total, mode = _accepted(response, offset, t)
        if t.task is None:
            t.task = stack.enter_context(
                t.progress.task(f"downloading {t.remote.filename}", total=total, unit="B")
            )
            t.task.advance(offset if mode == "ab" else 0)
        elif mode == "wb":
            t.notes.append("restarted from byte 0")
        with open(t.part, mode) as fh:
            # blocks as they arrive (not re-chunked): what arrived before a
            # dropped connection is on disk to resume from
            for block in response.iter_bytes():
                fh.write(block)
                t.transferred += len(block)
                t.task.advance(len(block))
            fh.flush()
            os.fsync(fh.fileno())
        size = t.part.stat().st_size
        if total is not None and size != total:
            raise _Retry(f"the transfer ended at {size:,} of {total:,} bytes")
        t.complete = True
        return "done"


def _accepted(response: httpx.Response, offset: int, t: _Transfer) -> tuple[int | None, str]:
    """(total size if known, file mode: "ab" to append to the .part, "wb" to start over) of
    an answer that brings the file; a refusal raises (:class:`_Retry` when it is transient)."""
    url, remote, status = t.url, t.remote, response.status_code
    if status == 206 and offset:
        m = _CONTENT_RANGE.search(response.headers.get("content-range", ""))
        if not m or int(m.group(1)) != offset:
            raise FetchError(
                f"{url}: the server answered a resume request with the wrong range ({response.headers.get('content-range')!r})"
            )
        total = int(m.group(3)) if m.group(3) != "*" else None
        mode = "ab"
    elif status == 200:
        if offset:
            t.notes.append(f"the server does not resume downloads; fetching all again (had {offset:,} bytes)")
        cl = response.headers.get("content-length")
        total = int(cl) if cl and cl.isdigit() else None
        mode = "wb"
    elif status in RETRY_STATUS:
        raise _Retry(f"HTTP {status} {response.reason_phrase}")
    else:
        raise FetchError(f"{url}: HTTP {status} {response.reason_phrase}")
    if "html" in response.headers.get("content-type", "").lower():
        raise FetchError(f"{url}: the server sent an HTML page, not {remote.filename}")
    if remote.size is not None and total is not None and total != remote.size:
        raise FetchError(
            f"{url}: the server offers {total:,} bytes, but {remote.filename} has {remote.size:,}"
        )
    return total, mode


def _verify(path: Path, expected: str | None, size: int | None, keep: bool) -> str:
    """Check ``path`` against the checksum (or size and format); a bad .part is removed."""

    def bad(msg: str) -> FetchError:
        if keep:
            return FetchError(f"{path}: {msg}; remove the file to download it again")
        path.unlink()
        return FetchError(f"{path}: {msg}; the download was removed, rerun to fetch it again")

    if size is not None and path.stat().st_size != size:
        raise bad(f"size {path.stat().st_size:,} bytes, expected {size:,}")
    if expected is not None:
        got = sha256_file(path)
        if got != expected:
            raise bad(f"checksum mismatch: sha256 {got}, expected {expected}")
        return "sha256"
    try:
        _check_format(path)
    except FetchError as e:
        raise bad(str(e).split(": ", 1)[-1]) from None
    return "size and format"


def download_dataset(
    name: str,
    out_dir: str | Path,
    http: HttpConfig = HttpConfig(),
    base_url: str | None = None,
    sha256: str | None = None,
    progress: Progress = NULL_PROGRESS,
) -> DownloadResult:
    """Download one of :data:`DATASETS` by name (``"galaxy10-decals"``)."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choices: {', '.join(DATASETS)}")
    return download(DATASETS[name], out_dir, http=http, base_url=base_url, sha256=sha256, progress=progress)
