"""The embedding pass of `gr build-index` on Ray Data (``BuildConfig(engine="ray")``).

Ray Data gets the shards still to embed as a dataset of row ranges (one row per shard:
``shard``, ``lo``, ``hi``) and maps them with ``map_batches`` over a fixed pool of embedder
actors — one GPU per actor when the cluster has GPUs, CPUs otherwise. Each actor holds the
model and the catalog (opened once per actor: an HDF5 file reads its chunk of rows, an image
folder its slice of the file list) and runs :func:`~.embed.embed_shard`, the step the local
loop runs: the same rows in the same batches, written to the same ``part-NNNNN.parquet`` with
the same row-range and model metadata. So the manifest, verification and resume work
unchanged, and a shard already complete on disk is never handed to Ray.

Why a shard per map call rather than rows streaming to a writer: a shard is written by one
actor, atomically (temp file + rename), so an actor killed mid-shard leaves only a temp file;
Ray restarts the actor and retries the range (Ray Data's actor pools retry lost tasks), and the
retry writes the same file. No row can be written twice or lost, and a job that fails outright
keeps every finished shard for the rerun. On a cluster the output directory and the checkpoint
must be on a file system every node sees; the package must be installed on every node.

The engine only says what to compute; Ray schedules, retries and scales.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, EngineError, GalaxyRetrievalError
from ..progress import NULL_PROGRESS, Progress
from .candidates import check_index_spec
from .candidates.ondisk import build_ondisk_index, fill_part
from .embed import embed_shard
from .shards import shard_name

__all__ = [
    "RayConfig",
    "require_ray",
    "connect",
    "session",
    "embed_shards_ray",
    "build_ondisk_ray",
    "ENGINES",
    "RAY_EXTRA",
]

ENGINES = ("local", "ray")
RAY_EXTRA = "distributed"


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide the Ray engine runs.

    ``address``: None (or ``"local"``) starts a local Ray on this machine (or joins the
    cluster that the ``RAY_ADDRESS`` environment variable names); ``"auto"`` joins the cluster this node
    belongs to (``ray start --head`` / ``ray start --address``); ``"ray://HOST:10001"``
    connects through Ray Client. ``workers``: embedder actors (None: one per GPU of the
    cluster, else one per ``cpus_per_worker`` CPUs). ``gpus_per_worker``: None gives each
    actor one GPU when the cluster has any, else none. ``max_restarts``: how often an actor
    that died (killed, out of memory, node lost) is restarted, its range retried, before
    the job fails — finite, so a row that crashes every worker fails the job instead of
    looping; the finished shards are kept either way."""

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    max_restarts: int = 4

    def __post_init__(self) -> None:
        if self.address is not None and not (
            self.address in ("auto", "local") or self.address.startswith("ray://") or ":" in self.address
        ):
            raise ConfigError(
                f"ray address {self.address!r}: expected auto, local, ray://HOST:PORT or HOST:PORT"
            ).resolved_by("ray_address")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"ray workers must be ≥ 1, got {self.workers}")
        if self.cpus_per_worker <= 0 or (self.gpus_per_worker is not None and self.gpus_per_worker < 0):
            raise ConfigError(
                f"cpus_per_worker ({self.cpus_per_worker}) must be > 0 and gpus_per_worker ({self.gpus_per_worker}) ≥ 0"
            )
        if self.max_restarts < 0:
            raise ConfigError(f"max_restarts must be ≥ 0, got {self.max_restarts}")

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "ray config") -> RayConfig:
        known = {"address", "workers", "cpus_per_worker", "gpus_per_worker", "max_restarts"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        try:
            return cls(**d)
        except TypeError as e:
            raise ConfigError(f"{where}: {e}") from None


def require_ray() -> Any:
    """The ``ray`` module, or an error saying which extra installs it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the extra is ray[data]; plain ray lacks it
    except ImportError:
        raise EngineError(
            f"the Ray engine needs Ray Data, which is not installed; install the '{RAY_EXTRA}' extra: "
            f"pip install 'galaxy-retrieval[{RAY_EXTRA}]'"
        ) from None
    return ray


def connect(rc: RayConfig) -> bool:
    """Join (or start) the Ray cluster ``rc`` names; True if this call started the connection
    (and so should end it). A session already connected (a notebook, a test) is used as is."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=None if rc.address == "local" else rc.address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = rc.address or "a local Ray"
        raise EngineError(
            f"cannot connect to Ray at {where} ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ).resolved_by("ray_address") from None
    return True


class _ShardEmbedder:
    """One Ray actor: the model and the catalog, loaded once; each call embeds whole shards."""

    def __init__(
        self,
        checkpoint: str,
        catalog: Any,
        shard_dir: str,
        batch_size: int,
        dtype: str,
        device: str,
        precision: str = "fp32",
    ) -> None:
        import ray

        from ..model import load_checkpoint

        # Ray resolves object refs given as arguments, but not inside containers
        self.catalog = ray.get(catalog) if isinstance(catalog, ray.ObjectRef) else catalog
        self.embedder = load_checkpoint(checkpoint, device=device, precision=precision)
        self.shard_dir = Path(shard_dir)
        self.batch_size = batch_size
        self.dtype = dtype

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        skipped = []
        for i, lo, hi in zip(batch["shard"], batch["lo"], batch["hi"]):
            s = embed_shard(
                self.catalog,
                self.embedder,
                self.shard_dir / shard_name(int(i)),
                int(lo),
                int(hi),
                self.batch_size,
                self.dtype,
            )
            skipped.append(json.dumps(s))
        return {
            "shard": batch["shard"],
            "lo": batch["lo"],
            "hi": batch["hi"],
            "skipped": np.array(skipped, dtype=object),
        }


def _shape(ray: Any, rc: RayConfig, progress: Progress) -> tuple[float, float, int]:
    """(CPUs per actor, GPUs per actor, actors) on the cluster Ray is connected to.

    A request larger than any node holds would wait forever for a node that never comes, so
    it is cut to the largest node (e.g. the scale-out pipeline's 4 CPUs on a 2-CPU laptop)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    big_cpu = max((r.get("CPU", 0.0) for r in nodes), default=1.0) or 1.0
    big_gpu = max((r.get("GPU", 0.0) for r in nodes), default=0.0)
    cpus = rc.cpus_per_worker
    if cpus > big_cpu:
        progress.log(
            f"{cpus:g} CPUs per worker asked, the largest Ray node has {big_cpu:g}: using {big_cpu:g}"
        )
        cpus = big_cpu
    gpus = rc.gpus_per_worker if rc.gpus_per_worker is not None else (1.0 if big_gpu > 0 else 0.0)
    if gpus > big_gpu:
        raise EngineError(f"{gpus:g} GPUs per worker asked, but the largest Ray node has {big_gpu:g}")
    res = ray.cluster_resources()
    if rc.workers is not None:
        workers = rc.workers
    elif gpus > 0:
        workers = max(1, int(res.get("GPU", 0) // gpus))
    else:
        workers = max(1, int(res.get("CPU", 1) // cpus))
    return cpus, gpus, workers


def _cause(e: BaseException) -> GalaxyRetrievalError | None:
    """The project error a Ray task raised, under Ray's wrappers (RayTaskError, UserCodeException)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        # Ray re-raises a task's error as a subclass of both RayTaskError and its type; the
        # error itself, with its one-line message, is the one from our own modules
        if isinstance(x, GalaxyRetrievalError) and type(x).__module__.startswith("galaxy_retrieval"):
            return x
        stack += [x.__context__, x.__cause__, getattr(x, "cause", None)]
    return None


def embed_shards_ray(
    checkpoint: str | Path,
    catalog: Any,
    shard_dir: Path,
    pending: Sequence[tuple[int, int, int]],
    cfg: Any,
    embedder: Any,
    progress: Progress = NULL_PROGRESS,
    done: int = 0,
) -> list[tuple[int, str]]:
    """Embed the ``pending`` shards ``(index, lo, hi)`` on Ray; returns the skipped rows.

    Called by :func:`~.build.build_index` with the directory lock held; ``embedder`` is the
    driver's copy of the model (only its identity is used here: the actors load their own)."""
    rc: RayConfig = cfg.ray or RayConfig()
    ray = require_ray()
    n = done + sum(hi - lo for _, lo, hi in pending)
    if not pending:
        with progress.task("embedding", total=n, unit="img") as task:
            task.advance(done)
        return []
    started = connect(rc)
    try:
        import ray.data as rd

        ctx = rd.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours is drawn from the finished shards
        # an actor's CatalogError (an unreadable image) reaches the driver as itself, not
        # wrapped in a UserCodeException that drops it
        ctx.raise_original_map_exception = True
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        cpus, gpus, workers = _shape(ray, rc, progress)
        workers = min(workers, len(pending))
        actor_kwargs = {
            "checkpoint": str(Path(embedder.path or checkpoint).resolve()),
            "catalog": ray.put(catalog),
            "shard_dir": str(Path(shard_dir).resolve()),
            "batch_size": cfg.batch_size,
            "dtype": cfg.dtype,
            "device": "cuda" if gpus > 0 else "cpu",
            # the driver's, resolved once: the manifest records it, and the local engine embeds so too
            "precision": embedder.precision,
        }
        ds = _embedding_dataset(rd, pending, actor_kwargs, rc, cpus, gpus, workers)
        skipped: list[tuple[int, str]] = []
        with progress.task("embedding", total=n, unit="img") as task:
            if done:
                task.advance(done)
            failure: BaseException | None = None
            try:
                for row in ds.iter_rows():
                    skipped.extend((int(r), str(why)) for r, why in json.loads(row["skipped"]))
                    task.advance(int(row["hi"]) - int(row["lo"]))
            except Exception as e:  # Ray wraps what the actors raised
                cause = _cause(e)
                if cause is None:
                    first = (str(e).strip().splitlines() or [type(e).__name__])[-1]
                    cause = EngineError(
                        f"the Ray embedding job failed ({type(e).__name__}: {first[:300]}); the shards it finished are kept, and a rerun resumes from them"
                    )
                failure = cause
            if failure is not None:
                # raised here, not in the except block: the error must not carry Ray's traceback
                # (as its context), whose frames keep the failed job's executor and so its actors,
                # with their CPUs/GPUs, alive; a next job in this session would wait for them forever
                del ds
                gc.collect()
                raise failure
        return sorted(skipped)
    finally:
        if started:
            ray.shutdown()


def _embedding_dataset(
    rd: Any,
    pending: Sequence[tuple[int, int, int]],
    actor_kwargs: dict[str, Any],
    rc: RayConfig,
    cpus: float,
    gpus: float,
    workers: int,
) -> Any:
    """The lazy Ray dataset that embeds the ``pending`` shards on a pool of ``workers`` actors."""
    ranges = [{"shard": i, "lo": lo, "hi": hi} for i, lo, hi in pending]
    ds = rd.from_items(ranges, override_num_blocks=len(ranges))
    with warnings.catch_warnings():
        # no other way to bound actor restarts in Ray 2.60 (pinned); the replacement is unannounced
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        return ds.map_batches(
            _ShardEmbedder,
            batch_size=1,  # a shard per call: the unit of retry and of resume
            compute=rd.ActorPoolStrategy(size=workers),
            num_cpus=cpus,
            num_gpus=gpus,
            fn_constructor_kwargs=actor_kwargs,
            # Ray Data's default is to restart and retry forever; a row that kills every
            # worker must fail the job instead
            ray_remote_args_fn=functools.partial(
                dict, max_restarts=rc.max_restarts, max_task_retries=rc.max_restarts
            ),
        )


@contextmanager
def session(cfg: Any) -> Iterator[None]:
    """One Ray connection for a whole build (embedding and index parts) when ``cfg.engine``
    is ``"ray"``; nothing otherwise."""
    if getattr(cfg, "engine", "local") != "ray":
        yield
        return
    ray = require_ray()
    started = connect(cfg.ray or RayConfig())
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _fill(trained: str, vectors_file: str, lo: int, hi: int, part: str, metric: str, chunk: int) -> str:
    """One Ray task: positions [lo, hi) of the vector file into a copy of the trained index."""
    vectors = np.load(vectors_file, mmap_mode="r")
    return str(
        fill_part(
            trained, vectors[lo:hi], np.arange(lo, hi, dtype=np.int64), part, metric=metric, chunk=chunk
        )
    )


def build_ondisk_ray(
    vectors: np.ndarray, cfg: Any, out: Path, progress: Progress = NULL_PROGRESS
) -> dict[str, Any]:
    """The on-disk IVF index (:mod:`.candidates.ondisk`) with its parts filled by parallel Ray tasks.

    Trained once on the driver, on the same sample as the one-process build; each part of
    about a shard's rows is added to a copy of the trained index by a task that memory-maps
    the vector file; the parts are merged in order, so the result is the one-process index.
    ``vectors`` must be a memmap of a file every node sees (the index's ``vectors.npy``)."""
    ray = require_ray()
    rc: RayConfig = cfg.ray or RayConfig()
    spec = cfg.index
    n, dim = vectors.shape
    check_index_spec(spec, n, dim)
    vectors_file = str(Path(vectors.filename).resolve())  # type: ignore[attr-defined]
    # about a shard per part, but no more than a few hundred parts to merge
    part_rows = max(cfg.shard_rows, -(-n // 256))

    def fill_parts(trained: Path, ranges: list[tuple[int, int]], folder: Path) -> list[Path]:
        cpus, _, _ = _shape(ray, rc, NULL_PROGRESS)
        task = ray.remote(num_cpus=cpus, max_retries=rc.max_restarts)(_fill)
        refs = [
            task.remote(
                str(trained.resolve()),
                vectors_file,
                lo,
                hi,
                str((folder / f"part-{i:05d}.index").resolve()),
                spec.metric,
                spec.add_chunk,
            )
            for i, (lo, hi) in enumerate(ranges)
        ]
        size = {r: hi - lo for r, (lo, hi) in zip(refs, ranges)}
        with progress.task("adding to index", total=n, unit="vec") as t:
            waiting = list(refs)
            try:
                while waiting:
                    ready, waiting = ray.wait(waiting, num_returns=1)
                    ray.get(ready)  # raises what the task raised
                    t.advance(size[ready[0]])
                return [Path(p) for p in ray.get(refs)]
            except Exception as e:
                cause = _cause(e)
                if cause is not None:
                    raise cause from None
                first = (str(e).strip().splitlines() or [type(e).__name__])[-1]
                raise EngineError(
                    f"the Ray index job failed ({type(e).__name__}: {first[:300]}); the embeddings are kept, and a rerun builds the index again"
                ) from None

    return build_ondisk_index(vectors, spec, out, progress, fill_parts=fill_parts, part_rows=part_rows)
