"""``kosmos.features`` in a notebook: the feature SDK bound to the session's project."""

from __future__ import annotations

from kosmos.features import sdk
from kosmos.platform.fluent import Namespace

features = Namespace(
    "features",
    "Your feature repository (apply, versions), tables, online features and point-in-time training "
    "sets (Feast).",
    list=sdk.list_features,
    apply=sdk.apply_repository,
    upload_table=sdk.upload_table,
    tables=sdk.list_tables,
    versions=sdk.list_versions,
    online=sdk.get_online,
    training_set=sdk.get_training_set,
    run_pipelines=sdk.run_pipelines,
    schedule=sdk.set_schedule,
    statistics=sdk.feature_stats,
    drift=sdk.feature_drift,
)
