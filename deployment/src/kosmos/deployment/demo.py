"""`kosmos up`: deploy the demo fraud model (once) and print a request that calls it."""

from __future__ import annotations

import json
import logging

from kosmos.deployment import sdk
from kosmos.platform.client import KosmosClient
from kosmos.platform.errors import NotFound
from kosmos.platform.settings import Settings

log = logging.getLogger(__name__)
PROJECT, NAME, MODEL, SERVICE = "demo", "fraud-detector", "fraud-detector", "fraud_detection_v1"


def example_request(settings: Settings) -> str:
    body = {"inputs": [{"user_id": 1, "merchant_id": 1, "amount": 42.5}]}
    url = f"{settings.dataplane_url}/{PROJECT}/{NAME}/predict"
    return (
        f"curl -s -X POST {url} \\\n"
        f'  -H "Authorization: Bearer $(jq -r .token {settings.credentials_path})" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d '{json.dumps(body)}'"
    )


def deploy_demo_model(settings: Settings) -> None:
    """Create the demo deployment unless it exists; it follows the `champion` alias."""
    if not settings.deployment.demo:
        return
    with KosmosClient(settings=settings) as client:
        try:
            sdk.status(PROJECT, NAME, client=client)
        except NotFound:
            try:
                sdk.create(
                    PROJECT,
                    NAME,
                    MODEL,
                    version="champion",
                    feature_service=SERVICE,
                    client=client,
                )
            except NotFound as exc:  # no champion yet: the training bootstrap did not register one
                log.warning("demo deployment skipped: %s", exc)
                return
    print(f"\n  Demo model deployment: {PROJECT}/{NAME} (kosmos deploy status {NAME} -p {PROJECT})")
    print(
        "  Example request:\n" + "\n".join("    " + line for line in example_request(settings).splitlines())
    )
