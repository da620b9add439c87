"""`gr rerank-benchmark`: recall, Pareto front, JSON schema, index directories, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from galaxy_retrieval.bench import (
    RECALL_AT,
    SCHEMA_VERSION,
    RerankBenchConfig,
    pareto_front,
    parse_index_list,
    recall_at,
    recall_at_tie_aware,
    run_rerank_benchmark,
)
from galaxy_retrieval.cli import app
from galaxy_retrieval.errors import ConfigError
from galaxy_retrieval.index.build import BuildConfig, build_index_from_shards
from galaxy_retrieval.index.candidates import IndexSpec, auto_nlist
from galaxy_retrieval.search.exact import leave_out

from .test_index import _clustered, _write_shards

runner = CliRunner()

N, D, NQ = 400, 16, 12


def _cfg(tmp: Path, **kw) -> RerankBenchConfig:
    base = dict(
        synthetic=N,
        dim=D,
        queries=NQ,
        workdir=tmp / "work",
        k=(10,),
        refine=(1, 40),
        nprobe=(2, 8),
        ef_search=(16,),
        latency_queries=5,
        exact_queries=1,
        train_size=N,
        out_json=tmp / "out.json",
    )
    base.update(kw)
    return RerankBenchConfig(**base)


# --------------------------------------------------------------------------- pure pieces


def test_pareto_front_on_hand_made_points() -> None:
    pts = [
        (0.90, 1.0),  # 0 front
        (0.95, 2.0),  # 1 front
        (0.93, 3.0),  # 2 dominated by 1
        (0.99, 5.0),  # 3 front
        (0.99, 6.0),  # 4 dominated by 3 (same recall, slower)
        (0.80, 0.5),  # 5 front (fastest)
        (0.80, 0.7),  # 6 dominated by 5
        (0.95, 2.0),  # 7 identical to 1: both kept
        (float("nan"), 0.1),  # 8 never on the front
    ]
    assert pareto_front(pts) == [5, 0, 1, 7, 3]
    assert pareto_front([]) == []
    assert pareto_front([(0.5, 1.0)]) == [0]


def test_recall_plain_and_tie_aware() -> None:
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    truth_s = np.array([[0.9, 0.8, 0.7], [0.9, 0.5, 0.5]], np.float32)
    found = np.array([[3, 1, 9], [4, 7, -1]])
    found_s = np.array([[0.7, 0.9, 0.1], [0.9, 0.5, -np.inf]], np.float32)
    assert recall_at(found, truth, 1) == pytest.approx(0.5)  # query 0 top-1 is 3, not 1
    assert recall_at(found, truth, 3) == pytest.approx((2 / 3 + 1 / 3) / 2)
    # row 7 of query 1 scores 0.5, tied with the true 2nd/3rd: counts when ties are allowed
    assert recall_at_tie_aware(found, found_s, truth, truth_s, 3) == pytest.approx((2 / 3 + 2 / 3) / 2)
    with pytest.raises(ValueError):
        recall_at(found, truth, 4)


def test_leave_out_removes_the_query_row_and_keeps_order() -> None:
    s = np.array([[1.0, 0.9, 0.8], [1.0, 0.9, 0.8]], np.float32)
    i = np.array([[5, 7, 2], [3, 4, 1]])
    t = np.stack([s, s * 2, s * 3], axis=-1)
    i2, s2, t2 = leave_out(np.array([7, 9]), i, s, t, k=2)
    np.testing.assert_array_equal(i2, [[5, 2], [3, 4]])
    np.testing.assert_array_equal(s2, np.array([[1.0, 0.8], [1.0, 0.9]], np.float32))
    np.testing.assert_array_equal(t2[..., 1], s2 * 2)  # the terms travel with their rows


def test_parse_index_list() -> None:
    assert parse_index_list("flat,hnsw,ivf-pq") == ("flat", "hnsw", "ivf-pq")
    assert parse_index_list("PCA128,HNSW32,Flat") == ("PCA128,HNSW32,Flat",)
    assert parse_index_list('flat,hnsw,"PCA128,HNSW32,Flat"') == ("flat", "hnsw", "PCA128,HNSW32,Flat")
    assert parse_index_list("flat;PCA64,IVF1024,SQ8") == ("flat", "PCA64,IVF1024,SQ8")
    assert parse_index_list(["flat", "PCA64,HNSW32", "flat"]) == ("flat", "PCA64,HNSW32")
    with pytest.raises(ConfigError, match="empty entry"):
        parse_index_list("flat;;hnsw")


def test_auto_nlist_grows_as_four_sqrt_n() -> None:
    assert [auto_nlist(n) for n in (10_000, 100_000, 1_000_000, 100_000_000)] == [256, 1024, 4096, 32768]
    assert auto_nlist(400) == 8 and auto_nlist(1) == 1  # never more lists than n/39


def test_config_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        RerankBenchConfig(synthetic=10, index=tmp_path)
    with pytest.raises(ConfigError, match="exactly one"):
        RerankBenchConfig()
    with pytest.raises(ConfigError, match="refine must be comma-separated"):
        RerankBenchConfig(synthetic=10, refine="1,x")
    with pytest.raises(ConfigError, match="dtype must be float32 or float16"):
        RerankBenchConfig(synthetic=10, dtype="int8")
    with pytest.raises(ConfigError, match="could not parse index string"):
        run_rerank_benchmark(_cfg(tmp_path, indexes=("NOPE12",)))
    assert not (tmp_path / "work").exists()  # rejected before generating anything


# --------------------------------------------------------------------------- runs


def test_exact_flat_shortlist_has_recall_one_and_json_schema(tmp_path: Path) -> None:
    # refine 40 × k 10 = the whole catalog: the rerank is then an exact scan.
    res = run_rerank_benchmark(_cfg(tmp_path, indexes=("flat", "PCA8,IVF{nlist},Flat"), k=(10, 100)))
    assert [b.factory for b in res.builds] == ["Flat", f"PCA8,IVF{auto_nlist(N)},Flat"]
    full = [p for p in res.points if p.factory == "Flat" and p.shortlist == N]
    assert full and all(p.recall[r] == 1.0 and p.recall_ties[r] == 1.0 for p in full for r in p.recall)
    assert {p.nprobe for p in res.points if "IVF" in p.factory} == {2, 8}
    assert all(p.nprobe is None and p.ef_search is None for p in res.points if p.factory == "Flat")
    front = [p for p in res.points if p.pareto]
    assert front and sorted(front, key=lambda p: p.p50_ms) == sorted(res.pareto, key=lambda p: p.p50_ms)
    # The marks agree with dominance checked by brute force on (recall@10, p50): a point is on
    # the front unless another is at least as good on both and better on one.
    pts = [(p.recall[10], p.p50_ms) for p in res.points]

    def dominated(i: int) -> bool:
        return any(
            r >= pts[i][0] and t <= pts[i][1] and (r, t) != pts[i] for j, (r, t) in enumerate(pts) if j != i
        )

    marked = {i for i, p in enumerate(res.points) if p.pareto}
    assert all(not dominated(i) for i in marked)
    assert all(
        dominated(i) or any(pts[j] == pts[i] for j in marked) for i in range(len(pts)) if i not in marked
    )
    best = res.best(1.0)
    assert best is not None and best.recall[10] == 1.0

    d = json.loads((tmp_path / "out.json").read_text())
    assert res.json_path == tmp_path / "out.json"
    assert d["benchmark"] == "rerank" and d["schema_version"] == SCHEMA_VERSION
    for key in (
        "created",
        "commit",
        "machine",
        "parameters",
        "dataset",
        "ground_truth",
        "exact",
        "indexes",
        "results",
        "pareto",
    ):
        assert key in d, key
    assert {"cpu", "cpu_count", "load_average", "threads"} <= set(d["machine"])
    assert d["parameters"]["synthetic"] == N and d["parameters"]["refine"] == [1, 40]
    assert d["dataset"]["source"] == "synthetic" and d["dataset"]["queries"] == NQ
    assert {"single_query_s", "read_s", "scan_over_read", "batch_s_per_query"} <= set(d["exact"])
    assert {"factory", "build_s", "train_s", "add_s", "index_bytes_per_vector", "reused"} <= set(
        d["indexes"][0]
    )
    row_fields = {
        "index",
        "factory",
        "k",
        "refine",
        "shortlist",
        "candidates_mean",
        "nprobe",
        "ef_search",
        "recall",
        "recall_ties",
        "p50_ms",
        "p99_ms",
        "search_p50_ms",
        "rerank_p50_ms",
        "qps_single",
        "qps_batch",
        "speedup_vs_exact",
        "speedup_vs_read",
        "ram_bytes_per_vector",
        "disk_bytes_per_vector",
        "pareto",
    }
    assert len(d["results"]) == len(res.points) == 2 * 2 + 2 * 2 * 2
    for row in d["results"]:
        assert row_fields <= set(row)
        assert set(row["recall"]) == {str(r) for r in RECALL_AT if r <= row["k"]}
    assert d["pareto"] == res.pareto_indices and [res.points[i] for i in res.pareto_indices] == res.pareto
    assert all(d["results"][i]["pareto"] for i in d["pareto"])

    # A second run reuses the catalog, the ground truth and the built indexes.
    # Cold: the catalog is read from disk, so only the index counts as RAM.
    again = run_rerank_benchmark(_cfg(tmp_path, indexes=("flat",), k=(100,), write_json=False, cold=True))
    assert again.json_path is None and again.ground_truth["reused"] and all(b.reused for b in again.builds)
    assert again.dataset["cold"] and all(
        p.ram_bytes_per_vector == again.builds[0].index_bytes_per_vector for p in again.points
    )


def test_tiny_index_directory_excludes_each_query_itself(tmp_path: Path) -> None:
    x = _clustered(300, D)
    built = build_index_from_shards(
        _write_shards(tmp_path / "shards", x, per=100),
        tmp_path / "idx",
        BuildConfig(index=IndexSpec(kind="hnsw")),
    )
    cfg = _cfg(
        tmp_path,
        synthetic=None,
        index=built.path,
        indexes=("existing", "flat"),
        refine=(1, 40),
        ef_search=(8, 512),
    )
    res = run_rerank_benchmark(cfg)
    assert res.dataset["source"] == "index" and "excluded" in res.dataset["query_kind"]
    assert [b.name for b in res.builds] == ["existing", "flat"] and res.builds[0].factory.startswith("HNSW")
    # Shortlist = whole catalog: exact, and the query's own row (score 1, first) was left out.
    full = [p for p in res.points if p.candidates_mean == 300]
    assert {p.index for p in full} == {"existing", "flat"} and all(p.recall[10] == 1.0 for p in full)
    # HNSW returns about efSearch candidates however many are asked for.
    assert [p.candidates_mean for p in res.points if p.ef_search == 8 and p.refine == 40][0] < 300
    # Without the exclusion, every query's top-1 would be itself; the ground truth agrees here.
    from galaxy_retrieval.bench import ground_truth, index_data

    data = index_data(built.path, NQ, seed=0)
    gt = ground_truth(data, 10, tmp_path / "work")
    assert not (gt.ids == data.exclude[:, None]).any()


# --------------------------------------------------------------------------- CLI


def test_cli_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "cli.json"
    r = runner.invoke(
        app,
        [
            "rerank-benchmark",
            "--synthetic",
            str(N),
            "--dim",
            str(D),
            "--queries",
            str(NQ),
            "--workdir",
            str(tmp_path / "w"),
            "--indexes",
            "flat;PCA8,HNSW16",
            "--refine",
            "1,40",
            "--ef-search",
            "16",
            "--latency-queries",
            "4",
            "--exact-queries",
            "1",
            "--train-size",
            str(N),
            "--out-json",
            str(out),
        ],
        env={"COLUMNS": "200"},
    )
    assert r.exit_code == 0, r.output
    assert (
        "operating points" in r.output
        and "PCA8,HNSW16" in r.output
        and "R@10" in r.output
        and "★" in r.output
    )
    assert "exact scan" in r.output and f"wrote {out}" in r.output
    assert json.loads(out.read_text())["benchmark"] == "rerank"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--index", "{tmp}/missing"], "missing: no such index directory"),
        (
            ["--index", "{tmp}", "--synthetic", "100"],
            "give either an index directory or a synthetic catalog size (exactly one of them) (--index or --synthetic)",
        ),
        (
            ["--synthetic", "100", "--dim", "16", "--indexes", "PCA7,Bogus"],
            "FAISS cannot build 'PCA7,Bogus' for dimension 16",
        ),
        (
            ["--synthetic", "100", "--refine", "two"],
            "refine must be comma-separated integers (e.g. 1,2,5), got 'two' (--refine)",
        ),
    ],
)
def test_cli_bad_input_is_a_one_line_error(tmp_path: Path, args: list[str], message: str) -> None:
    argv = ["rerank-benchmark", "--workdir", str(tmp_path / "w"), *(a.format(tmp=tmp_path) for a in args)]
    r = runner.invoke(app, argv, env={"COLUMNS": "300"})
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert r.output.strip().count("\n") == 0
