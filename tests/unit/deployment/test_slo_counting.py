"""SLO windows count only the server's failures: a caller's bad input never fails a canary."""

from __future__ import annotations

import asyncio
from typing import Any

from kosmos.deployment.serving import call_version


class _Replica:
    """A model version's handle answering with ``answer`` (or raising it)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.predict = self

    def remote(self, rows: list[dict[str, Any]]) -> Any:
        async def answer() -> Any:
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

        return answer()


def _outcome(answer: Any) -> tuple[dict[str, Any], bool | None]:
    out, _, ok = asyncio.run(call_version(lambda v: _Replica(answer), 3, [{"x": None}], "req-1"))
    return out, ok


def test_the_callers_bad_input_is_neither_a_success_nor_a_failure() -> None:
    problems = [{"field": "inputs[0].x", "reason": "is null"}]
    invalid = {"error": {"type": "invalid_input", "problems": problems}}
    out, ok = _outcome(invalid)
    assert ok is None and out["error"]["type"] == "invalid_input" and out["model_version"] == 3


def test_a_model_that_raises_is_a_failure_and_an_answer_a_success() -> None:
    out, ok = _outcome(RuntimeError("boom"))
    assert ok is False and out["error"]["type"] == "model_error"
    out, ok = _outcome({"predictions": [[0.9, 0.1]]})
    assert ok is True and out["predictions"] == [[0.9, 0.1]]
