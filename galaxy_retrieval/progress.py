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

from contextlib import contextmanager
from typing import Any, Iterator, Protocol

__all__ = ["Progress", "TaskHandle", "NullProgress", "NULL_PROGRESS"]


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
