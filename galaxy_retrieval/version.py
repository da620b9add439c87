"""The package's version, in a module of its own so that any layer can name it without
importing the package's top level (which sits above everything)."""

__version__ = "0.1.0"
