"""Catalog row → position without a per-object dict (the server's image routes use it)."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from galaxy_retrieval.search.lookup import CatalogLookup


def _lookup(rows: list[int], dead: list[bool]) -> CatalogLookup:
    table = pa.table({"object_id": [f"o{r}" for r in rows], "row": pa.array(rows, pa.int64())})
    return CatalogLookup(Path("idx"), None, table, np.array(dead))  # type: ignore[arg-type]


@pytest.mark.parametrize("rows", [[0, 1, 2, 5, 9], [9, 2, 5, 0, 1]])
def test_rows_are_found_at_their_positions_whatever_their_order(rows: list[int]) -> None:
    lk = _lookup(rows, [False] * len(rows))
    for pos, r in enumerate(rows):
        assert lk.live_position_of_row(r) == pos
    for missing in (-1, 3, 4, 10, 1 << 40):
        assert lk.live_position_of_row(missing) is None


def test_a_deleted_row_is_not_found() -> None:
    lk = _lookup([3, 1, 7], [False, True, False])
    assert lk.live_position_of_row(1) is None
    assert lk.live_position_of_row(7) == 2


def test_an_empty_version_finds_nothing() -> None:
    assert _lookup([], []).live_position_of_row(0) is None
