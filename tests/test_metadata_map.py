"""The searcher's metadata table is memory-mapped from the cache, not held on the heap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from galaxy_retrieval.index.metadata_map import open_metadata_table
from galaxy_retrieval.index.shards import read_metadata_table, write_shard


def _shards(tmp_path: Path, n: int = 3, rows: int = 20_000) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        lo = i * rows
        ids = [f"obj-{j:07d}" for j in range(lo, lo + rows)]
        meta = {"label": (np.arange(rows) % 10).tolist(), "ra": rng.uniform(0, 360, rows).tolist()}
        p = tmp_path / f"part-{i:05d}.parquet"
        write_shard(
            p,
            ids,
            np.arange(lo, lo + rows),
            rng.normal(size=(rows, 4)).astype(np.float32),
            meta,
            dtype="float32",
        )
        paths.append(p)
    return paths


def test_the_table_is_mapped_from_a_file_not_allocated(tmp_path, monkeypatch):
    monkeypatch.setenv("GALAXY_RETRIEVAL_CACHE", str(tmp_path / "cache"))
    paths = _shards(tmp_path)
    keys = [f"{p.name}:sha-{i}" for i, p in enumerate(paths)]
    want = read_metadata_table(paths)
    first = open_metadata_table(paths, keys, 60_000)  # writes the cache file, then maps it
    assert first.equals(want.combine_chunks())
    del first
    before = pa.total_allocated_bytes()
    t = open_metadata_table(paths, keys, 60_000)
    # the buffers are pages of the file: Arrow's heap grew by a few bytes, not by the table
    assert pa.total_allocated_bytes() - before < 10_000 < want.nbytes
    assert t.equals(want.combine_chunks())
    rows = t.column("row").chunk(0).to_numpy()  # zero-copy view of the map
    assert rows.base is not None and rows[12_345] == 12_345
    assert len(list((tmp_path / "cache" / "metadata").glob("*.arrow"))) == 1


def test_other_shards_another_file_and_a_damaged_file_is_made_again(tmp_path, monkeypatch):
    monkeypatch.setenv("GALAXY_RETRIEVAL_CACHE", str(tmp_path / "cache"))
    paths = _shards(tmp_path, n=2, rows=100)
    open_metadata_table(paths, ["a", "b"], 200)
    open_metadata_table(paths[:1], ["a"], 100)
    files = sorted((tmp_path / "cache" / "metadata").glob("*.arrow"))
    assert len(files) == 2
    for f in files:
        f.write_bytes(b"garbage")
    assert open_metadata_table(paths, ["a", "b"], 200).num_rows == 200  # read from the shards
    assert open_metadata_table(paths, ["a", "b"], 200).column("row").to_pylist() == list(range(200))


def test_no_cache_reads_the_shards_into_ram(tmp_path, monkeypatch):
    monkeypatch.setenv("GALAXY_RETRIEVAL_CACHE", "off")
    paths = _shards(tmp_path, n=1, rows=50)
    assert open_metadata_table(paths, ["a"], 50).num_rows == 50
    assert not (tmp_path / "cache").exists()


def _files(*dirs: Path) -> dict[Path, tuple[int, int]]:
    """Every file under ``dirs`` with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for d in dirs for p in d.rglob("*") if p.is_file()}


def _answers(path: Path) -> list[tuple[str, float]]:
    from galaxy_retrieval import GalaxySearcher

    s = GalaxySearcher.open(path)
    hits = s.query(object_id="obj-0000005", k=5, where="label < 8")
    return [(h.object_id, round(h.score, 6)) for h in hits] + [(str(len(s)), float(s.table.num_rows))]


def test_every_write_primes_the_cache_so_opening_writes_nothing(tmp_path, monkeypatch):
    """Build, add, delete, compact and reindex write the cache entry of the version they
    publish; opening it then only maps the file. An index without its entry (from elsewhere,
    or made before) still opens, writing the entry then, and answers the same."""
    from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards
    from galaxy_retrieval.index.candidates import IndexSpec
    from galaxy_retrieval.index.writes import append_vectors, compact_index, delete_objects, reindex

    cache = tmp_path / "cache"
    monkeypatch.setenv("GALAXY_RETRIEVAL_CACHE", str(cache))
    src = tmp_path / "src"
    src.mkdir()
    out = tmp_path / "idx"
    _shards(src, n=2, rows=300)
    build_index_from_shards(src, out, BuildConfig(index=IndexSpec(kind="flat")))
    rng = np.random.default_rng(1)

    writes = [
        lambda: None,  # the build
        lambda: append_vectors(
            out,
            [f"new-{i}" for i in range(40)],
            rng.normal(size=(40, 4)).astype(np.float32),
            {"label": [i % 10 for i in range(40)]},
        ),
        lambda: delete_objects(out, ["obj-0000007", "obj-0000150", "new-3"]),
        lambda: compact_index(out),
        lambda: reindex(out),
    ]
    for write in writes:
        write()
        before = _files(out, cache)
        got = _answers(out)
        assert _files(out, cache) == before  # nothing written, nothing touched
        monkeypatch.setenv("GALAXY_RETRIEVAL_CACHE", "off")  # the table read into RAM instead
        assert _answers(out) == got
        monkeypatch.setenv("GALAXY_RETRIEVAL_CACHE", str(cache))

    # an index whose entry is missing: opened all the same, the entry written then
    for f in cache.glob("metadata/*.arrow"):
        f.unlink()
    assert _answers(out) == got
    assert len(list(cache.glob("metadata/*.arrow"))) == 1
