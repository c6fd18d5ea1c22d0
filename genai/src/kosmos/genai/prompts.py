"""Prompt management on the MLflow prompt registry (Kosmos keeps no registry of its own).

A project's prompt ``support`` is the MLflow prompt ``{project}.support``: versions with
commit messages, aliases such as ``production`` and ``staging``, templates with
``{{variables}}``. Kosmos adds what a platform needs around it: project scoping,
strict rendering (a missing or an extra variable is an error), diffs, and A/B splits
between an alias's version and a challenger, kept as a tag on the MLflow prompt.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from kosmos.platform.errors import InvalidInput, NotFound

REFERENCE = re.compile(
    r"^(?:prompts:/)?(?P<name>[A-Za-z0-9][A-Za-z0-9_-]{0,99})(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>\d+))?$"
)
SPLIT_TAG = "kosmos.split."
MAX_TEMPLATE = 100_000
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Resolved:
    """A prompt version chosen for one request."""

    name: str
    version: int
    reference: str
    """As the caller wrote it, normalised: ``name@alias`` or ``name/3``."""
    template: str | list[dict[str, Any]]
    arm: str | None = None
    """In an A/B split: ``a`` (the alias's version) or ``b`` (the challenger)."""

    def render(self, values: dict[str, Any]) -> str | list[dict[str, Any]]:
        return render(self.template, values, f"{self.name}/{self.version}")


def variables_of(template: str | list[dict[str, Any]]) -> set[str]:
    texts = [template] if isinstance(template, str) else [str(m.get("content", "")) for m in template]
    return {v for t in texts for v in _VARIABLE.findall(t)}


def render(template: str | list[dict[str, Any]], values: dict[str, Any], what: str = "the prompt") -> Any:
    """Fill ``{{variables}}``; a missing or an unknown variable is a InvalidInput that names it."""
    expected = variables_of(template)
    missing, extra = sorted(expected - values.keys()), sorted(values.keys() - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing variables: {', '.join(missing)}")
        if extra:
            parts.append(f"unknown variables: {', '.join(extra)}")
        raise InvalidInput(
            f"{what} takes {', '.join(sorted(expected)) or 'no variables'}; " + "; ".join(parts)
        )

    def fill(text: str) -> str:
        return _VARIABLE.sub(lambda m: str(values[m.group(1)]), text)

    if isinstance(template, str):
        return fill(template)
    return [{**m, "content": fill(str(m.get("content", "")))} for m in template]


def parse_reference(reference: str) -> tuple[str, str | None, int | None]:
    """``prompts:/name@alias``, ``prompts:/name/3``, ``name@alias`` or ``name`` (latest)."""
    match = REFERENCE.match(reference.strip())
    if not match:
        raise InvalidInput(
            f"bad prompt reference {reference!r}; use prompts:/name@alias or prompts:/name/version"
        )
    version = match.group("version")
    return match.group("name"), match.group("alias"), int(version) if version else None


class PromptRegistry:
    """A project's prompts on the MLflow prompt registry behind ``tracking_uri``."""

    def __init__(self, tracking_uri: str, alias_cache_s: float = 5.0) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.alias_cache_s = alias_cache_s
        self._resolved: dict[tuple[str, str, str], tuple[float, Any, dict[str, str]]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def mlflow_name(project: str, name: str) -> str:
        return f"{project}.{name}"

    def _missing(
        self, project: str, name: str, alias: str | None = None, version: int | None = None
    ) -> NotFound:
        what = f"prompt '{name}@{alias}'" if alias else f"prompt '{name}'"
        if version is not None:
            what = f"version {version} of {what}"
        return NotFound(f"{what} does not exist in project {project!r}")

    def register(
        self,
        project: str,
        name: str,
        template: str | list[dict[str, Any]],
        commit_message: str,
        tags: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A new version of ``name`` (the prompt is created on its first version)."""
        parse_reference(name)
        if not template or len(json.dumps(template)) > MAX_TEMPLATE:
            raise InvalidInput(f"a prompt template must be 1 to {MAX_TEMPLATE} characters")
        if isinstance(template, list) and any(
            not isinstance(m, dict) or m.get("role") not in {"system", "user", "assistant"} for m in template
        ):
            raise InvalidInput("a chat template is a list of {role: system|user|assistant, content}")
        version = self.client.register_prompt(
            name=self.mlflow_name(project, name), template=template, commit_message=commit_message, tags=tags
        )
        return self._version_info(project, name, version)

    def _version_info(
        self, project: str, name: str, v: Any, aliases: list[str] | None = None
    ) -> dict[str, Any]:
        return {
            "name": name,
            "version": int(v.version),
            "template": v.template,
            "variables": sorted(variables_of(v.template)),
            "commit_message": v.commit_message,
            "aliases": sorted(aliases if aliases is not None else (v.aliases or [])),
            "created_at": v.creation_timestamp,
            "tags": {k: val for k, val in (v.tags or {}).items() if not k.startswith("mlflow.")},
        }

    def list(self, project: str) -> list[dict[str, Any]]:
        prefix = self.mlflow_name(project, "")
        found = self.client.search_prompts(filter_string=f"name LIKE '{prefix}%'", max_results=1000)
        out = []
        for p in found:
            if not p.name.startswith(prefix):
                continue
            name = p.name[len(prefix) :]
            latest = self.client.get_prompt_version(p.name, self._latest(p.name))
            out.append(
                {
                    "name": name,
                    "latest_version": int(latest.version),
                    "aliases": self._aliases(p.name),
                    "commit_message": latest.commit_message,
                }
            )
        return sorted(out, key=lambda p: p["name"])

    def _latest(self, full: str) -> int:
        return max(int(v.version) for v in self._versions(full))

    def _versions(self, full: str) -> list[Any]:
        return list(self.client.search_prompt_versions(full, max_results=1000))

    def _aliases(self, full: str, versions: list[Any] | None = None) -> dict[str, int]:
        """Alias -> version (MLflow keeps aliases on the versions, not on the prompt)."""
        out: dict[str, int] = {}
        for v in versions if versions is not None else self._versions(full):
            for alias in self.client.get_prompt_version(full, v.version).aliases or []:
                out[alias] = int(v.version)
        return dict(sorted(out.items()))

    def show(self, project: str, name: str) -> dict[str, Any]:
        """Every version of the prompt, newest first, with aliases and any A/B splits."""
        full = self.mlflow_name(project, name)
        prompt = self.client.get_prompt(full)
        if prompt is None:
            raise self._missing(project, name)
        versions = self._versions(full)
        aliases = self._aliases(full, versions)
        by_version: dict[int, list[str]] = {}
        for alias, v in aliases.items():
            by_version.setdefault(v, []).append(alias)
        return {
            "name": name,
            "aliases": aliases,
            "splits": self._splits(prompt),
            "versions": [
                self._version_info(project, name, v, by_version.get(int(v.version), []))
                for v in sorted(versions, key=lambda v: -int(v.version))
            ],
        }

    @staticmethod
    def _splits(prompt: Any) -> dict[str, Any]:
        tags = getattr(prompt, "tags", None) or {}
        return {k[len(SPLIT_TAG) :]: json.loads(v) for k, v in tags.items() if k.startswith(SPLIT_TAG)}

    def version(self, project: str, name: str, version: int | None = None, alias: str | None = None) -> Any:
        full = self.mlflow_name(project, name)
        try:
            if alias is not None:
                return self.client.get_prompt_version_by_alias(full, alias)
            return self.client.get_prompt_version(
                full, version if version is not None else self._latest(full)
            )
        except Exception as exc:
            if (
                "RESOURCE_DOES_NOT_EXIST" in str(exc)
                or "not found" in str(exc).lower()
                or isinstance(exc, ValueError)
            ):
                raise self._missing(project, name, alias, version) from None
            raise

    def diff(self, project: str, name: str, a: int, b: int) -> str:
        """A unified diff of two versions' templates."""
        old, new = (self.version(project, name, v).template for v in (a, b))
        text = lambda t: t if isinstance(t, str) else json.dumps(t, indent=2)  # noqa: E731
        return "".join(
            difflib.unified_diff(
                text(old).splitlines(keepends=True),
                text(new).splitlines(keepends=True),
                fromfile=f"{name}/{a}",
                tofile=f"{name}/{b}",
            )
        )

    def set_alias(self, project: str, name: str, alias: str, version: int) -> int | None:
        """Point ``alias`` at ``version``; returns the version it pointed at before (None if new)."""
        self.version(project, name, version)  # NotFound names the version
        full = self.mlflow_name(project, name)
        before = self._aliases(full).get(alias)
        self.client.set_prompt_alias(full, alias, version)
        self._forget(full)
        return before

    def set_split(self, project: str, name: str, alias: str, version: int | None, weight: float) -> None:
        """Send ``weight`` of the traffic for ``name@alias`` to ``version`` (None ends the split)."""
        full = self.mlflow_name(project, name)
        if version is None:
            prompt = self.client.get_prompt(full)
            if prompt is None or SPLIT_TAG + alias not in (prompt.tags or {}):
                raise NotFound(f"prompt '{name}@{alias}' has no split in project {project!r}")
            self.client.delete_prompt_tag(full, SPLIT_TAG + alias)
        else:
            if not 0 < weight < 1:
                raise InvalidInput("a split's weight is between 0 and 1 (exclusive)")
            self.version(project, name, alias=alias)
            self.version(project, name, version)
            self.client.set_prompt_tag(
                full, SPLIT_TAG + alias, json.dumps({"version": version, "weight": weight})
            )
        self._forget(full)

    def _forget(self, full: str) -> None:
        with self._lock:
            self._resolved = {k: v for k, v in self._resolved.items() if k[0] != full}

    def resolve(self, project: str, reference: str, sticky: str) -> Resolved:
        """The version a request uses. An alias is resolved through a short cache
        (``alias_cache_s``); a split sends a stable share of ``sticky`` keys to the challenger."""
        name, alias, version = parse_reference(reference)
        full = self.mlflow_name(project, name)
        key = (full, alias or "", str(version or ""))
        now = time.monotonic()
        with self._lock:
            cached = self._resolved.get(key)
        if cached is None or cached[0] < now:
            pv = self.version(project, name, version, alias)
            splits: dict[str, Any] = {}
            if alias:
                prompt = self.client.get_prompt(full)
                splits = self._splits(prompt).get(alias) or {}
            cached = (now + self.alias_cache_s, pv, splits)
            with self._lock:
                self._resolved[key] = cached
        _, pv, split = cached
        label = f"{name}@{alias}" if alias else f"{name}/{int(pv.version)}"
        if split:
            share = int(hashlib.sha256(f"{full}|{sticky}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            if share < split["weight"]:
                b = self.version(project, name, int(split["version"]))
                return Resolved(name, int(b.version), label, b.template, "b")
            return Resolved(name, int(pv.version), label, pv.template, "a")
        return Resolved(name, int(pv.version), label, pv.template)
