"""Online features joined onto request rows: whoever meets the request first does it once.

The data-plane ingress joins before it calls a version's replica directly; the traffic
router joins during a rollout (and for the control plane's compatibility routes). The
feature service's entities and request inputs are read from Feast's registry at most
every ``REGISTRY_TTL_S`` per joiner (a re-applied repository is seen then), never per request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kosmos.platform.settings import Settings

REGISTRY_TTL_S = 30.0


class BadRows(Exception):
    """Rows that break the model's or the feature service's rules, one problem per field."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['field']}: {p['reason']}" for p in problems))
        self.problems = problems


class UnknownEntities(Exception):
    """Rows whose entity key has no online features at all: a typo in an id must not get a
    plausible score made of imputed values (policy ``missing_entities: reject``)."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{p['field']}: {p['reason']}" for p in problems))
        self.problems = problems


MISSING_ENTITY_POLICIES = ("reject", "impute")


@dataclass
class Joined:
    """What a join put into the rows: the feature columns, and where each value came from."""

    used: list[str] = field(default_factory=list)
    values: dict[str, list[Any]] = field(default_factory=dict)
    """Feast's answer, column by column (entity keys, features, ``<feature>__ts`` event times)."""
    views: dict[str, str] = field(default_factory=dict)
    """Feature column -> the feature view (or on-demand view) that holds it."""
    imputed: list[dict[str, Any]] = field(default_factory=list)
    """Entities with no online features that the model got missing values for (policy impute)."""

    def provenance(self) -> dict[str, dict[str, Any]]:
        """Per feature column: its view, its values by row, and each value's event time (epoch
        seconds; None for on-demand features, computed from the request). Feast's online read
        returns no created timestamp, so none is kept."""
        return {
            column: {
                "view": self.views.get(column),
                "values": self.values[column],
                "event_timestamps": self.values.get(f"{column}__ts"),
            }
            for column in self.used
        }


class FeatureJoin:
    """Joins ``feature_service``'s online values onto rows (request values win)."""

    def __init__(
        self,
        settings: Settings,
        project: str,
        feature_service: str,
        model_columns: Callable[[], Awaitable[set[str]]],
        missing_entities: str = "reject",
    ) -> None:
        self.settings, self.project, self.feature_service = settings, project, feature_service
        self.missing_entities = missing_entities
        self._model_columns = model_columns
        self._view_keys: dict[str, list[str]] | None = None
        self._keys: set[str] | None = None
        self._request_inputs: list[str] | None = None
        self._views: dict[str, str] | None = None
        self._read_at = 0.0

    def _repo(self) -> Any:
        from kosmos.features.repo import feature_repo

        return feature_repo(self.settings, self.project)

    def _entity_keys(self, repo: Any) -> set[str]:
        if self._keys is None:
            self._keys = {e.join_key for e in repo.store().list_entities(allow_cache=True)}
        return self._keys

    def _request_fields(self, repo: Any) -> list[str]:
        """Request-time inputs the service's on-demand views read (e.g. a transaction amount)."""
        if self._request_inputs is None:
            store = repo.store()
            service = store.get_feature_service(self.feature_service, allow_cache=True)
            fields: list[str] = []
            for projection in service.feature_view_projections:
                try:
                    view = store.get_on_demand_feature_view(projection.name, allow_registry_cache=True)
                except Exception:
                    continue  # a stored feature view: no request inputs
                for source in view.source_request_sources.values():
                    fields += [f.name for f in source.schema if f.name not in fields]
            self._request_inputs = fields
        return self._request_inputs

    def _feature_views(self, repo: Any) -> dict[str, str]:
        """Feature column -> its view, from the feature service's projections."""
        if self._views is None:
            service = repo.store().get_feature_service(self.feature_service, allow_cache=True)
            self._views = {
                f.name: p.name_to_use() for p in service.feature_view_projections for f in p.features
            }
        return self._views

    async def __call__(self, rows: list[dict[str, Any]]) -> Joined:
        """Join in place; returns what was joined. Raises BadRows or ValueError."""
        from kosmos.features.serving import get_online_async

        repo = self._repo()
        if time.monotonic() - self._read_at > REGISTRY_TTL_S:
            self._keys, self._request_inputs, self._views, self._view_keys = None, None, None, None
            self._read_at = time.monotonic()
        keys = self._entity_keys(repo)
        present = [k for k in keys if all(k in row for row in rows)]
        if not present:
            raise ValueError(f"each row needs the entity keys of {self.feature_service}: {sorted(keys)}")
        request = self._request_fields(repo)
        problems = [
            {"field": f"inputs[{i}].{f}", "reason": f"must be a finite number, got {row.get(f)!r}"}
            for i, row in enumerate(rows)
            for f in request
            if row.get(f) is not None and not _finite_number(row[f])
        ]
        columns = await self._model_columns()
        service = self.feature_service
        problems += [
            {
                "field": f"inputs[{i}].{name}",
                "reason": f"not an input of the model or an entity key of {service}",
            }
            for i, row in enumerate(rows)
            for name in row
            if name not in columns and name not in keys and not name.startswith("_")
        ]
        if problems:
            raise BadRows(problems)
        values = await get_online_async(
            repo,
            {k: [row[k] for row in rows] for k in present},
            feature_service=self.feature_service,
            request_data={f: [row.get(f) for row in rows] for f in request} or None,
            include_event_timestamps=True,
        )
        used = [c for c in values if c not in keys and not c.endswith("__ts")]
        unknown = self._unknown(repo, rows, values)
        if unknown and self.missing_entities != "impute":
            raise UnknownEntities(unknown)
        for i, row in enumerate(rows):
            for column in used:
                row.setdefault(column, values[column][i])
            for k in keys:
                row.pop(k, None)
        return Joined(used, values, self._feature_views(repo), unknown)

    def _stored_view_keys(self, repo: Any) -> dict[str, list[str]]:
        """Each stored view of the service -> its join keys (on-demand views have none)."""
        if self._view_keys is None:
            store = repo.store()
            service = store.get_feature_service(self.feature_service, allow_cache=True)
            found: dict[str, list[str]] = {}
            for projection in service.feature_view_projections:
                try:
                    view = store.get_feature_view(projection.name, allow_registry_cache=True)
                except Exception:
                    continue  # an on-demand view: computed from the request
                keys = [projection.join_key_map.get(c.name, c.name) for c in view.entity_columns]
                found[projection.name_to_use()] = keys
            self._view_keys = found
        return self._view_keys

    def _unknown(
        self, repo: Any, rows: list[dict[str, Any]], values: dict[str, list[Any]]
    ) -> list[dict[str, Any]]:
        """Entity values for which a stored view has no online row at all (every feature of the
        view without an event time), one problem per row and key."""
        views = self._feature_views(repo)
        problems: list[dict[str, Any]] = []
        seen: set[tuple[int, str]] = set()
        for view, join_keys in self._stored_view_keys(repo).items():
            stamps = [values[f"{c}__ts"] for c, v in views.items() if v == view and f"{c}__ts" in values]
            if not stamps:
                continue
            for i, row in enumerate(rows):
                if any(s[i] for s in stamps):  # None or 0: Feast found no row for this entity
                    continue
                for key in join_keys:
                    if key in row and (i, key) not in seen:
                        seen.add((i, key))
                        problems.append({
                            "field": f"inputs[{i}].{key}", "key": key, "value": row[key], "view": view,
                            "reason": f"unknown {key} {row[key]!r}: no online features in {view}",
                        })  # fmt: skip
        return problems


def _finite_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
