"""The FastAPI app behind `gr serve`: one :class:`GalaxySearcher`, a JSON API under /api/ and
the page at /. Every answer comes from a library call; the routes (search_routes.py,
object_routes.py) only translate HTTP to those calls and their errors to statuses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from ..errors import GalaxyRetrievalError
from . import object_routes, search_routes
from .config import ServeConfig
from .guard import RequestGuard
from .state import AppState

__all__ = ["ServeConfig", "create_app", "app_from_env"]

STATIC = Path(__file__).parent / "static"
# room for a multipart form's boundaries and small fields around an upload of the full limit
FORM_OVERHEAD = 64 * 1024


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's default answer quotes the input back; say where and what, not what was sent
    parts = [
        f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg', 'invalid')}"
        for e in exc.errors()
    ]
    return JSONResponse({"detail": "; ".join(parts)[:1000]}, status_code=422)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # a bug answers as JSON with 500 and the server keeps serving
    return JSONResponse(
        {"detail": f"internal error ({type(exc).__name__}); the server log has the traceback"},
        status_code=500,
    )


def _page() -> FileResponse:
    return FileResponse(STATIC / "index.html")


def create_app(cfg: ServeConfig) -> FastAPI:
    """The app for one index. The searcher (and its model) is opened once, at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Iterator[None]:  # type: ignore[misc]
        app.state.gr = AppState(cfg)
        # the first query would otherwise pay for loading the model and compiling kernels
        try:
            app.state.gr.searcher.warmup(model=True)
        except GalaxyRetrievalError:  # an index without a model copy still serves id searches
            app.state.gr.searcher.warmup(model=False)
        yield

    # /docs and /redoc with their scripts served from the package (fastapi-offline), not a
    # CDN: the API page renders on a machine without the internet, as the search page does
    app = FastAPIOffline(
        title="galaxy-retrieval",
        summary="Search a galaxy image index by object id, sky position, image or embedding.",
        version="1",
        lifespan=lifespan,
    )
    # the key, then the body's size, before any route reads a byte (guard.py); CORS outside
    # it, so that a browser's preflight (which never carries the key) is answered
    app.add_middleware(RequestGuard, max_body_bytes=cfg.max_upload_bytes + FORM_OVERHEAD, api_key=cfg.api_key)
    if cfg.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cfg.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
    app.include_router(object_routes.router)
    app.include_router(search_routes.router)
    app.add_api_route("/", _page, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory for worker processes (``--workers N``): the config comes from the
    environment that `gr serve` set."""
    return create_app(ServeConfig.from_env())
