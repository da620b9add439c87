"""The `gr` command line: a package of command groups registered flat on one Typer app.

Each command parses its options, calls one library function and renders the result. This
package is the only part of galaxy_retrieval that imports typer and rich. Errors the user can
cause arrive as :class:`~galaxy_retrieval.errors.GalaxyRetrievalError` and are printed as one
line with a non-zero exit; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from .app import app
from .render import RichProgress

__all__ = ["app", "RichProgress"]
