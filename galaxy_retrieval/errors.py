"""Project exceptions.

Every error a user can cause (bad path, bad file, bad argument) is raised as a subclass of
:class:`GalaxyRetrievalError`; the CLI turns these into a one-line message and a non-zero exit,
and lets anything else (a real bug) show its traceback. Each subclass also derives from the
closest built-in so ``except ValueError`` keeps working for library users.
"""

from __future__ import annotations

__all__ = [
    "GalaxyRetrievalError",
    "CatalogError",
    "ImageReadError",
    "CheckpointError",
    "IndexFormatError",
    "QueryError",
    "ConfigError",
    "FetchError",
]


class GalaxyRetrievalError(Exception):
    """Base class of every error this package raises on purpose."""


class CatalogError(GalaxyRetrievalError, ValueError):
    """A catalog (HDF5 file, image folder, CSV) is missing, malformed or inconsistent."""


class ImageReadError(CatalogError):
    """One image file could not be decoded. Carries the path so callers can skip and report it."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CheckpointError(GalaxyRetrievalError, ValueError):
    """A model checkpoint is missing, corrupt, or does not match what it is used with."""


class IndexFormatError(GalaxyRetrievalError, ValueError):
    """An index directory is missing, partial, or fails verification against its manifest."""


class QueryError(GalaxyRetrievalError, ValueError):
    """A query cannot be answered as asked (unknown id, k too large, nothing near RA/Dec)."""


class ConfigError(GalaxyRetrievalError, ValueError):
    """A configuration value is out of range or of the wrong kind."""


class FetchError(GalaxyRetrievalError, OSError):
    """A download failed: server unreachable, HTTP error, a non-image answer, a truncated body,
    or a checksum that does not match."""
