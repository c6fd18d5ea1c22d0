"""``kosmos.features`` in a notebook: the feature SDK bound to the session's project."""

from __future__ import annotations

from kosmos.features import sdk
from kosmos.platform.fluent import Namespace, bind

features = Namespace(
    "features",
    "Feature views, online features and point-in-time training sets (Feast).",
    list=bind(sdk.list_features, "list"),
    online=bind(sdk.get_online, "online"),
    training_set=bind(sdk.get_training_set, "training_set"),
    run_pipelines=bind(sdk.run_pipelines),
    statistics=bind(sdk.feature_stats, "statistics"),
    drift=bind(sdk.feature_drift, "drift"),
)
