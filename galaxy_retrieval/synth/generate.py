"""Render a whole synthetic catalog in parallel and write it as a Galaxy10 DECaLS HDF5 file.

Layout (readable by :class:`galaxy_retrieval.catalog.HDF5Catalog`):

- ``images`` (N, size, size, 3) uint8, one HDF5 chunk per image; ``ans`` uint8 class
  (Galaxy10 order); ``ra``, ``dec`` float64 degrees; ``redshift``, ``pxscale`` float32;
  ``object_id`` UTF-8 strings ``synth-000000``…
- ``truth/``: the parameters each object was drawn with, one 1-D dataset per scalar (see
  :data:`.scene.TRUTH_SCALARS`); ``star_x``, ``star_y``, ``star_flux`` and
  ``neighbour_x``, ``neighbour_y``, ``neighbour_flux`` as (N, max) arrays padded with NaN
  (x = array column, y = array row, flux in r-band nanomaggies); ``star_mask`` (N, size,
  size) uint8, 1 where a foreground star outshines twice the sky noise.
- file attributes: ``generator``, ``version``, ``seed``, ``size``, ``pixel_scale``,
  ``bands``, ``class_names`` and the full ``config`` as JSON.

Every object is a pure function of ``(seed, index)``, so the file is byte-for-byte the
same whatever the number of workers. It is written under a temporary name and renamed
into place, so a file at ``out`` is always complete.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from ..atomic import check_free_space, commit_file, is_no_space
from ..catalog.galaxy10 import GALAXY10_CLASSES
from ..errors import ConfigError, NoSpaceError
from ..paths import check_output_file
from ..progress import NULL_PROGRESS, Progress
from .config import BANDS, SynthConfig
from .params import N_CLASSES
from .scene import TRUTH_SCALARS

__all__ = ["generate_catalog", "balanced_labels", "render_chunk", "Chunk", "FORMAT_VERSION"]

#: bumped whenever the same seed would give different pixels or a different layout
FORMAT_VERSION = "1"
GENERATOR = "galaxy_retrieval.synth"
# Random stream for the class order; far above any object index, so it never collides
# with an object's stream (objects use spawn key (index,)).
_LABEL_STREAM = 2**62


def _package_version() -> str:
    from ..version import __version__

    return str(__version__)


def balanced_labels(n: int, seed: int) -> np.ndarray:
    """Classes 0–9 in equal numbers (±1), in an order shuffled by ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_LABEL_STREAM,)))
    return rng.permutation(np.arange(n) % N_CLASSES).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class Chunk:
    """Rendered rows ``lo`` … ``lo + len(images) - 1``."""

    lo: int
    images: np.ndarray  # (k, H, W, 3) uint8
    star_mask: np.ndarray  # (k, H, W) uint8
    truth: dict[str, np.ndarray]  # scalar name -> (k,)
    stars: np.ndarray  # (k, max_stars, 3) float32, NaN padded
    neighbours: np.ndarray  # (k, max_neighbours, 3) float32, NaN padded
    ra: np.ndarray
    dec: np.ndarray
    redshift: np.ndarray


def render_chunk(cfg: SynthConfig, lo: int, labels: np.ndarray) -> Chunk:
    """Render objects ``lo, lo + 1, …`` with the given classes (runs in a worker)."""
    from .render import render_object

    k = len(labels)
    s = cfg.size
    images = np.empty((k, s, s, 3), np.uint8)
    masks = np.empty((k, s, s), np.uint8)
    truth = {name: np.empty(k, dt) for name, dt in TRUTH_SCALARS.items()}
    stars = np.full((k, cfg.max_stars, 3), np.nan, np.float32)
    neigh = np.full((k, cfg.max_neighbours, 3), np.nan, np.float32)
    ra, dec, z = np.empty(k), np.empty(k), np.empty(k, np.float32)
    for j, label in enumerate(labels):
        r = render_object(lo + j, int(label), cfg)
        images[j] = r.image
        masks[j] = r.star_mask
        for name in TRUTH_SCALARS:
            truth[name][j] = r.truth[name]
        stars[j, : len(r.star_xy)] = r.star_xy
        neigh[j, : len(r.neighbour_xy)] = r.neighbour_xy
        ra[j], dec[j], z[j] = r.ra, r.dec, r.redshift
    return Chunk(lo, images, masks, truth, stars, neigh, ra, dec, z)


def _chunks(cfg: SynthConfig, labels: np.ndarray, workers: int) -> Iterator[Chunk]:
    """Rendered chunks in row order, from ``workers`` processes (or this one)."""
    tasks = ((lo, labels[lo : lo + cfg.chunk_size]) for lo in range(0, cfg.n, cfg.chunk_size))
    if workers == 1:
        for lo, lab in tasks:
            yield render_chunk(cfg, lo, lab)
        return
    # spawn, not fork: the caller may hold threads (torch, a progress bar) that fork would
    # copy mid-flight; the workers only need numpy and GalSim.
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_die_with_parent, initargs=(os.getpid(),)
    ) as ex:
        # A bounded window of chunks in flight keeps memory flat however large n is,
        # while results are still taken strictly in order.
        window: deque[Future[Chunk]] = deque(
            ex.submit(render_chunk, cfg, lo, lab) for lo, lab in islice(tasks, 3 * workers)
        )
        try:
            while window:
                chunk = window.popleft().result()
                for lo, lab in islice(tasks, 1):
                    window.append(ex.submit(render_chunk, cfg, lo, lab))
                yield chunk
        finally:
            for fut in window:
                fut.cancel()


