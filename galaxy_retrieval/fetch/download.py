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

from ..errors import ConfigError, FetchError
from ..atomic import commit_file, sha256_file
from ..progress import NULL_PROGRESS, Progress
from ..paths import first_missing, remove_created_dirs
from .http import RETRY_STATUS, HttpConfig, is_name_error, make_client, name_error_message, retry_wait, transport_failure

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
            raise FetchError(f"{path}: the downloaded file is not an HDF5 file (an error page saved as the file?)")


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
    transferred = 0
    notes: list[str] = []
    reason = ""
    attempts = http.retries + 1
    complete = False
    own = client is None
    c = client or make_client(http)
    attempt = 0
    try:
        with ExitStack() as stack:
            task: Any = None
            while attempt < attempts and not complete:
                attempt += 1
                offset = part.stat().st_size if part.is_file() else 0
                headers = {"Range": f"bytes={offset}-"} if offset else {}
                response = None
                try:
                    with c.stream("GET", url, headers=headers) as response:
                        status = response.status_code
                        if status == 416 and offset:
                            # the .part already holds at least the whole file
                            m = _UNSATISFIED.search(response.headers.get("content-range", ""))
                            if m and int(m.group(1)) == offset:
                                complete = True
                                break
                            notes.append(f"the server refused to resume at byte {offset:,}; starting again")
                            part.unlink()
                            attempt -= 1  # not the server's fault: a fresh start is not a retry
                            continue
                        if status == 206 and offset:
                            m = _CONTENT_RANGE.search(response.headers.get("content-range", ""))
                            if not m or int(m.group(1)) != offset:
                                raise FetchError(f"{url}: the server answered a resume request with the wrong range ({response.headers.get('content-range')!r})")
                            total = int(m.group(3)) if m.group(3) != "*" else None
                            mode = "ab"
                        elif status == 200:
                            if offset:
                                notes.append(f"the server does not resume downloads; fetching all again (had {offset:,} bytes)")
                            offset = 0
                            cl = response.headers.get("content-length")
                            total = int(cl) if cl and cl.isdigit() else None
                            mode = "wb"
                        elif status in RETRY_STATUS:
                            reason = f"HTTP {status} {response.reason_phrase}"
                            raise _Retry()
                        else:
                            raise FetchError(f"{url}: HTTP {status} {response.reason_phrase}")
                        if "html" in response.headers.get("content-type", "").lower():
                            raise FetchError(f"{url}: the server sent an HTML page, not {remote.filename}")
                        if remote.size is not None and total is not None and total != remote.size:
                            raise FetchError(f"{url}: the server offers {total:,} bytes, but {remote.filename} has {remote.size:,}")
                        if task is None:
                            task = stack.enter_context(progress.task(f"downloading {remote.filename}", total=total, unit="B"))
                            task.advance(offset)
                        elif mode == "wb":
                            notes.append("restarted from byte 0")
                        with open(part, mode) as fh:
                            # blocks as they arrive (not re-chunked): what arrived before a
                            # dropped connection is on disk to resume from
                            for block in response.iter_bytes():
                                fh.write(block)
                                transferred += len(block)
                                task.advance(len(block))
                            fh.flush()
                            os.fsync(fh.fileno())
                        size = part.stat().st_size
                        if total is not None and size != total:
                            reason = f"the transfer ended at {size:,} of {total:,} bytes"
                            raise _Retry()
                        complete = True
                except _Retry:
                    pass
                except httpx.TransportError as e:
                    if is_name_error(e):
                        reason = name_error_message(url, e)
                        break  # the name will not resolve on the next try either
                    reason = transport_failure(e, http.timeout_s)
                if not complete and attempt < attempts:
                    time.sleep(retry_wait(http, attempt, response))
    except FetchError:
        if not (part.is_file() and part.stat().st_size):
            part.unlink(missing_ok=True)
            remove_created_dirs(out, created)  # a refused download leaves no empty folder behind
        raise
    finally:
        if own:
            c.close()
    if not complete:
        have = part.stat().st_size if part.is_file() else 0
        if have == 0:
            part.unlink(missing_ok=True)
            remove_created_dirs(out, created)  # a refused download leaves no empty folder behind
        tries = f"gave up after {attempt} attempt{'s' if attempt != 1 else ''}"
        kept = f"{have:,} bytes kept in {part}, rerun to resume" if have else "nothing was downloaded"
        raise FetchError(f"{url}: {reason} ({tries}; {kept})")
    verified = _verify(part, expected, remote.size, keep=False)
    commit_file(part, final)
    return DownloadResult(final, final.stat().st_size, transferred, resumed_from, verified, attempts=attempt, notes=notes)


class _Retry(Exception):
    """A transient failure of one attempt (its reason is already recorded)."""


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
