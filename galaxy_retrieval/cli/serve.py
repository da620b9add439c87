"""gr serve: the search API and page."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ..errors import ConfigError
from .errors import friendly
from .options import Checkpoint, IndexDir
from .render import err

app = typer.Typer()


Host = Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 opens the server to the network.")]
Workers = Annotated[int, typer.Option(help="Server processes, each with its own copy of the model.")]
ApiKey = Annotated[
    str | None,
    typer.Option(envvar="GR_API_KEY", help="Require this key in the X-API-Key header of /api/ requests."),
]
Cors = Annotated[
    list[str] | None,
    typer.Option(help="Allow pages from this origin (repeatable) to call the API; none by default."),
]


@app.command()
@friendly
def serve(
    index: IndexDir,
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Workers = 1,
    api_key: ApiKey = None,
    cors: Cors = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest image upload accepted.")] = 10.0,
    checkpoint: Checkpoint = None,
) -> None:
    """Serve the search API (/api/, documented at /docs) and the search page (/) for one index."""
    try:
        from ..serve import ServeConfig, bind_banner, run_server
    except ImportError as e:
        raise ConfigError(
            f"gr serve needs the serve extra ({e.name} is missing): pip install -e '.[serve]'"
        ) from None

    cfg = ServeConfig(
        index=index,
        checkpoint=checkpoint,
        api_key=api_key,
        cors_origins=tuple(cors or ()),
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
    )
    url, warning = bind_banner(host, port, api_key)
    if warning:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    err.print(
        f"serving [bold]{escape(str(index))}[/] at [bold]{escape(url)}[/] (API docs: /docs); Ctrl-C stops",
        highlight=False,
        soft_wrap=True,
    )
    run_server(cfg, host=host, port=port, workers=workers)