def _die_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the process that started it dies.

    A kill -9 of `gr synth` gives the pool no chance to shut its workers down, and they kept
    rendering as orphans. Linux delivers SIGTERM on the parent's death once asked
    (prctl PR_SET_PDEATHSIG); elsewhere a thread polls for a changed parent."""
    import ctypes
    import signal
    import sys
    import threading

    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)

    def watch() -> None:
        import time

        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _create_datasets(f, cfg: SynthConfig) -> None:
    import h5py

    n, s = cfg.n, cfg.size
    f.create_dataset("images", (n, s, s, 3), np.uint8, chunks=(1, s, s, 3), compression=cfg.compression)
    f.create_dataset("ans", (n,), np.uint8)
    f.create_dataset("ra", (n,), np.float64)
    f.create_dataset("dec", (n,), np.float64)
    f.create_dataset("redshift", (n,), np.float32)
    f.create_dataset("pxscale", data=np.full(n, cfg.pixel_scale, np.float32))
    f.create_dataset("object_id", data=[f"synth-{i:06d}" for i in range(n)], dtype=h5py.string_dtype("utf-8"))
    t = f.create_group("truth")
    for name, dt in TRUTH_SCALARS.items():
        t.create_dataset(name, (n,), np.dtype(dt))
    for prefix, width in (("star", cfg.max_stars), ("neighbour", cfg.max_neighbours)):
        for col in ("x", "y", "flux"):
            t.create_dataset(f"{prefix}_{col}", (n, width), np.float32, fillvalue=np.nan)
    # mostly zeros: gzip makes it a few hundred bytes per object
    t.create_dataset(
        "star_mask", (n, s, s), np.uint8, chunks=(1, s, s), compression="gzip", compression_opts=1
    )


def _write(f, c: Chunk) -> None:
    sl = slice(c.lo, c.lo + len(c.images))
    f["images"][sl] = c.images
    f["ans"][sl] = c.truth["class"]
    f["ra"][sl] = c.ra
    f["dec"][sl] = c.dec
    f["redshift"][sl] = c.redshift
    t = f["truth"]
    for name in TRUTH_SCALARS:
        t[name][sl] = c.truth[name]
    for prefix, arr in (("star", c.stars), ("neighbour", c.neighbours)):
        for j, col in enumerate(("x", "y", "flux")):
            t[f"{prefix}_{col}"][sl] = arr[:, :, j]
    t["star_mask"][sl] = c.star_mask


def generate_catalog(
    cfg: SynthConfig, out: str | Path, progress: Progress = NULL_PROGRESS, overwrite: bool = False
) -> Path:
    """Render ``cfg.n`` galaxies (balanced over the ten Galaxy10 classes) into ``out``.

    Parent directories are created; an existing file at ``out`` is an error unless
    ``overwrite``, and is then replaced only once the new one is complete. A full disk is a
    :class:`NoSpaceError` and leaves no partial file. Returns ``out`` as a :class:`~pathlib.Path`.
    """
    import h5py

    if not isinstance(cfg, SynthConfig):
        raise ConfigError(f"generate_catalog: expected a SynthConfig, got {type(cfg).__name__}")
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"synth output {out} is a directory; give a file name such as {out / 'synth.h5'}")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: exists; overwrite it, or choose another output file").resolved_by(
            "overwrite"
        )
    check_output_file(out)
    _remove_stale_partials(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    labels = balanced_labels(cfg.n, cfg.seed)
    n_chunks = -(-cfg.n // cfg.chunk_size)
    workers = max(1, min(cfg.resolved_workers(), n_chunks))
    progress.log(
        f"rendering {cfg.n} galaxies of {cfg.size}×{cfg.size} px (seed {cfg.seed}) on {workers} worker(s)"
    )
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
    per_object = _bytes_per_object(cfg)
    check_free_space(out.parent, per_object * cfg.n, out)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(
                generator=GENERATOR,
                version=f"{_package_version()}+synth{FORMAT_VERSION}",
                seed=cfg.seed,
                size=cfg.size,
                pixel_scale=cfg.pixel_scale,
                bands="".join(BANDS),
                class_names=json.dumps(list(GALAXY10_CLASSES)),
                config=json.dumps(cfg.to_dict()),
            )
            _create_datasets(f, cfg)
            with progress.task("rendering", total=cfg.n, unit="gal") as task:
                for chunk in _chunks(cfg, labels, workers):
                    # checked again before every write: HDF5 crashes the process on ENOSPC,
                    # so it must never meet a full disk (another writer may be filling it)
                    check_free_space(out.parent, per_object * (cfg.n - chunk.lo), out)
                    _write(f, chunk)
                    task.advance(len(chunk.images))
        commit_file(tmp, out)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if is_no_space(e):
            raise NoSpaceError(out) from None
        raise
    return out


def _bytes_per_object(cfg: SynthConfig) -> int:
    """An upper bound of the bytes one object adds to the file (compressed images: unknown
    in advance, so only the rest is counted)."""
    s = cfg.size
    image = s * s * 3 if cfg.compression is None else 0
    truth = 8 * len(TRUTH_SCALARS) + 12 * (cfg.max_stars + cfg.max_neighbours)
    return image + s * s // 8 + truth + 64  # + star mask (gzip), ids, ra/dec/z, chunk index


def _remove_stale_partials(out: Path) -> None:
    """Partial files of killed runs (``NAME.partial-PID`` whose process is gone): they are
    never complete, and on a nearly full disk they would keep a rerun from fitting."""
    for p in out.parent.glob(f"{out.name}.partial-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            p.unlink(missing_ok=True)
        except PermissionError:  # alive, someone else's
            pass
