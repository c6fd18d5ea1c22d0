"""Schemathesis over the control plane's OpenAPI: generated requests with a valid admin token
never get a server error, and every response fits the schema the API documents.

Bounded in time: ``FUZZ_EXAMPLES`` requests per operation, valid and invalid ones mixed, on
the whole API of every installed package (on PostgreSQL and the run's Ray cluster). Project
routes get an existing project, so requests reach the handlers instead of stopping at the
404 of a project nobody created.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))  # about 90 s on 2 cores
PROJECT = "fuzz"
SKIPPED = {
    # revoking tokens by id would revoke the fuzzer's own token (revocation has its own tests)
    ("DELETE", "/api/v1/tokens/{token_id}"),
}


def _operations(schema: Any) -> list[Any]:
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) not in SKIPPED:
            found.append(operation)
    return found


def _strategy(operation: Any) -> Any:
    """Valid requests and invalid ones (wrong types, missing fields, out of range): both must be 2xx/4xx."""
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    return st.one_of(*(operation.as_strategy(mode) for mode in GenerationMode))


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # production's database, once
def test_no_generated_request_gets_a_server_error_or_breaks_its_schema(ray_cluster, platform_env) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    client, admin = platform_env.client, platform_env.admin_token
    auth = {"Authorization": f"Bearer {admin}"}
    created = client.post("/api/v1/projects", json={"name": PROJECT, "team": "risk"}, headers=auth)
    assert created.status_code in (200, 201), created.text
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = _operations(schema)
    paths = {o.path for o in operations}
    for part in ("/deployments", "/features", "/models", "/openai", "/gateway", "/tokens"):  # every package's
        assert any(part in p for p in paths), part
    failures: dict[str, str] = {}
    started = time.monotonic()
    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=_strategy(operation))
        def fuzz(case: Any) -> None:
            if case.path_parameters and "project" in case.path_parameters:
                case.path_parameters["project"] = PROJECT
            response = case.call(headers=auth, timeout=120)  # the assistant's first call builds its index
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as exc:  # a few lines per operation: one run shows all
            failures[f"{operation.method.upper()} {operation.path}"] = " | ".join(
                line.strip() for line in str(exc).strip().splitlines()[:12] if line.strip()
            )[:1500]
    elapsed = time.monotonic() - started
    print(f"fuzzed {len(operations)} operations x {EXAMPLES} examples in {elapsed:.0f}s")
    assert not failures, "\n".join(f"{op}: {why}" for op, why in failures.items())
