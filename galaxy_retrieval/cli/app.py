"""The `gr` app: the root options, and every group's commands registered flat on it."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import GalaxyRetrievalError
from . import bench, data, demo, index, info, search, serve, train
from .render import out

app = typer.Typer(
    name="gr",
    help="galaxy-retrieval: find the galaxies that look like this one.",
    no_args_is_help=True,
    add_completion=True,  # gr --install-completion bash|zsh|fish
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from ..version import __version__

        out.print(f"galaxy-retrieval {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    max_image_pixels: Annotated[
        int | None,
        typer.Option(
            "--max-image-pixels",
            help=(
                "Largest image decoded, in pixels (default 89,478,485); larger files are unreadable images "
                "(decompression bombs)."
            ),
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True),
    ] = False,
) -> None:
    """galaxy-retrieval: find the galaxies that look like this one."""
    from ..catalog.images import set_max_image_pixels

    try:
        set_max_image_pixels(max_image_pixels)
    except GalaxyRetrievalError as e:
        raise typer.BadParameter(str(e), param_hint="--max-image-pixels") from None


# a group added without a name merges its commands into the root: `gr build-index`, not `gr index build-index`
for group in (data, info, train, demo, index, search, serve, bench):
    app.add_typer(group.app)
