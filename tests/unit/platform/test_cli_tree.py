"""Every `kosmos` command parses its options before or after its arguments, as the docs write them.

Click groups stop reading options at the first argument; a command mounted as a group (a
callback with ``invoke_without_command``) then refused `kosmos explain ID -p demo`. The walk
parses each command's line without running it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import pytest
import typer
from typer import _click as click  # typer vendors click (0.20+): the classes of its command tree

from kosmos.platform.cli.main import app


def _sample(param: Any) -> str:
    """A value of the parameter's annotated type (typer keeps the annotation, not a click type)."""
    kind = param.type_descriptor.annotation
    while get_origin(kind) in (Union, UnionType, list, tuple):
        kind = next(a for a in get_args(kind) if a is not type(None))
    if get_origin(kind) is Literal:
        return str(get_args(kind)[0])
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return str(next(iter(kind)).value)
    if kind is int:
        return "1"
    if kind is float:
        return "1.0"
    if kind is datetime:
        return "2026-01-01"
    if kind is Path:
        return __file__  # a file that exists, for arguments that must
    return "x1"


def _options_after_arguments(command: Any) -> list[str]:
    arguments: list[str] = []
    options: list[str] = []
    for param in command.params:
        if not hasattr(param, "is_flag"):  # an argument
            arguments += [_sample(param)] * max(param.nargs, 1)
        elif param.name != "help":
            name = max(param.opts, key=len)  # the long form, as docs write it
            options += [name] if param.is_flag else [name, _sample(param)] * max(param.nargs, 1)
    return arguments + options


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in group.commands.items():
        here = (*path, name)
        if hasattr(command, "commands"):  # a group
            if any(not hasattr(p, "is_flag") for p in command.params):
                yield here, command  # a group that is used as one command
            yield from _commands(command, here)
        else:
            yield here, command


ROOT = typer.main.get_command(app)
COMMANDS = sorted(_commands(ROOT), key=lambda c: c[0])


def test_the_walk_covers_the_tree() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"explain", "replay", "deploy rollout", "features run", "projects create"} <= names
    assert len(names) > 60


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_options_after_arguments_parse(path: tuple[str, ...], command: Any) -> None:
    args = _options_after_arguments(command)
    parent = click.Context(ROOT, info_name="kosmos")
    try:
        with command.make_context(path[-1], list(args), parent=parent) as ctx:
            leftover = [*getattr(ctx, "_protected_args", []), *ctx.args]
    except click.core.UsageError as exc:
        pytest.fail(f"`kosmos {' '.join(path)} {' '.join(args)}`: {exc.format_message()}")
    assert not leftover, f"`kosmos {' '.join(path)} {' '.join(args)}` left {leftover} unparsed"
