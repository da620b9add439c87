"""Option types and choices shared by the commands."""

from __future__ import annotations

from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, Iterator, Optional

from .render import err


class EngineChoice(str, Enum):  # index.ray_engine.ENGINES
    local = "local"
    ray = "ray"


class OnErrorChoice(str, Enum):
    fail = "fail"
    skip = "skip"


COLUMNS_HELP = "Map catalog column names: RAW=NAME pairs, e.g. RA=ra,DEC=dec,z=redshift (common spellings are recognised anyway)."


@contextmanager
def opened_catalog(path: Path, metadata: Optional[Path], on_error: str = "fail", columns: Optional[str] = None) -> Iterator[Any]:
    """open_catalog, telling the user what it warned about (an ignored CSV)."""
    from ..catalog import open_catalog, parse_column_mapping

    with open_catalog(path, metadata=metadata, on_error=on_error, columns=parse_column_mapping(columns)) as cat:  # type: ignore[arg-type]
        for w in getattr(cat, "warnings", []):
            err.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
        yield cat



class SurveyChoice(str, Enum):
    legacy = "legacy"
    sdss = "sdss"


class CutoutFormatChoice(str, Enum):
    jpeg = "jpeg"
    fits = "fits"



class PairModeChoice(str, Enum):
    paper = "paper"
    in_batch = "in_batch"


class AugmentChoice(str, Enum):
    galaxy = "galaxy"
    paper = "paper"


class SelectByChoice(str, Enum):
    split_loose_acc = "split_loose_acc"
    val_loss = "val_loss"


class PresetChoice(str, Enum):  # model.presets.PRESETS (a test keeps them equal)
    polar = "polar"
    small = "small"
    paper = "paper"
    tiny = "tiny"


class LossChoice(str, Enum):
    info_nce = "info_nce"
    contrastive = "contrastive"


class SuppressChoice(str, Enum):  # "none" and suppress.PRESETS (a test keeps them equal)
    none = "none"
    optical = "optical"
    radio = "radio"


class SplitChoice(str, Enum):
    test = "test"
    val = "val"
    train = "train"
    all = "all"


class MetricChoice(str, Enum):
    l2 = "l2"
    cosine = "cosine"


class DtypeChoice(str, Enum):
    float32 = "float32"
    float16 = "float16"



class HitsFormatChoice(str, Enum):  # search.hits.HIT_SUFFIXES
    csv = "csv"
    parquet = "parquet"
    json = "json"
    fits = "fits"
    votable = "votable"



class ExplainMethodChoice(str, Enum):
    similarity = "similarity"
    rollout = "rollout"

