"""How every Kosmos command prints results and failures, and the exit codes scripts rely on."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer

from kosmos.platform.errors import (
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidInput,
    KosmosError,
    NotFound,
    Unauthenticated,
)


class Output(StrEnum):
    table = "table"
    json = "json"


OutputOption = typer.Option(Output.table, "--output", "-o", help="table or json.")

EXIT_CODES: dict[type[KosmosError], int] = {
    InvalidInput: 2,
    Unauthenticated: 3,
    Forbidden: 4,
    NotFound: 5,
    Conflict: 6,
    ConnectionFailed: 7,
}
"""Exit status per failure; 1 for anything else, 0 for success."""

P = ParamSpec("P")
R = TypeVar("R")


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a :class:`KosmosError` into one line on stderr and a meaningful exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except KosmosError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_CODES.get(type(exc), 1)) from None

    return wrapper


def render(
    rows: Sequence[dict[str, Any]] | dict[str, Any], output: Output, columns: Sequence[str] | None = None
) -> None:
    """Print one object or a list of objects as an aligned table or as JSON."""
    if output is Output.json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    items = [rows] if isinstance(rows, dict) else list(rows)
    if not items:
        typer.echo("(none)")
        return
    cols = list(columns or items[0].keys())
    cells = [[_cell(item.get(c)) for c in cols] for item in items]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and "T" in value:
        return value[:19].replace("T", " ")
    return str(value)


def read_json_object(path: Path, option: str, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; an unreadable file or another shape is InvalidInput naming ``option``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput.field(option, f"cannot read {path} as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput.field(option, f"{path} must hold a JSON object of {what}")
    return data
