"""Feast definitions of the fraud-detection demo project.

A plain Feast repository: `feast apply` and `feast materialize` work on it from
its folder. The two stored views name their pipelines (``pipelines.py``) with the
tag ``kosmos.pipeline``; Kosmos runs them over the project's tables and writes
the parquet files under data/offline/ (paths are relative to the repository).
"""

from datetime import timedelta

import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64, description="A card holder.")
merchant = Entity(
    name="merchant",
    join_keys=["merchant_id"],
    value_type=ValueType.INT64,
    description="A merchant accepting card payments.",
)

user_stats_source = FileSource(
    name="user_transaction_stats_source",
    path="data/offline/user_transaction_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
merchant_stats_source = FileSource(
    name="merchant_stats_source",
    path="data/offline/merchant_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

user_transaction_stats = FeatureView(
    name="user_transaction_stats",
    entities=[user],
    ttl=timedelta(days=7),
    schema=[
        Field(name="txn_count_1h", dtype=Int64, description="Transactions in the hour before."),
        Field(name="txn_count_24h", dtype=Int64, description="Transactions in the 24 h before."),
        Field(name="txn_count_7d", dtype=Int64, description="Transactions in the 7 days before."),
        Field(name="spend_1h", dtype=Float64, description="Amount spent in the hour before."),
        Field(name="spend_24h", dtype=Float64, description="Amount spent in the 24 h before."),
        Field(name="spend_7d", dtype=Float64, description="Amount spent in the 7 days before."),
        Field(name="avg_amount_7d", dtype=Float64, description="Mean amount over 7 days."),
        Field(
            name="foreign_ratio_7d",
            dtype=Float64,
            description="Share of the 7 days' transactions outside the home country.",
        ),
    ],
    source=user_stats_source,
    online=True,
    tags={"owner": "risk", "kosmos.pipeline": "user_transaction_stats"},
)

merchant_stats = FeatureView(
    name="merchant_stats",
    entities=[merchant],
    ttl=timedelta(days=2),
    schema=[
        Field(name="merchant_txn_count_30d", dtype=Int64, description="Transactions in 30 days."),
        Field(
            name="merchant_fraud_rate_30d",
            dtype=Float64,
            description="Share of the 30 days' transactions confirmed as fraud so far.",
        ),
    ],
    source=merchant_stats_source,
    online=True,
    tags={"owner": "risk", "kosmos.pipeline": "merchant_stats"},
)

transaction_request = RequestSource(
    name="transaction_request",
    schema=[Field(name="amount", dtype=Float64)],
)


@on_demand_feature_view(
    sources=[user_transaction_stats, transaction_request],
    schema=[Field(name="amount_vs_user_mean_7d", dtype=Float64)],
)
def transaction_features(inputs: pd.DataFrame) -> pd.DataFrame:
    """The request's amount relative to the user's 7-day mean (1.0 when there is none)."""
    out = pd.DataFrame()
    mean = inputs["avg_amount_7d"].astype("float64")
    out["amount_vs_user_mean_7d"] = (inputs["amount"] / mean.where(mean > 0)).fillna(1.0)
    return out


fraud_detection_v1 = FeatureService(
    name="fraud_detection_v1",
    features=[user_transaction_stats, merchant_stats, transaction_features],
    description="Every feature of the fraud model.",
)
fraud_online_v1 = FeatureService(
    name="fraud_online_v1",
    features=[user_transaction_stats, merchant_stats],
    description="Stored features only: what an online lookup by user and merchant returns.",
)
