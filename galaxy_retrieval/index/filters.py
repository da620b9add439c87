"""Metadata filters: one boolean expression over the index's metadata columns, evaluated by DuckDB.

    select_positions(table, "label = 3 AND redshift < 0.05")  # → sorted positions

A filter is never spliced into a SQL statement (it may come from a web form via ``gr serve``).
DuckDB's own parser reads it as exactly one expression (:class:`duckdb.SQLExpression`: a
second statement, a closing parenthesis or a ``UNION`` is a syntax error there), the parsed
tree (``json_serialize_sql``) is checked against an allow-list — the known columns, literals,
comparisons, AND/OR/NOT, arithmetic, IN, BETWEEN, LIKE/ILIKE, IS [NOT] NULL, CASE, CAST to a
plain type and the functions in :data:`FUNCTIONS`; no subquery, table, file or setting — and
the expression is applied as a filter on a relation over the metadata (one in-memory Arrow
table in position order) with DuckDB's relational API. The connection has external access
disabled as well, the evaluation is interrupted after ``timeout`` seconds, and the positions
returned are checked to be in range and unique. Errors are one line naming the columns; they
carry nothing of DuckDB's version, settings or paths.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import QueryError

__all__ = [
    "POSITION_COLUMN",
    "FUNCTIONS",
    "MAX_FILTER_CHARS",
    "FILTER_SECONDS",
    "check_filter",
    "select_positions",
]

# the row's position in the index (vectors file, FAISS id), added for the query's answer
POSITION_COLUMN = "__position"

#: longest filter accepted (a condition over a few columns is far shorter)
MAX_FILTER_CHARS = 4096
#: default bound on one filter's evaluation
FILTER_SECONDS = 10.0

#: named functions a filter may call: scalar maths and string tests, nothing that reads,
#: writes, sleeps, generates rows or touches a setting
FUNCTIONS = frozenset(
    [
        "abs",
        "sign",
        "round",
        "floor",
        "ceil",
        "ceiling",
        "trunc",
        "sqrt",
        "cbrt",
        "pow",
        "power",
        "exp",
        "ln",
        "log",
        "log2",
        "log10",
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "atan2",
        "degrees",
        "radians",
        "pi",
        "isnan",
        "isinf",
        "isfinite",
        "greatest",
        "least",
        "coalesce",
        "nullif",
        "lower",
        "upper",
        "length",
        "strlen",
        "starts_with",
        "ends_with",
        "contains",
        "prefix",
        "suffix",
        "substr",
        "substring",
        "trim",
        "ltrim",
        "rtrim",
        "concat",
        "regexp_matches",
    ]
)
# operators DuckDB parses into functions: arithmetic, concatenation and the LIKE family
_OPERATORS = frozenset({"+", "-", "*", "/", "//", "%", "^", "**", "||", "~~", "!~~", "~~*", "!~~*"})
_COMPARISONS = frozenset(
    f"COMPARE_{c}"
    for c in (
        "EQUAL",
        "NOTEQUAL",
        "LESSTHAN",
        "GREATERTHAN",
        "LESSTHANOREQUALTO",
        "GREATERTHANOREQUALTO",
        "DISTINCT_FROM",
        "NOT_DISTINCT_FROM",
    )
)
_OPERATOR_TYPES = frozenset(
    {
        "OPERATOR_NOT",
        "OPERATOR_IS_NULL",
        "OPERATOR_IS_NOT_NULL",
        "COMPARE_IN",
        "COMPARE_NOT_IN",
        "OPERATOR_COALESCE",
    }
)
_CAST_TYPES = frozenset(
    [
        "boolean",
        "bool",
        "tinyint",
        "smallint",
        "integer",
        "int",
        "int4",
        "int8",
        "bigint",
        "hugeint",
        "float",
        "real",
        "float4",
        "double",
        "float8",
        "decimal",
        "numeric",
        "varchar",
        "text",
        "string",
    ]
)
_WHAT = "comparisons, AND/OR/NOT, arithmetic, IN, BETWEEN, LIKE, IS NULL, CASE, CAST and maths/string functions such as abs, sqrt, lower"


def _shown(where: str) -> str:
    """The filter as an error message quotes it: at most 120 characters, one line."""
    s = where if len(where) <= 120 else where[:117] + "..."
    return repr(s)


def _refuse(where: str, why: str, cols: list[str]) -> QueryError:
    return QueryError(f"filter {_shown(where)}: {why}; the columns are {', '.join(cols)}")


def _children(node: dict[str, Any], cls: str, cols: set[str]) -> Iterator[Any] | str:
    """The sub-expressions of an allowed ``node``, or why it is not allowed."""
    typ = node.get("type")
    if cls == "COLUMN_REF":
        names = node.get("column_names") or []
        if len(names) != 1:
            return f"{'.'.join(map(str, names))!r} is not a column"
        if str(names[0]).lower() not in cols:
            return f"{names[0]!r} is not a column"
        return iter(())
    if cls == "CONSTANT":
        return iter(())
    if cls == "COMPARISON" and typ in _COMPARISONS:
        return iter((node.get("left"), node.get("right")))
    if cls == "CONJUNCTION" and typ in ("CONJUNCTION_AND", "CONJUNCTION_OR"):
        return iter(node.get("children") or [])
    if cls == "OPERATOR" and typ in _OPERATOR_TYPES:
        return iter(node.get("children") or [])
    if cls == "BETWEEN":
        return iter((node.get("input"), node.get("lower"), node.get("upper")))
    if cls == "CASE":
        checks = node.get("case_checks") or []
        return iter(
            [x for c in checks for x in (c.get("when_expr"), c.get("then_expr"))] + [node.get("else_expr")]
        )
    if cls == "CAST":
        t = node.get("type_expr") or {}
        name = str(t.get("type_name", "")).lower()
        if (
            t.get("class") != "TYPE"
            or name not in _CAST_TYPES
            or t.get("children")
            or t.get("schema")
            or t.get("catalog")
        ):
            return f"a cast to {name or 'that type'} is not allowed"
        return iter((node.get("child"),))
    if cls == "FUNCTION":
        name = str(node.get("function_name", "")).lower()
        allowed = name in _OPERATORS if node.get("is_operator") else name in FUNCTIONS
        plain = not (
            node.get("schema")
            or node.get("catalog")
            or node.get("filter")
            or node.get("distinct")
            or node.get("export_state")
        )
        plain = plain and not (node.get("order_bys") or {}).get("orders")
        args = node.get("arguments") or []
        if not allowed or not plain or any(a.get("name") for a in args if isinstance(a, dict)):
            return f"the function {name}() is not allowed"
        return iter(a.get("expression") if isinstance(a, dict) else None for a in args)
    what = {
        "SUBQUERY": "a subquery",
        "STAR": "*",
        "LAMBDA": "a lambda",
        "WINDOW": "a window function",
        "PARAMETER": "a parameter",
    }
    return f"{what.get(cls, cls.lower() or 'that construct')} is not allowed"


def _parse(con: Any, where: str, cols: list[str], shown: list[str] | None = None) -> Any:
    """DuckDB's parse of ``where`` as one expression, checked against the allow-list
    (``shown``: the columns as error messages list them, default ``cols``)."""
    import duckdb

    names, cols = cols, (shown or cols)

    try:
        expr = duckdb.SQLExpression(where)
        text = str(expr)
        # the same text, parsed as the one item of a bare SELECT, for its syntax tree; bound
        # as a parameter, so the filter is data here too
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", ["SELECT " + text]).fetchall()[0][0])
    except duckdb.Error as e:
        raise _refuse(where, _reason(e), cols) from None
    except (RecursionError, ValueError, TypeError):
        raise _refuse(where, "too deeply nested", cols) from None
    stmts = tree.get("statements") if isinstance(tree, dict) and not tree.get("error") else None
    node = stmts[0].get("node", {}) if isinstance(stmts, list) and len(stmts) == 1 else {}
    items = node.get("select_list") or []
    one = (
        node.get("type") == "SELECT_NODE"
        and len(items) == 1
        and (node.get("from_table") or {}).get("type") == "EMPTY"
        and not any(
            node.get(k)
            for k in (
                "modifiers",
                "where_clause",
                "group_expressions",
                "group_sets",
                "having",
                "qualify",
                "sample",
            )
        )
        and not (node.get("cte_map") or {}).get("map")
    )
    if not one:
        raise _refuse(where, "not one condition", cols)
    known = {c.lower() for c in names}
    stack = [items[0]]
    while stack:  # iterative: a deeply nested filter is no recursion-depth hazard here
        n = stack.pop()
        if not isinstance(n, dict):
            if n is None:
                continue
            raise _refuse(where, "not one condition", cols)
        got = _children(n, str(n.get("class", "")), known)
        if isinstance(got, str):
            raise _refuse(where, f"{got} (allowed: {_WHAT})", cols)
        stack.extend(got)
    return duckdb.SQLExpression(text)


# DuckDB error classes whose first line speaks of the filter (a column, a type, the syntax);
# any other error (internal, I/O, a setting) is reported without DuckDB's text
_SAFE_ERRORS = (
    "ParserException",
    "BinderException",
    "ConversionException",
    "OutOfRangeException",
    "InvalidInputException",
    "TypeMismatchException",
)


def _reason(e: Exception) -> str:
    if type(e).__name__ not in _SAFE_ERRORS:
        return "cannot be evaluated over these columns"
    line = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
    if "more than one statement" in line:
        return "holds more than one statement"
    if not line or "/" in line or "duckdb" in line.lower():  # never a path, a version or a link
        return "cannot be evaluated over these columns"
    return line[:200]


def check_filter(where: Any, columns: list[str]) -> None:
    """Raise :class:`QueryError` unless ``where`` is one allowed condition over ``columns``
    (parsing only; nothing is evaluated). For callers that check a filter before work starts."""
    import duckdb

    cols = [c for c in columns if c != POSITION_COLUMN]
    _check_text(where, cols)
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        _parse(con, where, cols)
    finally:
        con.close()


def _check_text(where: Any, cols: list[str]) -> None:
    if not isinstance(where, str) or not where.strip():
        raise QueryError(
            f'filter {where!r}: empty; give a condition such as "label = 3"; the columns are {", ".join(cols)}'
        )
    if len(where) > MAX_FILTER_CHARS:
        raise _refuse(where, f"longer than {MAX_FILTER_CHARS} characters", cols)
    if "\x00" in where:
        raise _refuse(where, "holds a NUL character", cols)


def _kind(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t):
        return "number"
    if pa.types.is_boolean(t):
        return "true/false"
    return str(t)


def _label_codes(table: pa.Table, label_names: dict[int, str] | None) -> pa.Table | None:
    """``table`` with a text ``label`` column replaced by the catalog's integer codes for its
    names (``label_names``: code → name), or None when there is nothing to translate."""
    if not label_names or "label" not in table.column_names:
        return None
    i = table.column_names.index("label")
    if not (
        pa.types.is_string(table.schema.field(i).type) or pa.types.is_large_string(table.schema.field(i).type)
    ):
        return None
    code = {str(v): int(k) for k, v in label_names.items()}
    vals = [None if v is None else code.get(v) for v in table.column(i).to_pylist()]
    return table.set_column(i, "label", pa.array(vals, type=pa.int64()))


def select_positions(
    table: pa.Table, where: str, timeout: float = FILTER_SECONDS, label_names: dict[int, str] | None = None
) -> np.ndarray:
    """Positions (sorted, unique int64 in ``[0, table.num_rows)``) of the rows of ``table``
    for which ``where`` is true.

    A syntax error, anything but one allowed condition, an unknown column or a type mismatch
    raises :class:`QueryError` in one line naming the columns it may use and their types; so
    does an evaluation that takes longer than ``timeout`` seconds (it is interrupted).
    ``label_names`` (code → name, the catalog's): a text ``label`` column then also answers to
    the codes, so ``label = 1`` and ``label = 'spiral'`` both work, as ``gr info`` shows either."""
    try:
        return _select(table, where, timeout)
    except QueryError as first:
        alt = _label_codes(table, label_names)
        if alt is None or "convert" not in str(first).lower():
            raise
        try:
            return _select(alt, where, timeout)
        except QueryError:
            raise first from None


def _select(table: pa.Table, where: str, timeout: float) -> np.ndarray:
    import duckdb

    cols = [c for c in table.column_names if c != POSITION_COLUMN]
    shown = [f"{c} ({_kind(table.schema.field(c).type)})" for c in cols]
    _check_text(where, shown)
    t = table.append_column(POSITION_COLUMN, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    con = duckdb.connect(config={"enable_external_access": False})
    timer = threading.Timer(timeout, con.interrupt)
    try:
        expr = _parse(con, where, cols, shown)
        rel = con.from_arrow(t)
        timer.start()
        try:
            got = (
                rel.filter(expr)
                .project(duckdb.ColumnExpression(POSITION_COLUMN))
                .order(POSITION_COLUMN)
                .fetchnumpy()
            )
        except duckdb.InterruptException:
            raise _refuse(
                where, f"took longer than {timeout:g} s and was stopped; make it simpler", shown
            ) from None
        except duckdb.Error as e:
            raise _refuse(where, _reason(e), shown) from None
    finally:
        timer.cancel()
        con.close()
    pos = np.asarray(got[POSITION_COLUMN], dtype=np.int64)
    # the expression filters rows of the one relation: anything else is a bug, never rows to act on
    if pos.size and (pos[0] < 0 or pos[-1] >= table.num_rows or np.any(np.diff(pos) <= 0)):
        raise QueryError(
            f"filter {_shown(where)}: gave positions outside the index or twice; nothing was selected"
        )
    return pos
