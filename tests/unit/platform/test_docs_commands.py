"""Every `kosmos ...` line that README.md and docs/ show parses against the CLI as it is.

A reader copies commands from the docs; a command, subcommand or option the CLI does not have
(or one the docs misspell) fails here, naming the page and the line. Values are not checked
(placeholders such as ``NAME`` or ``$KOSMOS_TOKEN`` stand for what a reader fills in), and
nothing runs: each line is only parsed, as the shell would hand it to `kosmos`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer import _click as click

from kosmos.platform.cli.main import app

ROOT_DIR = Path(__file__).resolve().parents[3]
PAGES = [ROOT_DIR / "README.md", *sorted((ROOT_DIR / "docs").glob("*.md"))]
SHELL_BLOCKS = {"bash", "sh", "shell", "console", "zsh"}
FENCE = re.compile(r"^\s*```+\s*([\w+-]*)")
INLINE = re.compile(r"(?<!`)`(kosmos [^`]+)`(?!`)")
SYNOPSIS = re.compile(r"[\[\]|()]|\s/\s|\.\.\.|…")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _shell_lines(page: Path) -> Iterator[tuple[int, str]]:
    """(line number, command) of every shell block's lines, continuations joined."""
    inside, kind, pending, start = False, "", "", 0
    for number, line in enumerate(page.read_text().splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            inside, kind = (not inside, fence.group(1).lower()) if not inside else (False, "")
            continue
        if not inside or kind not in SHELL_BLOCKS:
            continue
        text = line.strip()
        if text.startswith("$ "):
            text = text[2:]
        if not pending:
            start = number
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        yield start, pending + text
        pending = ""


def _kosmos_commands(command_line: str) -> Iterator[list[str]]:
    """The argument lists given to `kosmos` in one shell line (pipes, && and ; split it)."""
    try:
        words = shlex.split(command_line, comments=True)
    except ValueError:
        return
    current: list[str] = []
    for word in [*words, ";"]:
        if word in {"|", "||", "&&", ";"} or word.endswith(";"):
            if word.endswith(";") and word != ";":
                current.append(word[:-1])
            while current and ENV_ASSIGNMENT.match(current[0]):  # KOSMOS_X=1 kosmos ...
                current.pop(0)
            if current and current[0].rsplit("/", 1)[-1] == "kosmos":  # also .venv/bin/kosmos
                yield current[1:]
            current = []
        else:
            current.append(word)


def _inline_commands(page: Path) -> Iterator[tuple[int, str]]:
    """`kosmos ...` code spans in the prose, where they are one command as written (a span
    with alternatives or optional parts, ``[--admin]`` or ``a / b``, is a synopsis, not a line)."""
    for number, line in enumerate(page.read_text().splitlines(), 1):
        for span in INLINE.findall(line):
            if not SYNOPSIS.search(span):
                yield number, span


def _cases() -> list[tuple[str, list[str], bool]]:
    """(page:line, the arguments, whether it is a whole line a reader runs)."""
    cases = []
    for page in PAGES:
        where = page.relative_to(ROOT_DIR)
        for lines, whole in ((_shell_lines(page), True), (_inline_commands(page), False)):
            for number, line in lines:
                cases.extend((f"{where}:{number}", args, whole) for args in _kosmos_commands(line))
    return cases


CASES = _cases()
ROOT = typer.main.get_command(app)


def _parse(args: list[str], whole: bool) -> str | None:
    """None when ``kosmos ARGS`` parses; else what the CLI says is wrong. Values are not judged
    (``VERSION`` stands for a number), and a command named in the prose may leave out what it
    needs; a shell line may not."""
    command: Any = ROOT
    path = ["kosmos"]
    rest = list(args)
    parent = None
    while hasattr(command, "commands") and rest and rest[0] in command.commands:
        parent = click.Context(command, info_name=path[-1], parent=parent)
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    if hasattr(command, "commands") and not any(not hasattr(p, "is_flag") for p in command.params):
        if rest and not rest[0].startswith("-"):
            return f"{' '.join(path)} has no command {rest[0]!r}"
        return None  # a group alone (or with --help): the CLI prints its commands
    prompted = [p for p in command.params if getattr(p, "prompt", None)]
    saved = [(p.prompt, p.required) for p in prompted]
    for param in prompted:  # what the reader types at a prompt is not on the line
        param.prompt, param.required = None, False
    try:
        with command.make_context(path[-1], rest, parent=parent) as ctx:
            leftover = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if leftover:
            return f"unexpected {leftover}"
    except typer.Exit:
        return None  # --help
    except click.exceptions.MissingParameter as exc:
        return exc.format_message() if whole else None
    except click.exceptions.BadParameter:
        return None  # a placeholder's value, or a file the reader has and this test does not
    except click.core.UsageError as exc:  # an unknown option, an extra argument
        return exc.format_message()
    finally:
        for param, (prompt, required) in zip(prompted, saved, strict=True):
            param.prompt, param.required = prompt, required
    return None


def test_the_docs_show_kosmos_commands() -> None:
    pages = {where.split(":")[0] for where, _, _ in CASES}
    assert len(CASES) > 100 and {"README.md", "docs/deployment.md", "docs/features.md"} <= pages


@pytest.mark.parametrize(("where", "args", "whole"), CASES, ids=[w for w, _, _ in CASES])
def test_every_kosmos_line_in_the_docs_parses(where: str, args: list[str], whole: bool) -> None:
    problem = _parse(args, whole)
    assert problem is None, f"{where}: `kosmos {' '.join(args)}`: {problem}"
