"""Start uvicorn on a :class:`ServeConfig`."""

from __future__ import annotations

import os

from ..errors import ConfigError
from .app import ServeConfig, create_app

__all__ = ["run_server"]


def run_server(cfg: ServeConfig, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info") -> None:
    """Serve until interrupted. ``workers`` > 1 runs that many processes, each with its own
    searcher and model (memory × workers), sharing the port."""
    import uvicorn

    from ..index.manifest import read_manifest

    if workers < 1:
        raise ConfigError(f"workers={workers} must be ≥ 1")
    if not 0 < port < 65536:
        raise ConfigError(f"port {port} must be in 1–65535")
    read_manifest(cfg.index)  # a wrong --index fails here, in one line, not in a worker
    if workers == 1:
        uvicorn.run(create_app(cfg), host=host, port=port, log_level=log_level)
        return
    # worker processes import the app by name and rebuild the config from the environment
    os.environ.update(cfg.to_env())
    uvicorn.run("galaxy_retrieval.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers, log_level=log_level)
