"""Online feature lookups and point-in-time training sets, with input checked first.

Feast does the work (``get_online_features``, ``get_historical_features``);
this module turns bad input into errors that name the problem.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
from fastapi.concurrency import run_in_threadpool
from feast import FeatureService
from feast.errors import FeastError
from feast.value_type import ValueType

from kosmos.features.repo import FeatureRepo
from kosmos.platform.errors import InvalidInput

_INT_TYPES = {ValueType.INT32, ValueType.INT64}


def _service(repo: FeatureRepo, name: str) -> FeatureService:
    services = repo.catalog().services  # filled on first use; a new catalog starts empty
    if name in services:
        return services[name]
    store = repo.store()
    try:
        services[name] = found = store.get_feature_service(name, allow_cache=True)
        return found
    except FeastError:
        valid = sorted(s.name for s in store.list_feature_services())
        raise InvalidInput.field(
            "feature_service", f"unknown feature service {name!r}; valid: {valid}"
        ) from None


def _check_refs(repo: FeatureRepo, refs: Sequence[str]) -> None:
    views = repo.catalog().features
    for ref in refs:
        view, _, feature = ref.partition(":")
        if not feature:
            raise InvalidInput.field("features", f"{ref!r} must look like 'feature_view:feature'")
        if view not in views:
            raise InvalidInput.field("features", f"unknown feature view {view!r}; valid: {sorted(views)}")
        if feature not in views[view]:
            raise InvalidInput.field(
                "features", f"feature view {view!r} has no feature {feature!r}; valid: {sorted(views[view])}"
            )


def _join_keys(repo: FeatureRepo) -> dict[str, ValueType]:
    return repo.catalog().join_keys


def _features_arg(
    repo: FeatureRepo, feature_service: str | None, features: Sequence[str] | None
) -> FeatureService | list[str]:
    if bool(feature_service) == bool(features):
        raise InvalidInput.field("feature_service", "give either a feature_service or a features list")
    if feature_service:
        return _service(repo, feature_service)
    _check_refs(repo, list(features or []))
    return list(features or [])


def _check_key_values(key: str, values: Sequence[Any], value_type: ValueType) -> None:
    if value_type in _INT_TYPES:
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int)]
        if bad:
            raise InvalidInput.field(f"entities.{key}", f"entity key must be an integer, got {bad[0]!r}")


def _prepare_online(
    repo: FeatureRepo,
    entities: Mapping[str, Sequence[Any]],
    feature_service: str | None,
    features: Sequence[str] | None,
    request_data: Mapping[str, Sequence[Any]] | None,
) -> tuple[FeatureService | list[str], dict[str, Sequence[Any]]]:
    wanted = _features_arg(repo, feature_service, features)
    if not entities:
        raise InvalidInput.field("entities", "give at least one entity key, e.g. {'user_id': [1]}")
    keys = _join_keys(repo)
    lengths = {len(v) for v in entities.values()} | {len(v) for v in (request_data or {}).values()}
    if len(lengths) != 1 or 0 in lengths:
        raise InvalidInput.field(
            "entities", "every entity and request column needs the same, non-zero number of values"
        )
    for key, values in entities.items():
        if key not in keys:
            raise InvalidInput.field(f"entities.{key}", f"unknown entity key; valid: {sorted(keys)}")
        _check_key_values(key, values, keys[key])
    return wanted, {**entities, **(request_data or {})}


@contextmanager
def _feast_refusals() -> Iterator[None]:
    """What Feast raises for a lookup it cannot do becomes an error that names it."""
    try:
        yield
    except (FeastError, KeyError, ValueError) as exc:
        raise InvalidInput.field("features", f"Feast refused the lookup: {exc}") from exc


def get_online(
    repo: FeatureRepo,
    entities: Mapping[str, Sequence[Any]],
    *,
    feature_service: str | None = None,
    features: Sequence[str] | None = None,
    request_data: Mapping[str, Sequence[Any]] | None = None,
    include_event_timestamps: bool = False,
) -> dict[str, list[Any]]:
    """The latest feature values for each entity row, column by column (with each stored
    feature's event time in epoch seconds as ``<feature>__ts`` when ``include_event_timestamps``)."""
    wanted, rows = _prepare_online(repo, entities, feature_service, features, request_data)
    with _feast_refusals():
        response = repo.store().get_online_features(features=wanted, entity_rows=rows)
        return response.to_dict(include_event_timestamps=include_event_timestamps)


async def get_online_async(
    repo: FeatureRepo,
    entities: Mapping[str, Sequence[Any]],
    *,
    feature_service: str | None = None,
    features: Sequence[str] | None = None,
    request_data: Mapping[str, Sequence[Any]] | None = None,
    include_event_timestamps: bool = False,
) -> dict[str, list[Any]]:
    """:func:`get_online` without a thread hop where the online store reads asynchronously (Redis)."""
    store = repo.store()
    if not store._get_provider().async_supported.online.read:  # Feast's own capability flag
        return await run_in_threadpool(
            get_online,
            repo,
            entities,
            feature_service=feature_service,
            features=features,
            request_data=request_data,
            include_event_timestamps=include_event_timestamps,
        )
    wanted, rows = _prepare_online(repo, entities, feature_service, features, request_data)
    with _feast_refusals():
        response = await store.get_online_features_async(features=wanted, entity_rows=rows)
        return response.to_dict(include_event_timestamps=include_event_timestamps)


def check_entity_frame(repo: FeatureRepo, frame: pd.DataFrame) -> None:
    """An entity frame must be non-empty, with integer join keys and tz-aware event_timestamp."""
    if frame.empty:
        raise InvalidInput.field("entity_df", "the entity frame is empty")
    if "event_timestamp" not in frame.columns:
        raise InvalidInput.field("entity_df.event_timestamp", "missing column")
    ts = frame["event_timestamp"].dtype
    if not isinstance(ts, pd.DatetimeTZDtype):
        reason = (
            "timestamps must be timezone-aware (UTC)"
            if pd.api.types.is_datetime64_dtype(ts)
            else f"expected timestamps, found {ts}"
        )
        raise InvalidInput.field("entity_df.event_timestamp", reason)
    keys = _join_keys(repo)
    present = [k for k in keys if k in frame.columns]
    if not present:
        raise InvalidInput.field("entity_df", f"no entity key column; expected one of {sorted(keys)}")
    for key in present:
        if keys[key] in _INT_TYPES and not pd.api.types.is_integer_dtype(frame[key].dtype):
            raise InvalidInput.field(
                f"entity_df.{key}", f"entity key must be integers, found {frame[key].dtype}"
            )


def integer_features(repo: FeatureRepo, wanted: FeatureService | list[str]) -> list[str]:
    """The requested features whose Feast type is an integer: a training set keeps them integers
    (nullable ``Int64``), where a missing value would otherwise turn the column into floats."""
    from feast.types import Int32, Int64

    store = repo.store()
    if isinstance(wanted, FeatureService):
        fields = [f for p in wanted.feature_view_projections for f in p.features]
    else:
        fields = []
        for ref in wanted:
            view_name, _, name = ref.partition(":")
            try:
                view = store.get_feature_view(view_name, allow_registry_cache=True)
            except FeastError:
                continue  # an on-demand view: computed, typed by its function
            fields += [f for f in view.features if f.name == name]
    return [f.name for f in fields if f.dtype in (Int32, Int64)]


def get_training_set(
    repo: FeatureRepo,
    entity_df: pd.DataFrame,
    feature_service: str | None = None,
    features: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The entity frame joined point-in-time correctly with the features (Feast)."""
    wanted = _features_arg(repo, feature_service, features)
    check_entity_frame(repo, entity_df)
    frame = entity_df.copy()
    # the offline store keeps microseconds; flooring only moves an event earlier, never later
    frame["event_timestamp"] = frame["event_timestamp"].dt.floor("us").astype("datetime64[us, UTC]")
    try:
        job = repo.store().get_historical_features(
            entity_df=frame, features=wanted, filter_by_created_timestamp=True
        )
        result = job.to_df()
        ints = [c for c in integer_features(repo, wanted) if c in result.columns]
        return result.astype(dict.fromkeys(ints, "Int64")) if ints else result
    except (FeastError, KeyError, ValueError) as exc:
        raise InvalidInput.field("entity_df", f"Feast could not build the training set: {exc}") from exc
