"""Benchmarks as library code: `gr rerank-benchmark` and the machine/commit record.

from galaxy_retrieval.bench import RerankBenchConfig, run_rerank_benchmark
res = run_rerank_benchmark(RerankBenchConfig(synthetic=100_000, queries=200))
res.best(min_recall=0.99)        # the fastest operating point with recall@10 ≥ 0.99
"""

from __future__ import annotations

from ..metrics import pareto_front, recall_at, recall_at_tie_aware
from .baseline import ExactBaseline, GroundTruth, ground_truth, measure_exact
from .config import DEFAULT_INDEXES, RerankBenchConfig, default_result_path, parse_index_list, parse_int_list
from .datasets import QUERY_RESERVE, BenchData, SyntheticSpec, index_data, synthetic_data
from .indexes import IndexBuild
from .machine import git_commit, machine_info
from .rerank import RECALL_AT, SCHEMA_VERSION, OperatingPoint, RerankBenchResult, run_rerank_benchmark

__all__ = [
    "RerankBenchConfig",
    "RerankBenchResult",
    "IndexBuild",
    "OperatingPoint",
    "run_rerank_benchmark",
    "parse_index_list",
    "parse_int_list",
    "default_result_path",
    "DEFAULT_INDEXES",
    "RECALL_AT",
    "SCHEMA_VERSION",
    "ExactBaseline",
    "GroundTruth",
    "ground_truth",
    "measure_exact",
    "BenchData",
    "SyntheticSpec",
    "QUERY_RESERVE",
    "synthetic_data",
    "index_data",
    "pareto_front",
    "recall_at",
    "recall_at_tie_aware",
    "machine_info",
    "git_commit",
]
