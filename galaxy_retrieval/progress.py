"""Progress reporting without a UI dependency.

The library reports progress through this small protocol; the CLI passes an implementation
backed by rich, tests and library users get :data:`NULL_PROGRESS`. This keeps rich (and typer)
inside ``cli.py``.

Usage inside the library::

    with progress.task("embedding", total=len(catalog), unit="img") as t:
        for batch in ...:
            t.advance(len(batch))
            t.update(loss=0.12)          # live figures shown beside the bar
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

__all__ = ["Progress", "TaskHandle", "NullProgress", "NULL_PROGRESS", "NotebookProgress", "default_progress"]


class TaskHandle(Protocol):
    def advance(self, n: float = 1) -> None: ...

    def update(self, **fields: Any) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: float | None = None, unit: str = "it") -> Any:
        """A context manager yielding a :class:`TaskHandle`."""

    def log(self, message: str) -> None:
        """A line of text for the user (what was picked and why, what was skipped)."""


class _NullHandle:
    def advance(self, n: float = 1) -> None:
        pass

    def update(self, **fields: Any) -> None:
        pass


class NullProgress:
    """Reports nothing; the default for library calls."""

    @contextmanager
    def task(self, description: str, total: float | None = None, unit: str = "it") -> Iterator[_NullHandle]:
        yield _NullHandle()

    def log(self, message: str) -> None:
        pass


NULL_PROGRESS = NullProgress()


class _NotebookHandle:
    def __init__(self, description: str, total: float | None, unit: str) -> None:
        import time

        from IPython.display import HTML, display

        self._html, self._desc, self._total, self._unit = HTML, description, total, unit
        self._n = 0.0
        self._info = ""
        self._t0 = self._shown = time.monotonic()
        self._handle = display(HTML(self._render()), display_id=True)

    def _render(self) -> str:
        import html
        import time

        dt = max(time.monotonic() - self._t0, 1e-9)
        bar = (
            f'<progress value="{self._n:g}" max="{self._total:g}" style="width:40%"></progress> '
            if self._total
            else ""
        )
        done = f"{self._n:,.0f}/{self._total:,.0f}" if self._total else f"{self._n:,.0f}"
        text = f"{self._desc}: {done} {self._unit}, {self._n / dt:,.1f} {self._unit}/s, {dt:.0f} s" + (
            f" · {self._info}" if self._info else ""
        )
        return f"<div>{bar}<span>{html.escape(text)}</span></div>"

    def _update(self, force: bool = False) -> None:
        import time

        now = time.monotonic()
        if self._handle is not None and (
            force or now - self._shown >= 0.2
        ):  # a redraw per batch would flood the kernel
            self._shown = now
            self._handle.update(self._html(self._render()))

    def advance(self, n: float = 1) -> None:
        self._n += n
        self._update()

    def update(self, **fields: Any) -> None:
        self._info = "  ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
        )
        self._update()


class NotebookProgress:
    """Progress of long library calls in Jupyter: an HTML bar updated in place (IPython's
    display), e.g. ``build_index(..., progress=NotebookProgress())``; what
    :func:`default_progress` gives inside a notebook kernel."""

    @contextmanager
    def task(
        self, description: str, total: float | None = None, unit: str = "it"
    ) -> Iterator[_NotebookHandle]:
        h = _NotebookHandle(description, total, unit)
        yield h
        h._update(force=True)

    def log(self, message: str) -> None:
        print(message)


def default_progress() -> Progress:
    """:class:`NotebookProgress` inside a Jupyter kernel, else :data:`NULL_PROGRESS` (a library
    call run from a script or a server stays silent unless given a reporter)."""
    import sys

    ip = sys.modules.get("IPython")
    shell = ip.get_ipython() if ip is not None and hasattr(ip, "get_ipython") else None  # type: ignore[attr-defined]
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
        return NotebookProgress()
    return NULL_PROGRESS
