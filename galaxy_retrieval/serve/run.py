"""Start uvicorn on a :class:`ServeConfig`."""

from __future__ import annotations

import os

from ..errors import ConfigError
from .app import create_app
from .config import ServeConfig

__all__ = ["run_server", "bind_banner"]


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any address


def bind_banner(host: str, port: int, api_key: str | None) -> tuple[str, str | None]:
    """(where the server listens, as a URL; a warning or None). The URL names the address
    actually bound: ``0.0.0.0`` is every address of the machine, not 127.0.0.1. Listening
    beyond this machine without an API key is allowed, but said out loud."""
    if host in ("0.0.0.0", "::", ""):
        url = f"http://{'[::]' if host == '::' else '0.0.0.0'}:{port}/ (every address of this machine)"
    else:
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    warning = None
    if not _loopback(host) and not api_key:
        warning = (
            f"listening on {host or 'every address'} without an API key: anyone who can reach this machine can search the index "
            "and read its images; set --api-key (or GR_API_KEY)"
        )
    return url, warning


def run_server(
    cfg: ServeConfig, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info"
) -> None:
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
    uvicorn.run(
        "galaxy_retrieval.serve.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
    )
