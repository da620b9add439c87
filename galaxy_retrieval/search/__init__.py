"""Search: the exact score scan (ground truth, reranking), the FAISS shortlist, the searcher.

Submodules are imported where they are used (``from galaxy_retrieval.search.exact import
exact_knn``); this package imports only the search settings (:class:`SearchOptions`, no
numpy, torch or FAISS), so that importing it stays cheap.
"""

from .options import SearchOptions

__all__ = ["SearchOptions"]
