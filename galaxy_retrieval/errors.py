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
    "IndexBusyError",
    "NoSpaceError",
    "OutputPathError",
    "TrainingDivergedError",
    "FetchError",
    "EngineError",
]


class GalaxyRetrievalError(Exception):
    """Base class of every error this package raises on purpose.

    ``options`` names the settings (keyword arguments, e.g. ``"overwrite"``) that resolve the
    error. Library messages speak of settings in words, never of command-line flags; the CLI
    shows the flags of these options next to the message."""

    options: tuple[str, ...] = ()

    def resolved_by(self, *options: str) -> GalaxyRetrievalError:
        self.options = options
        return self


class CatalogError(GalaxyRetrievalError, ValueError):
    """A catalog (HDF5 file, image folder, CSV) is missing, malformed or inconsistent."""


class ImageReadError(CatalogError):
    """One image file could not be decoded. Carries the path so callers can skip and report it."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # pickled across processes (Ray workers) with its own arguments
        return (type(self), (self.path, self.reason), self.__dict__)


class CheckpointError(GalaxyRetrievalError, ValueError):
    """A model checkpoint is missing, corrupt, or does not match what it is used with."""


class IndexFormatError(GalaxyRetrievalError, ValueError):
    """An index directory is missing, partial, or fails verification against its manifest."""


class QueryError(GalaxyRetrievalError, ValueError):
    """A query cannot be answered as asked (unknown id, k too large, nothing near RA/Dec)."""


class ConfigError(GalaxyRetrievalError, ValueError):
    """A configuration value is out of range or of the wrong kind."""


class IndexBusyError(GalaxyRetrievalError, RuntimeError):
    """Another process holds the write lock of an index directory."""


class NoSpaceError(GalaxyRetrievalError, OSError):
    """A write failed because the file system is full (ENOSPC); carries the path written."""

    def __init__(self, path: object) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: no space left on the device; free some space and rerun")

    def __reduce__(self):
        return (type(self), (self.path,), self.__dict__)

    def __str__(self) -> str:  # OSError's own __str__ would print the args tuple
        return self.args[0]


class OutputPathError(GalaxyRetrievalError, ValueError):
    """An output location cannot be written (under a regular file, a directory where a file is
    wanted, a read-only or virtual file system); raised before any work starts."""


class TrainingDivergedError(GalaxyRetrievalError, FloatingPointError):
    """The training loss became NaN or infinite (learning rate too high, exploding gradients)."""


class FetchError(GalaxyRetrievalError, OSError):
    """A download failed: server unreachable, HTTP error, a non-image answer, a truncated body,
    or a checksum that does not match."""


class EngineError(GalaxyRetrievalError, RuntimeError):
    """The distributed engine (Ray) is not installed, cannot be reached, or its job failed."""
