"""Labels and filters agree (issue 22 item 7): a text label answers to its name and to the code
`gr info` shows beside it, and a refused filter names the columns with their types."""

from __future__ import annotations

import pyarrow as pa
import pytest

from galaxy_retrieval.errors import QueryError
from galaxy_retrieval.index.filters import select_positions


def _table() -> pa.Table:
    return pa.table(
        {
            "object_id": ["a", "b", "c", "d"],
            "label": ["spiral", "smooth", "spiral", None],
            "z": [0.1, 0.2, 0.3, 0.4],
        }
    )


def test_a_text_label_answers_to_its_name_and_its_code() -> None:
    names = {0: "smooth", 1: "spiral"}
    t = _table()
    assert select_positions(t, "label = 'spiral'", label_names=names).tolist() == [0, 2]
    assert select_positions(t, "label = 1", label_names=names).tolist() == [0, 2]
    assert select_positions(t, "label IN (0) AND z < 0.5", label_names=names).tolist() == [1]
    # without the catalog's names the code cannot mean anything: a one-line error
    with pytest.raises(QueryError) as e:
        select_positions(t, "label = 1")
    msg = str(e.value)
    assert "\n" not in msg and "label (text)" in msg and "z (number)" in msg and "object_id (text)" in msg


def test_an_unknown_column_lists_the_columns_with_their_types() -> None:
    with pytest.raises(QueryError, match=r"the columns are object_id \(text\), label \(text\), z \(number\)"):
        select_positions(_table(), "redshift < 0.1", label_names={0: "smooth"})
