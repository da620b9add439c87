"""`gr build-index` as one library call: build from the one source given.

A build reads one of three sources: a catalog embedded with a checkpoint (the model shipped in
the package when none is given), Parquet shards embedded elsewhere (no model), or a Parquet
file of embeddings made by another pipeline (no model). This module checks that exactly one
is named, with what it needs, and hands it to :func:`.build.build_index`,
:func:`.build.build_index_from_shards` or :func:`.foreign.build_index_from_parquet`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError
from ..progress import NULL_PROGRESS, Progress
from .config import BuildConfig, BuildResult

__all__ = ["build_index_from_source", "check_build_source"]


def check_build_source(
    catalog: str | Path | None = None,
    checkpoint: str | Path | None = None,
    from_shards: str | Path | None = None,
    from_parquet: str | Path | None = None,
    id_column: str | None = None,
    vector_columns: str | None = None,
) -> str:
    """Which source a build reads ("parquet", "shards" or "catalog"); refuses a mix or none."""
    if from_parquet is not None:
        if from_shards is not None or checkpoint is not None or catalog is not None:
            raise ConfigError(
                "embeddings from a Parquet file are indexed as they are: give no shards, checkpoint or "
                "catalog with them"
            ).resolved_by("from_parquet", "from_shards", "checkpoint", "catalog")
        if id_column is None or vector_columns is None:
            raise ConfigError(
                "embeddings from a Parquet file need the id column and the vector columns named"
            ).resolved_by("id_column", "vector_columns")
        return "parquet"
    if from_shards is not None:
        if checkpoint is not None or catalog is not None:
            raise ConfigError(
                "shards are indexed as they are, without a checkpoint or a catalog; give one or the other"
            ).resolved_by("from_shards", "checkpoint", "catalog")
        return "shards"
    if catalog is None:
        raise ConfigError(
            "give a catalog to embed (with a checkpoint, or the shipped model is used), or shards"
        ).resolved_by("catalog", "from_shards")
    return "catalog"


def build_index_from_source(
    out: str | Path,
    cfg: BuildConfig = BuildConfig(),
    *,
    catalog: str | Path | None = None,
    checkpoint: str | Path | None = None,
    metadata: str | Path | None = None,
    columns: Mapping[str, str] | str | None = None,
    on_error: str = "fail",
    from_shards: str | Path | None = None,
    from_parquet: str | Path | None = None,
    id_column: str | None = None,
    vector_columns: str | None = None,
    progress: Progress = NULL_PROGRESS,
) -> BuildResult:
    """Build the index directory ``out`` from the one source given (checked before any work).

    ``catalog``: an HDF5 file or image folder, opened with ``metadata``, ``columns`` (a mapping
    or ``"RAW=NAME,…"``) and ``on_error`` as :func:`~galaxy_retrieval.catalog.open_catalog` does,
    embedded with ``checkpoint`` (default: the model shipped in the package). What the user
    should know (the catalog's warnings, the model chosen) goes to ``progress.log``."""
    kind = check_build_source(catalog, checkpoint, from_shards, from_parquet, id_column, vector_columns)
    if kind == "parquet":
        from .foreign import build_index_from_parquet

        return build_index_from_parquet(from_parquet, out, id_column, vector_columns, cfg, progress)  # type: ignore[arg-type]
    from .build import build_index, build_index_from_shards

    if kind == "shards":
        return build_index_from_shards(from_shards, out, cfg, progress)  # type: ignore[arg-type]
    from ..catalog import open_catalog, parse_column_mapping

    mapping = parse_column_mapping(columns) if isinstance(columns, str) or columns is None else columns
    if checkpoint is None:
        from ..model.pretrained import PRETRAINED_NAME, pretrained_dir

        checkpoint = pretrained_dir()
        progress.log(
            f"no checkpoint given: embedding with the model shipped in the package ({PRETRAINED_NAME}, "
            f"docs/model-card.md)"
        )
    with open_catalog(catalog, metadata=metadata, on_error=on_error, columns=mapping) as cat:  # type: ignore[arg-type]
        for w in getattr(cat, "warnings", []):
            progress.log(f"warning: {w}")
        return build_index(checkpoint, cat, out, cfg, progress)
