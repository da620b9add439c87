"""galaxy-retrieval: content-based galaxy image retrieval (GalaxIDNet).

from galaxy_retrieval import GalaxySearcher
hits = GalaxySearcher.open("indexes/demo").query(image="q.png", k=10)
"""

from __future__ import annotations

from typing import Any

from .version import __version__

__all__ = ["GalaxySearcher", "SearchOptions", "open_catalog", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: `import galaxy_retrieval` must stay cheap (no torch/faiss import) for the CLI's
    # quick commands such as `gr info`.
    if name == "GalaxySearcher":
        from .search.searcher import GalaxySearcher

        return GalaxySearcher
    if name == "SearchOptions":
        from .search.options import SearchOptions

        return SearchOptions
    if name == "open_catalog":
        from .catalog import open_catalog

        return open_catalog
    raise AttributeError(f"module 'galaxy_retrieval' has no attribute {name!r}")
