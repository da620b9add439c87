"""The FAISS candidate index: a fast, approximate shortlist that the exact reranker orders.

The shortlist metric is L2 on the raw embeddings: two of the score's three terms are
decreasing functions of distance (1/(1+L2), 1/(1+L3)), so the L2 neighbours are the natural
candidates; ``metric="cosine"`` (inner product on normalised vectors) is the alternative when
the cosine weight dominates. Recall against the exact score is what `gr rerank-benchmark`
measures.

One job per module: :mod:`.spec` (what to build: :class:`IndexSpec`, ``auto``'s factory choice,
the number of lists), :mod:`.factory` (factory strings checked early), :mod:`.training` (seeded
training sample and k-means), :mod:`.build` (build, add, write, load), :mod:`.ondisk` (inverted
lists in a memory-mapped file), :mod:`.params` (query-time parameters, the vectors as the index
sees them, list balance), :mod:`.record` (the manifest's entry), :mod:`.gpu`.
"""

from .build import add_to_faiss_index, build_faiss_index, load_faiss_index, write_faiss_index
from .factory import check_factory, check_index_spec
from .gpu import faiss_gpu_count
from .params import ivf_balance, search_params, set_search_params, shortlist_vectors
from .spec import IndexSpec, auto_nlist, resolve_factory
from .training import training_sample

__all__ = [
    "IndexSpec",
    "resolve_factory",
    "auto_nlist",
    "check_factory",
    "check_index_spec",
    "search_params",
    "build_faiss_index",
    "load_faiss_index",
    "set_search_params",
    "shortlist_vectors",
    "faiss_gpu_count",
    "add_to_faiss_index",
    "write_faiss_index",
    "ivf_balance",
    "training_sample",
]
