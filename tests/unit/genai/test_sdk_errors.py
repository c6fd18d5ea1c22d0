"""The SDK's LLM calls raise Kosmos errors (docs/sdk.md), built from the openai client's own."""

from __future__ import annotations

import httpx
import openai
import pytest

from kosmos.genai.sdk import kosmos_error
from kosmos.platform.errors import ConnectionFailed, Forbidden, InvalidInput, NotFound, ServiceUnavailable

REQUEST = httpx.Request("POST", "http://dataplane/demo/openai/v1/chat/completions")


def _status(cls: type[openai.APIStatusError], code: int, message: str) -> openai.APIStatusError:
    response = httpx.Response(code, request=REQUEST, headers={"x-request-id": "req-1"})
    return cls(message, response=response, body={"message": message, "type": "invalid_request_error"})


def test_a_project_without_the_llm_gets_not_found_with_how_to_deploy_one() -> None:
    error = kosmos_error(
        _status(openai.NotFoundError, 404, "no model 'assistant-llm'"), "acme", "assistant-llm"
    )
    assert isinstance(error, NotFound) and error.request_id == "req-1"
    assert "no model 'assistant-llm'" in str(error)
    assert "kosmos deploy create assistant-llm -p acme" in str(error) and "--llm" in str(error)


@pytest.mark.parametrize(
    ("cls", "code", "kind"),
    [
        (openai.BadRequestError, 400, InvalidInput),
        (openai.UnprocessableEntityError, 422, InvalidInput),
        (openai.PermissionDeniedError, 403, Forbidden),
        (openai.RateLimitError, 429, ServiceUnavailable),
        (openai.InternalServerError, 503, ServiceUnavailable),
    ],
)
def test_each_gateway_error_becomes_the_matching_kosmos_error(cls, code, kind) -> None:
    error = kosmos_error(_status(cls, code, "messages.0.content: required"), "acme", "chat")
    assert type(error) is kind and "messages.0.content: required" in str(error)


def test_an_unreachable_gateway_is_a_connection_failure() -> None:
    error = kosmos_error(openai.APIConnectionError(request=REQUEST), "acme", "chat")
    assert isinstance(error, ConnectionFailed)
