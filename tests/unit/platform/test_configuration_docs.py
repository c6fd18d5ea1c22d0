"""docs/configuration.md's "Every setting" table is every setting, as the code describes it.

The table is rendered from ``Settings`` (names, variables, defaults, descriptions); when a
setting changes, rewrite it with ``python tests/unit/platform/test_configuration_docs.py``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from kosmos.platform.settings import Settings

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
TABLE = re.compile(r"(## Every setting\n\n)(\|.*?\n)(\n## )", re.S)


def _default(field: Any, name: str) -> str:
    if name == "home":
        return "`~/.kosmos`"
    value = field.get_default(call_default_factory=True)
    if value is None or isinstance(value, SecretStr):
        return "unset"
    return f"`{value}`"


def _rows(model: type[BaseModel], prefix: list[str]) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            rows += _rows(kind, [*prefix, name])
            continue
        dotted = ".".join([*prefix, name])
        variable = "KOSMOS_" + "__".join([*prefix, name]).upper()
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{dotted}` | `{variable}` | {_default(field, name)} | {meaning} |")
    return rows


def render() -> str:
    head = "| setting | environment variable | default | meaning |\n| --- | --- | --- | --- |\n"
    return head + "\n".join(_rows(Settings, [])) + "\n"


def test_every_setting_is_in_the_table_as_the_code_describes_it() -> None:
    found = TABLE.search(DOC.read_text())
    assert found, "docs/configuration.md lost its '## Every setting' table"
    assert found.group(2) == render(), "rewrite it: python tests/unit/platform/test_configuration_docs.py"


def test_every_field_has_a_description() -> None:
    assert not [r for r in _rows(Settings, []) if r.endswith("|  |")]


if __name__ == "__main__":
    text = DOC.read_text()
    DOC.write_text(TABLE.sub(lambda m: m.group(1) + render() + m.group(3), text, count=1))
    print(f"rewrote {DOC}", file=sys.stderr)
