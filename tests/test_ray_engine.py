"""The Ray engine of `gr build-index` on a local 2-CPU Ray: the same index as the local build,
a worker killed mid-run, a failed job resumed, and the one line when Ray is missing.

Ray takes seconds to start on a small machine: one cluster serves the whole module."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from galaxy_retrieval.catalog import HDF5Catalog, open_catalog  # noqa: E402
from galaxy_retrieval.errors import CatalogError, EngineError  # noqa: E402
from galaxy_retrieval.index.build import BuildConfig, build_index  # noqa: E402
from galaxy_retrieval.index.candidates import IndexSpec  # noqa: E402
from galaxy_retrieval.index.ray_engine import RayConfig  # noqa: E402
from galaxy_retrieval.index.verify import verify_index  # noqa: E402
from galaxy_retrieval.search.searcher import GalaxySearcher  # noqa: E402

from .conftest import write_galaxy10_h5  # noqa: E402
from .test_build import _checkpoint  # noqa: E402
from .test_parquet_folder import write_folder  # noqa: E402

# an inverted file with its lists on disk: the Ray build fills its parts in parallel tasks
# Ray's own DataContext warns about its deprecated settings when first created
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

CFG = BuildConfig(shard_rows=8, batch_size=4, index=IndexSpec(kind="IVF2,Flat", nprobe=2, ondisk=True))
RAY = dataclasses.replace(CFG, engine="ray")


class CrashingCatalog(HDF5Catalog):
    """An HDF5 catalog whose reader process dies (``os._exit``, as a killed worker would) when
    it reads ``row``: once if ``marker`` is given (the marker file records that it did), else
    every time."""

    def __init__(self, path: Path, row: int, marker: Path | None) -> None:
        super().__init__(path)
        self.row, self.marker = row, marker

    def _read_range(self, lo: int, hi: int, load_images: bool):
        if load_images and lo <= self.row < hi:
            if self.marker is None:
                os._exit(1)
            if not self.marker.exists():
                self.marker.touch()
                os._exit(1)
        return super()._read_range(lo, hi, load_images)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    from ray import cloudpickle

    # the crashing catalog travels to the actors by value: Ray workers need not import tests/
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    tmp = tmp_path_factory.mktemp("ray")
    cat = write_galaxy10_h5(tmp / "cat.h5", n=30, size=32, seed=4)
    ck = _checkpoint(tmp / "ck")
    with open_catalog(cat) as c:
        build_index(ck, c, tmp / "local", CFG)
    yield {"tmp": tmp, "catalog": cat, "checkpoint": ck, "local": tmp / "local"}
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _same_index(a: Path, b: Path, ondisk: bool = True) -> None:
    """Bitwise: the same rows, ids and vectors, the same shard bytes."""
    ma, mb = (json.loads((p / "manifest.json").read_text()) for p in (a, b))
    assert [(s["file"], s["rows"], s["sha256"]) for s in ma["shards"]] == [
        (s["file"], s["rows"], s["sha256"]) for s in mb["shards"]
    ]
    assert np.array_equal(np.load(a / "vectors.npy"), np.load(b / "vectors.npy"))
    assert (
        ma["vectors"]["segments"] == mb["vectors"]["segments"] and ma["count"] == mb["count"]
    )  # their digests too
    if not ondisk:
        return
    # the inverted lists, merged from parts filled by Ray tasks, are the one-process lists
    assert ma["faiss"]["ondisk"]["sha256"] == mb["faiss"]["ondisk"]["sha256"]
    assert ma["faiss"]["factory"] == mb["faiss"]["factory"] == "IVF2,Flat"


def test_ray_build_equals_the_local_build(cluster) -> None:
    with open_catalog(cluster["catalog"]) as c:
        res = build_index(cluster["checkpoint"], c, cluster["tmp"] / "ray", RAY)
    assert (res.embedded_shards, res.reused_shards) == (4, 0)
    assert res.manifest.faiss["parts"] == 4  # a part per shard, filled by four Ray tasks
    _same_index(cluster["local"], res.path)
    verify_index(res.path)
    qa = GalaxySearcher.open(cluster["local"]).query(object_id="3", k=5)
    qb = GalaxySearcher.open(res.path).query(object_id="3", k=5)
    assert [(h.object_id, h.score) for h in qa] == [(h.object_id, h.score) for h in qb]


def test_a_worker_killed_mid_run_is_retried_without_a_lost_or_repeated_row(cluster) -> None:
    marker = cluster["tmp"] / "crashed-once"
    cat = CrashingCatalog(cluster["catalog"], row=13, marker=marker)
    res = build_index(
        cluster["checkpoint"],
        cat,
        cluster["tmp"] / "killed",
        dataclasses.replace(RAY, ray=RayConfig(workers=2)),
    )
    assert marker.exists()  # the worker did die
    _same_index(cluster["local"], res.path)
    verify_index(res.path)


def test_a_failed_job_keeps_its_shards_and_a_local_rerun_resumes(cluster) -> None:
    out = cluster["tmp"] / "failed"
    cat = CrashingCatalog(cluster["catalog"], row=27, marker=None)  # kills every worker that reads it
    with pytest.raises(EngineError, match="rerun resumes"):
        build_index(
            cluster["checkpoint"],
            cat,
            out,
            dataclasses.replace(RAY, ray=RayConfig(workers=1, max_restarts=1)),
        )
    assert not (out / "manifest.json").exists()
    kept = sorted(p.name for p in (out / "embeddings").glob("part-*.parquet"))
    # the rerun here is a local one: both engines write the same shards, so either resumes the other
    with open_catalog(cluster["catalog"]) as c:
        res = build_index(cluster["checkpoint"], c, out, CFG)
    assert res.reused_shards == len(kept) and res.embedded_shards == 4 - len(kept) >= 1
    _same_index(cluster["local"], out)
    verify_index(out)


def test_an_image_folder_listed_in_a_parquet_table(cluster) -> None:
    root = write_folder(cluster["tmp"] / "folder", n=12)
    cfg = BuildConfig(shard_rows=4, batch_size=2, index=IndexSpec(kind="flat"))
    with open_catalog(root, metadata=root / "paths.parquet") as c:
        local = build_index(cluster["checkpoint"], c, cluster["tmp"] / "folder-local", cfg)
        res = build_index(
            cluster["checkpoint"], c, cluster["tmp"] / "folder-ray", dataclasses.replace(cfg, engine="ray")
        )
    assert res.embedded_shards == 3
    _same_index(local.path, res.path, ondisk=False)
    hits = GalaxySearcher.open(res.path).query(object_id="G4", k=5)
    assert len(hits) == 5 and all(
        h.metadata["filename"] == f"img/g{int(h.object_id[1:]):03d}.png" for h in hits
    )


def test_an_unreadable_image_on_a_worker_is_the_local_error_or_a_skipped_row(cluster) -> None:
    root = write_folder(cluster["tmp"] / "bad-folder", n=8)
    (root / "img" / "g003.png").write_bytes(b"not a png")
    cfg = BuildConfig(shard_rows=4, batch_size=2, index=IndexSpec(kind="flat"), engine="ray")
    with open_catalog(root, metadata=root / "paths.parquet") as c:
        with pytest.raises(CatalogError, match=r"g003\.png: not a readable image") as failed:
            build_index(cluster["checkpoint"], c, cluster["tmp"] / "bad-fail", cfg)
    # A failed job's actor pool can outlive it in a long-lived session and hold both CPUs, so
    # the next job would wait for ever (seen once in a full run). `gr build-index` runs one job
    # per process; here the session is restarted the same way before the next job.
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    with open_catalog(root, metadata=root / "paths.parquet", on_error="skip") as c:
        res = build_index(cluster["checkpoint"], c, cluster["tmp"] / "bad-skip", cfg)
    assert [r for r, _ in res.skipped] == [3] and res.manifest.count == 7 and failed.value is not None
