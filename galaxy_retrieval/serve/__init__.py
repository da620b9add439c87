"""`gr serve`: the search API and the web page over one index (FastAPI + uvicorn, the
``serve`` extra).

    from galaxy_retrieval.serve import ServeConfig, create_app, run_server
    run_server(ServeConfig(index="indexes/demo"), port=8000)
"""

from __future__ import annotations

from .app import app_from_env, create_app
from .config import ServeConfig
from .run import bind_banner, run_server

__all__ = ["ServeConfig", "create_app", "app_from_env", "run_server", "bind_banner"]
