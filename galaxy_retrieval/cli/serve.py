"""gr serve: the search API and page."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..errors import ConfigError
from .errors import friendly
from .render import err

app = typer.Typer()


@app.command()
@friendly
def serve(
    index: Path = typer.Option(..., help="Index directory (indexes/NAME)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; 0.0.0.0 opens the server to the network."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, help="Server processes, each with its own copy of the model."),
    api_key: Optional[str] = typer.Option(None, envvar="GR_API_KEY", help="Require this key in the X-API-Key header of /api/ requests."),
    cors: Optional[list[str]] = typer.Option(None, help="Allow pages from this origin (repeatable) to call the API; none by default."),
    max_upload_mb: float = typer.Option(10.0, help="Largest image upload accepted."),
    checkpoint: Optional[Path] = typer.Option(None, help="Use this checkpoint (must match the index)."),
) -> None:
    """Serve the search API (/api/, documented at /docs) and the search page (/) for one index."""
    try:
        from ..serve import ServeConfig, bind_banner, run_server
    except ImportError as e:
        raise ConfigError(f"gr serve needs the serve extra ({e.name} is missing): pip install -e '.[serve]'") from None

    cfg = ServeConfig(index=index, checkpoint=checkpoint, api_key=api_key, cors_origins=tuple(cors or ()), max_upload_bytes=int(max_upload_mb * 1024 * 1024))
    url, warning = bind_banner(host, port, api_key)
    if warning:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    err.print(f"serving [bold]{escape(str(index))}[/] at [bold]{escape(url)}[/] (API docs: /docs); Ctrl-C stops", highlight=False, soft_wrap=True)
    run_server(cfg, host=host, port=port, workers=workers)
