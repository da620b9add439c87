"""Metadata filters: SQL ``WHERE`` expressions that DuckDB evaluates over the shard metadata.

    select_positions(table, "label = 3 AND redshift < 0.05")  # → sorted positions

The expression is DuckDB's own SQL (no home-made parser), run against the index's metadata
columns (everything in the shards but the embedding) as one in-memory Arrow table in
position order. The connection has external access disabled: a filter can read the
metadata it is given, never a file or URL (it may come from a web form via ``gr serve``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import QueryError

__all__ = ["POSITION_COLUMN", "select_positions"]

# the row's position in the index (vectors file, FAISS id), added for the query's answer
POSITION_COLUMN = "__position"


def select_positions(table: pa.Table, where: str) -> np.ndarray:
    """Positions (sorted int64) of the rows of ``table`` for which ``where`` is true.

    A syntax error, an unknown column or a type mismatch raises :class:`QueryError` in one
    line naming the expression and the columns it may use."""
    import duckdb

    if not isinstance(where, str) or not where.strip():
        raise QueryError(f"filter {where!r}: empty; give a SQL condition such as \"label = 3\"")
    cols = [c for c in table.column_names if c != POSITION_COLUMN]
    t = table.append_column(POSITION_COLUMN, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        con.register("objects", t)
        try:
            got = con.sql(f"SELECT {POSITION_COLUMN} FROM objects WHERE ({where}) ORDER BY {POSITION_COLUMN}").fetchnumpy()
        except duckdb.Error as e:
            reason = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise QueryError(f"filter {where!r}: {reason}; the columns are {', '.join(cols)}") from None
    finally:
        con.close()
    return np.asarray(got[POSITION_COLUMN], dtype=np.int64)
