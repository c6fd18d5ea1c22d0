"""The rules every Kosmos object name follows (projects, teams, users, tokens).

Names end up in URLs, file paths, MLflow experiment names and Feast project
names, so they are short lowercase slugs.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

MAX_NAME_LENGTH = 128
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]*")


def name_problem(value: str) -> str | None:
    """Why ``value`` is not a valid name, or None when it is."""
    if value == "":
        return "must not be empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters (got {len(value)})"
    if "/" in value or "\\" in value:
        return "must not contain path separators ('/' or '\\')"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "must not contain control characters"
    if value in (".", ".."):
        return "must not be '.' or '..'"
    if not _SLUG.fullmatch(value):
        return (
            "must start with a lowercase letter or digit and contain only lowercase "
            "letters, digits, '-' and '_'"
        )
    if "--" in value or value.endswith("-"):
        # '--' joins names into one (a Serve app is kosmos--{project}--{deployment}), so no name
        # may contain it or end where it would begin
        return "must not contain '--' or end with '-'"
    return None


def canonical_name(value: str) -> str:
    """The form two names share when a wrapped tool would map them to one (Feast: '-' -> '_')."""
    return value.replace("-", "_")


def check_name(value: str) -> str:
    """Return ``value`` when it is a valid name; raise ValueError naming the rule otherwise."""
    problem = name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Name = Annotated[str, AfterValidator(check_name)]
"""A pydantic field type for object names."""
