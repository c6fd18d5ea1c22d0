"""Helpers for a project's own feature pipelines.

A pipeline is a function in the project's feature repository, named by a feature view's tag
``kosmos.pipeline``: its parameters name the project's tables, it returns the view's frame (see
``docs/features.md``). :func:`validate` checks a table against the columns a pipeline expects,
with an error that names every column that is missing or of the wrong type.
"""

from __future__ import annotations

import pandas as pd

from kosmos.platform.errors import InvalidInput


def _kind_ok(series: pd.Series, kind: str) -> bool:
    dtype = series.dtype
    if kind == "integer":
        return pd.api.types.is_integer_dtype(dtype)
    if kind == "number":
        return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if kind == "timestamp":
        return isinstance(dtype, pd.DatetimeTZDtype)
    return pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype)


def validate(frame: pd.DataFrame, schema: dict[str, str], table: str) -> None:
    """Raise InvalidInput naming every missing column and every column of the wrong type.

    ``schema`` maps a column to ``integer``, ``number``, ``string`` or ``timestamp`` (zone-aware).
    """
    problems = []
    for column, kind in schema.items():
        if column not in frame.columns:
            problems.append({"field": f"{table}.{column}", "reason": "missing column"})
        elif not _kind_ok(frame[column], kind):
            reason = f"expected {kind}, found {frame[column].dtype}"
            if kind == "timestamp" and pd.api.types.is_datetime64_dtype(frame[column].dtype):
                reason = "timestamps must be timezone-aware (UTC)"
            problems.append({"field": f"{table}.{column}", "reason": reason})
    if problems:
        summary = "; ".join(f"{p['field']}: {p['reason']}" for p in problems)
        raise InvalidInput(f"table {table!r} does not match its schema: {summary}", details=problems)
