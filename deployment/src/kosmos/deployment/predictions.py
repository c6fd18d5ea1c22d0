"""Prediction answers as HTTP responses, shared by the control plane's and the data plane's routes.

Errors travel from the replicas as data (``{"error": {"type", "problems" | "message"}}``),
and become the one JSON error shape here: invalid input is a 422 naming each field, a
model failure a 503 saying what failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse

from kosmos.platform.errors import InvalidInput, ServiceUnavailable, UnknownEntity

BATCH_CHUNK = 500
MAX_BATCH_ROWS = 20_000


def body_schema(max_rows: int) -> dict[str, Any]:
    """The OpenAPI request body of a predict route (the data plane reads the raw JSON, for speed,
    and checks it itself; this is what its docs and the fuzz suite see)."""
    row = {"type": "object", "description": "one row: input field -> value", "additionalProperties": True}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["inputs"],
                        "properties": {
                            "inputs": {"type": "array", "items": row, "minItems": 1, "maxItems": max_rows},
                            "request_id": {"type": "string", "description": "echoed back; made if absent"},
                            "key": {"description": "the A/B bucketing key (else the first row's)"},
                        },
                    }
                }
            },
        }
    }


def answer(result: dict[str, Any]) -> JSONResponse:
    """The replica's answer, or the KosmosError its error stands for."""
    error = result.get("error")
    if error is None:
        return JSONResponse(result)
    if error["type"] == "invalid_input":
        problems = error["problems"]
        raise InvalidInput("; ".join(f"{p['field']}: {p['reason']}" for p in problems[:5]), details=problems)
    if error["type"] == "unknown_entity":
        problems = error["problems"]
        raise UnknownEntity("; ".join(f"{p['field']}: {p['reason']}" for p in problems[:5]), details=problems)
    raise ServiceUnavailable(error.get("message", "the model failed"))


async def predict_batch(
    body: dict[str, Any], predict: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
) -> JSONResponse:
    """Many rows: split into chunks that run concurrently; problems name rows of the whole batch."""
    rows = body.get("inputs")
    if not isinstance(rows, list) or not rows:
        raise InvalidInput.field("inputs", "give a non-empty list of rows")
    if len(rows) > MAX_BATCH_ROWS:
        raise InvalidInput.field("inputs", f"at most {MAX_BATCH_ROWS} rows per batch, got {len(rows)}")
    chunks = [rows[i : i + BATCH_CHUNK] for i in range(0, len(rows), BATCH_CHUNK)]
    # each chunk is one part of the request's decision record (same request id)
    parts = (predict({**body, "inputs": chunk, "_part": n}) for n, chunk in enumerate(chunks))
    results = await asyncio.gather(*parts)
    for offset, result in zip(range(0, len(rows), BATCH_CHUNK), results, strict=True):
        if "error" in result and result["error"]["type"] in ("invalid_input", "unknown_entity"):
            result["error"]["problems"] = [_shift(p, offset) for p in result["error"]["problems"]]
        if "error" in result:
            return answer(result)
    predictions = [p for r in results for p in r["predictions"]]
    versions = sorted({r["model_version"] for r in results})
    classes = next((r["classes"] for r in results if r.get("classes")), None)
    body = {"predictions": predictions, "model_versions": versions, "rows": len(predictions)}
    return JSONResponse({**body, **({"classes": classes} if classes else {})})


def _shift(problem: dict[str, str], offset: int) -> dict[str, str]:
    """inputs[3].x in chunk k is inputs[offset + 3].x of the whole batch."""
    field = problem["field"]
    if field.startswith("inputs[") and "]" in field:
        index, rest = field[len("inputs[") :].split("]", 1)
        if index.isdigit():
            return {**problem, "field": f"inputs[{int(index) + offset}]{rest}"}
    return problem
