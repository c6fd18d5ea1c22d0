"""REST: ask the assistant about the platform and about a project you can see."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from kosmos.genai.assistant.service import MAX_QUESTION_CHARS, ask
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


@router.post(
    "/projects/{project}/assistant",
    summary="Answer from the docs (with citations) and the project's live data, worded by the LLM",
)
async def ask_assistant(project: Name, body: AskBody, call: CallDep) -> dict[str, Any]:
    return await ask(call, project, body.question, body.previous)
