"""A user's own Feast repository: merchant chargebacks (an integer and a nullable feature,
rows that arrive late). Shared by the day-two and persona-journey tests."""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)

chargebacks = FileSource(
    name="chargebacks",
    path="data/tables/chargebacks.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

merchant_chargebacks = FeatureView(
    name="merchant_chargebacks",
    entities=[merchant],
    ttl=timedelta(days=90),
    schema=[Field(name="disputes", dtype=Int64), Field(name="disputed_amount", dtype=Float64)],
    source=chargebacks,
    tags={"owner": "risk"},
)

chargebacks_v1 = FeatureService(name="chargebacks_v1", features=[merchant_chargebacks])
