"""REST: ask the assistant about the platform and about a project you can see."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from kosmos.genai.assistant.service import MAX_QUESTION_CHARS, ask, ask_stream
from kosmos.platform.api.deps import CallDep
from kosmos.platform.identity.names import Name

router = APIRouter(tags=["assistant"])


class AskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="What to ask.")
    previous: str | None = Field(
        None,
        max_length=MAX_QUESTION_CHARS,
        description='The question asked just before: a follow-up ("and the challenger?") keeps '
        "its project and its lookups.",
    )
    stream: bool = Field(
        False,
        description="Answer as newline-delimited JSON events: facts, then the model's words as they "
        "come (delta), then done (the answer as it may be shown, or withheld).",
    )


@router.post(
    "/projects/{project}/assistant",
    summary="Answer from the docs (with citations) and the project's live data, worded by the LLM",
)
async def ask_assistant(project: Name, body: AskBody, call: CallDep) -> Any:
    if not body.stream:
        return await ask(call, project, body.question, body.previous)
    events = await ask_stream(call, project, body.question, body.previous)
    return StreamingResponse(
        (json.dumps(event) + "\n" async for event in events), media_type="application/x-ndjson"
    )
