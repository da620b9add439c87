"""Search: the exact score scan (ground truth, reranking), the FAISS shortlist, the searcher.

Submodules are imported where they are used (``from galaxy_retrieval.search.exact import
exact_knn``); this package imports nothing on purpose, so that importing it stays cheap.
"""
