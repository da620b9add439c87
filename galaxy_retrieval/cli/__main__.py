"""`python -m galaxy_retrieval.cli ...` runs `gr ...`."""

from .app import app

app()
