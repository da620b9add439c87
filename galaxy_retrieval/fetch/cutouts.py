"""Survey cutouts at a list of sky positions, written as an image-folder catalog.

:func:`fetch_cutouts` reads a targets table, downloads one cutout per row with bounded
concurrency, and writes ``metadata.csv`` (filename, object_id, ra, dec, survey, pixscale and
the table's other columns) beside the images, so the folder is ready for ``open_catalog``,
``gr train``, ``gr build-index`` and ``gr add``. A cutout is written only after its bytes were
checked (a full image, not an HTML page), under a temporary name renamed into place, so a file
under its final name is always complete: a rerun fetches only what is missing.

:func:`fetch_cutout` gets one cutout into a cache folder (``gr query --ra --dec --fetch``).
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ..atomic import atomic_path
from ..catalog.base import OnError
from ..errors import ConfigError, FetchError
from ..paths import first_missing, remove_created_dirs
from ..progress import NULL_PROGRESS, Progress
from .http import HttpConfig, check_image_bytes, get_checked, make_client
from .surveys import CutoutSpec, cutout_url
from .targets import RowProblem, Target, read_targets, safe_file_stem

__all__ = [
    "FetchCutoutsConfig",
    "FetchCutoutsResult",
    "fetch_cutouts",
    "fetch_cutout",
    "default_cache_dir",
    "CATALOG_CSV",
]

CATALOG_CSV = "metadata.csv"


@dataclass(frozen=True)
class FetchCutoutsConfig:
    targets: Path
    out: Path
    spec: CutoutSpec = field(default_factory=CutoutSpec)
    http: HttpConfig = field(default_factory=HttpConfig)
    on_error: OnError = "skip"
    columns: Mapping[str, str] | None = None  # targets column mapping, e.g. {"alpha": "ra"}

    def __post_init__(self) -> None:
        if self.on_error not in ("skip", "fail"):
            raise ConfigError(f"on_error must be 'skip' or 'fail', got {self.on_error!r}")


@dataclass(frozen=True)
class FetchCutoutsResult:
    out: Path
    csv: Path | None  # None when no cutout is available
    total: int  # rows in the targets table
    fetched: int  # downloaded now
    cached: int  # already in the folder from an earlier run
    problems: list[RowProblem]  # rows without a cutout, in line order
    seconds: float

    @property
    def available(self) -> int:
        return self.fetched + self.cached


def _write_cutout(client: httpx.Client, url: str, dest: Path, spec: CutoutSpec, http: HttpConfig) -> None:
    data = get_checked(client, url, http, check_image_bytes(spec.format))
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def fetch_cutouts(
    cfg: FetchCutoutsConfig, progress: Progress = NULL_PROGRESS, client: httpx.Client | None = None
) -> FetchCutoutsResult:
    """Download the cutouts of every target (see module doc).

    ``on_error="skip"`` records a failed row and goes on; ``"fail"`` stops at the first
    (what was downloaded is kept, and listed in the CSV) and raises :class:`FetchError`
    naming the row."""
    t0 = time.perf_counter()
    spec = cfg.spec
    targets, problems = read_targets(cfg.targets, cfg.columns)
    total = len(targets) + len(problems)
    if problems and cfg.on_error == "fail":
        raise FetchError(f"{cfg.targets}: {problems[0]}")
    out = Path(cfg.out)
    created = first_missing(out)  # removed again when not one cutout lands in it
    out.mkdir(parents=True, exist_ok=True)
    files = {t.line: f"{safe_file_stem(t.object_id)}{spec.suffix}" for t in targets}
    todo = [t for t in targets if not (out / files[t.line]).is_file()]
    cached = len(targets) - len(todo)
    if cached:
        progress.log(
            f"{cached:,} of {len(targets):,} cutouts already in {out}; fetching the other {len(todo):,}"
        )
    own_client = client is None
    client = client or make_client(cfg.http)
    try:
        got = _download_all(cfg, client, [(t, out / files[t.line]) for t in todo], progress)
    finally:
        if own_client:
            client.close()
    problems = sorted([*problems, *got.problems], key=lambda p: p.line)
    have = [t for t in targets if (out / files[t.line]).is_file()]
    csv_path = _write_catalog_csv(out, have, files, spec) if have else None
    if not have:
        remove_created_dirs(out, created)  # a refused fetch leaves no empty folder behind
    if got.failure is not None:
        raise FetchError(
            f"{cfg.targets}: {got.failure} ({got.fetched + cached} cutouts kept in {out}; rerun to resume)"
        )
    return FetchCutoutsResult(out, csv_path, total, got.fetched, cached, problems, time.perf_counter() - t0)


@dataclass(frozen=True)
class _Downloads:
    fetched: int
    problems: list[RowProblem]  # rows whose cutout could not be fetched
    failure: RowProblem | None  # with on_error="fail": the row that stopped the run


def _download_all(
    cfg: FetchCutoutsConfig, client: httpx.Client, jobs: list[tuple[Target, Path]], progress: Progress
) -> _Downloads:
    """Fetch each (target, file) with ``cfg.http.concurrency`` requests in flight."""
    spec = cfg.spec
    fetched = 0
    problems: list[RowProblem] = []
    failure: RowProblem | None = None
    with (
        progress.task(f"fetching {spec.survey} cutouts", total=len(jobs), unit="img") as task,
        ThreadPoolExecutor(cfg.http.concurrency) as ex,
    ):
        # Submit lazily, keeping at most 2×concurrency in flight: a 100k-row table must not
        # become 100k queued futures, and "fail" should stop soon after the first failure.
        it = iter(jobs)
        pending: dict[Future, Target] = {}

        def submit_more() -> None:
            while len(pending) < 2 * cfg.http.concurrency:
                job = next(it, None)
                if job is None:
                    return
                t, dest = job
                url = cutout_url(spec, t.ra, t.dec)
                pending[ex.submit(_write_cutout, client, url, dest, spec, cfg.http)] = t

        submit_more()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                t = pending.pop(fut)
                try:
                    fut.result()
                except FetchError as e:
                    problem = RowProblem(t.line, t.object_id, str(e))
                    problems.append(problem)
                    if cfg.on_error == "fail" and failure is None:
                        failure = problem
                else:
                    fetched += 1
                task.advance(1)
            if failure is None:
                submit_more()
            else:
                fetched += _finish_running(pending, problems)
                pending.clear()
    return _Downloads(fetched, problems, failure)


def _finish_running(pending: dict[Future, Target], problems: list[RowProblem]) -> int:
    """After a failure: cancel what has not started; requests already running finish (a file
    is complete or absent, never partial). Returns how many of them fetched their cutout."""
    for fut in pending:
        fut.cancel()
    fetched = 0
    for fut, t in list(pending.items()):
        if fut.cancelled():
            continue
        e = fut.exception()
        if e is None:
            fetched += 1
        elif isinstance(e, FetchError):
            problems.append(RowProblem(t.line, t.object_id, str(e)))
        else:
            raise e
    return fetched


def _write_catalog_csv(out: Path, targets: list[Target], files: dict[int, str], spec: CutoutSpec) -> Path:
    extra = list(dict.fromkeys(k for t in targets for k in t.extra if k not in ("survey", "pixscale")))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["filename", "object_id", "ra", "dec", "survey", "pixscale", *extra])
    for t in targets:
        w.writerow(
            [
                files[t.line],
                t.object_id,
                repr(t.ra),
                repr(t.dec),
                spec.survey,
                f"{spec.scale:g}",
                *(t.extra.get(k, "") for k in extra),
            ]
        )
    target = out / CATALOG_CSV
    with atomic_path(target) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return target


def default_cache_dir() -> Path:
    """Where single cutouts (queries by position) are kept: $XDG_CACHE_HOME/galaxy-retrieval/cutouts."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "galaxy-retrieval" / "cutouts"


def fetch_cutout(
    ra: float,
    dec: float,
    spec: CutoutSpec = CutoutSpec(),
    cache_dir: str | Path | None = None,
    http: HttpConfig = HttpConfig(),
    client: httpx.Client | None = None,
) -> Path:
    """The cutout at (ra, dec), downloaded once into ``cache_dir`` and reused after that."""
    url = cutout_url(spec, ra, dec)  # validates the coordinates first
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    layer = spec.layer or ""
    name = f"{ra:.6f}{dec:+.6f}_{spec.size}px_{spec.scale:g}as{('_' + spec.bands) if spec.bands else ''}{('_' + layer) if layer else ''}{spec.suffix}"
    dest = cache / spec.survey / name
    if dest.is_file():
        return dest
    own = client is None
    c = client or make_client(http)
    try:
        data = get_checked(c, url, http, check_image_bytes(spec.format))
    finally:
        if own:
            c.close()
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return dest
