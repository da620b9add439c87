"""The one place user errors become one line on stderr and a non-zero exit."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import typer
from rich.markup import escape

from ..errors import GalaxyRetrievalError
from .render import err

EXIT_USER_ERROR = 2


def friendly(fn: Callable | None = None, *, flags: Mapping[str, str] | None = None) -> Callable:
    """Turn project errors into `error: <file>: <problem>` and exit code 2, no traceback.

    The settings an error names (:meth:`GalaxyRetrievalError.resolved_by`) are shown as flags:
    ``object_id`` as ``--object-id``; ``flags`` maps the library names a command spells
    differently (``@friendly(flags={"object_ids": "--ids"})``)."""
    if fn is None:
        return functools.partial(friendly, flags=flags)
    names = dict(flags or {})

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GalaxyRetrievalError as e:
            shown = " or ".join(names.get(o) or f"--{o.replace('_', '-')}" for o in e.options)
            err.print(
                f"[bold red]error:[/] {escape(str(e))}" + (f" ({shown})" if shown else ""),
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_USER_ERROR) from None
        except OSError as e:
            # a full disk inside a third-party writer (h5py, matplotlib) that the library did
            # not wrap: still one line naming the file, never a traceback
            from ..atomic import is_no_space

            if not is_no_space(e):
                raise
            where = f"{escape(str(e.filename))}: " if e.filename else ""
            err.print(
                f"[bold red]error:[/] {where}no space left on the device; free some space and rerun",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/] (completed work is kept; rerun to resume)")
            raise typer.Exit(130) from None

    return wrapper
