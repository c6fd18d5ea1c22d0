"""Look at the demo project's features, fetch them online, and build a training set.

Run it against a running platform (`make run`), with a token of the demo project:

    .venv/bin/python examples/features/online_and_training.py
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from kosmos.features import sdk
from kosmos.platform import KosmosClient

PROJECT = "demo"


def main() -> None:
    with KosmosClient() as client:
        described = sdk.list_features(PROJECT, client=client)
        print("feature views:   ", ", ".join(described["feature_views"]))
        print("feature services:", ", ".join(described["feature_services"]))

        online = sdk.get_online(
            PROJECT,
            {"user_id": [1, 2], "merchant_id": [3, 4]},
            feature_service="fraud_detection_v1",
            request_data={"amount": [25.0, 900.0]},
            client=client,
        )
        print(pd.DataFrame(online).T.to_string())

        now = datetime.now(UTC).replace(microsecond=0)
        entities = pd.DataFrame(
            {
                "user_id": [1, 1, 2],
                "merchant_id": [3, 3, 4],
                "amount": [25.0, 40.0, 900.0],
                "event_timestamp": [now - timedelta(days=3), now - timedelta(hours=1), now],
            }
        )
        training = sdk.get_training_set(
            PROJECT, entities, feature_service="fraud_detection_v1", client=client
        )
        print(
            training[
                ["user_id", "event_timestamp", "txn_count_24h", "spend_7d", "amount_vs_user_mean_7d"]
            ].to_string(index=False)
        )

        stats = sdk.feature_stats(PROJECT, "user_transaction_stats", client=client)
        print(f"user_transaction_stats: {stats['rows']:,} rows, latest {stats['latest_event']}")
        drift = sdk.feature_drift(PROJECT, "user_transaction_stats", client=client)
        print("drifted features:", drift["drifted"] or "none")


if __name__ == "__main__":
    main()
