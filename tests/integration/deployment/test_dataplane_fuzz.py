"""Schemathesis over the data plane's OpenAPI, against the live ingress on Ray Serve: generated
requests with a valid token never get a server error, and every response fits its schema.

The operations come from the data plane's own app (``create_dataplane_app().openapi()``, the
same routes the ingress serves); the requests go over HTTP to the Serve port, through
``AuthFirst``, the routing table, the online-feature join and a real model replica
(``fraud-main``). Valid and invalid requests are mixed: both must be answered 2xx/4xx.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx
import pytest

from kosmos.platform import KosmosClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
PROJECT, DEPLOYMENT = "demo", "fraud-main"


def _strategy(operation: Any) -> Any:
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    return st.one_of(*(operation.as_strategy(mode) for mode in GenerationMode))


def test_no_generated_request_to_the_data_plane_gets_a_server_error(deploy_env: dict[str, Any]) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    from kosmos.platform.api.dataplane import create_dataplane_app

    with KosmosClient(url=deploy_env["url"], token=deploy_env["admin"]) as c:
        deploy_env["fraud_main"](c)
        base_url = c.dataplane_url
    spec = create_dataplane_app(deploy_env["settings"], deploy_env["database"]).openapi()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [r.ok() for r in schema.get_all_operations()]
    predict = [o for o in operations if o.path.endswith("/predict")]
    assert predict and "requestBody" in predict[0].definition.raw  # bodies are generated, not empty
    auth = {"Authorization": f"Bearer {deploy_env['admin']}"}
    failures: dict[str, str] = {}
    answered: dict[str, dict[int, int]] = {}
    started = time.monotonic()
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=_strategy(operation))
        def fuzz(case: Any) -> None:
            if case.path_parameters:
                if "project" in case.path_parameters:
                    case.path_parameters["project"] = PROJECT
                if "name" in case.path_parameters:
                    case.path_parameters["name"] = DEPLOYMENT
            response = case.call(base_url=base_url, headers=auth, timeout=60)
            codes = answered.setdefault(label, {})  # noqa: B023 - fuzz() runs inside this iteration
            codes[response.status_code] = codes.get(response.status_code, 0) + 1
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as exc:
            failures[f"{operation.method.upper()} {operation.path}"] = " | ".join(
                line.strip() for line in str(exc).strip().splitlines()[:12] if line.strip()
            )[:1500]
    print(f"fuzzed {len(operations)} data-plane operations x {EXAMPLES} in {time.monotonic() - started:.0f}s")
    for op, codes in answered.items():
        print(f"{op}: {dict(sorted(codes.items()))}")
    assert not failures, "\n".join(f"{op}: {why}" for op, why in failures.items())


def _near_valid_rows(env: dict[str, Any]) -> Any:
    """Rows shaped like the model's inputs, whose values range from real ones to hostile ones:
    where generic generation rarely reaches (the feature join, the model itself)."""
    from hypothesis import strategies as st

    known = env["rows"]
    ids = st.one_of(
        st.sampled_from([int(v) for v in known.user_id]),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5),
        st.none(),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
    )
    amounts = st.one_of(
        st.floats(min_value=0, max_value=5000),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.text(max_size=5),
        st.none(),
    )
    real = st.fixed_dictionaries(
        {
            "user_id": st.sampled_from([int(v) for v in known.user_id]),
            "merchant_id": st.sampled_from([int(v) for v in known.merchant_id]),
            "amount": st.floats(min_value=0, max_value=5000),
        }
    )
    hostile = st.fixed_dictionaries(
        {"user_id": ids, "merchant_id": ids, "amount": amounts}, optional={"extra": st.text(max_size=3)}
    )
    return st.lists(st.one_of(real, real, hostile), min_size=1, max_size=3)


def test_real_to_hostile_rows_get_an_answer_or_a_4xx_naming_the_field(deploy_env: dict[str, Any]) -> None:
    from hypothesis import HealthCheck, Phase, given, settings

    with KosmosClient(url=deploy_env["url"], token=deploy_env["admin"]) as c:
        deploy_env["fraud_main"](c)
        url = f"{c.dataplane_url}/{PROJECT}/{DEPLOYMENT}/predict"
    auth = {"Authorization": f"Bearer {deploy_env['admin']}"}
    answered: dict[int, int] = {}
    client = httpx.Client(headers=auth, timeout=60)

    @settings(
        max_examples=EXAMPLES * 4,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(rows=_near_valid_rows(deploy_env))
    def fuzz(rows: list[dict[str, Any]]) -> None:
        body = json.dumps({"inputs": rows}, allow_nan=True)  # NaN/Infinity: what a sloppy client sends
        response = client.post(url, content=body, headers={"Content-Type": "application/json"})
        answered[response.status_code] = answered.get(response.status_code, 0) + 1
        # 404 unknown_entity: a well-formed id that has no features (missing_entities: reject)
        said = f"{rows}: {response.status_code} {response.text[:300]}"
        assert response.status_code in (200, 404, 422), said
        if response.status_code in (404, 422):
            error = response.json()["error"]
            assert response.status_code == 422 or error["code"] == "unknown_entity", response.text
            fields = [d["field"] for d in error["details"]]
            assert fields and all(f.startswith(("inputs", "body", "features")) for f in fields), response.text
        else:
            assert len(response.json()["predictions"]) == len(rows)

    try:
        fuzz()
    finally:
        client.close()
    print(f"near-valid rows: {dict(sorted(answered.items()))}")
    assert answered.get(200, 0) > 0 and answered.get(422, 0) > 0, answered  # both sides were reached
