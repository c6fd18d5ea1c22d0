"""Live facts the assistant may look up: read-only calls into the service layer.

Each tool runs in the caller's transaction, after the caller's role on the project
was checked, so it sees exactly what the caller's token may see. Tools are picked
by the words of the question: a tiny model cannot be trusted to call functions, and
a question either names deployments, models, features, datasets or the cache, or it
is a how-to question for the docs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kosmos.platform.context import CallContext
from kosmos.platform.db.models import Role
from kosmos.platform.settings import Settings

_HOW_TO = re.compile(r"^\s*(how (do|can|should|to)|where (do|can)|can i|what command|explain)\b", re.I)


def _keywords(*words: str) -> frozenset[str]:
    return frozenset(" ".join(words).split())


@dataclass(frozen=True)
class Tool:
    """A named, read-only lookup in one project."""

    name: str
    description: str
    keywords: frozenset[str]
    run: Callable[[CallContext, Settings, str], list[dict[str, Any]]]
    summarize: Callable[[str, list[dict[str, Any]]], str] = field(repr=False)


def _deployments(ctx: CallContext, settings: Settings, project: str) -> list[dict[str, Any]]:
    from kosmos.deployment import service

    return [
        {
            "name": d["name"],
            "model": d["model"],
            "status": d["status"],
            "reason": d.get("reason"),
            "traffic": d.get("traffic"),
            "kind": "llm" if (d.get("spec") or {}).get("llm") is not None else "model",
        }
        for d in service.list_(ctx, project)
    ]


def _say_deployments(project: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"Project {project} has no deployments."
    lines = [
        f"- {r['name']} ({r['model']}): {r['status']}" + (f", {r['reason']}" if r["reason"] else "")
        for r in rows
    ]
    unwell = [r["name"] for r in rows if r["status"] in ("degraded", "failed")]
    head = (
        f"Degraded or failed in {project}: {', '.join(unwell)}."
        if unwell
        else f"No deployment of {project} is degraded or failed."
    )
    return head + "\n" + "\n".join(lines)


def _models(ctx: CallContext, settings: Settings, project: str) -> list[dict[str, Any]]:
    """Champion and challenger of each model with their run's metrics; other versions are not read."""
    from kosmos.training import registry

    rows = []
    for model in registry.list_models(settings, project):
        aliases = model["aliases"]
        for alias in ("champion", "challenger"):
            if alias in aliases:
                metrics = registry.version_metrics(settings, project, model["name"], aliases[alias])
                rows.append(
                    {
                        "model": model["name"],
                        "alias": alias,
                        "version": aliases[alias],
                        "metrics": {k: round(v, 4) for k, v in metrics.items()},
                    }
                )
        if not aliases:
            rows.append({"model": model["name"], "alias": None, "version": None, "metrics": {}})
    return rows


def _say_models(project: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"Project {project} has no registered models."
    lines = []
    for r in rows:
        if r["alias"] is None:
            lines.append(f"- {r['model']}: no champion yet")
            continue
        shown = (
            ", ".join(f"{k} {v}" for k, v in sorted(r["metrics"].items()) if k in _HEADLINE) or "no metrics"
        )
        lines.append(f"- {r['model']} {r['alias']} is version {r['version']}: {shown}")
    return f"Models of {project}:\n" + "\n".join(lines)


_HEADLINE = {"roc_auc", "pr_auc", "accuracy", "f1", "precision", "recall", "log_loss", "rmse"}


def _features(ctx: CallContext, settings: Settings, project: str) -> list[dict[str, Any]]:
    from kosmos.features.repo import feature_repo

    repo = feature_repo(settings, project)
    if not repo.exists():
        return []
    described = repo.describe()
    return [{"kind": kind, "names": described[kind]} for kind in ("feature_views", "feature_services")]


def _say_features(project: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"Project {project} has no feature repository."
    return f"Features of {project}:\n" + "\n".join(
        f"- {r['kind'].replace('_', ' ')}: {', '.join(r['names']) or 'none'}" for r in rows
    )


def _datasets(ctx: CallContext, settings: Settings, project: str) -> list[dict[str, Any]]:
    from kosmos.training.datasets import DatasetRepo

    repo = DatasetRepo(settings, project)
    rows = []
    for name in repo.names():
        latest = repo.get(name)
        rows.append(
            {"name": name, "version": latest.version, "rows": latest.rows, "created_at": latest.created_at}
        )
    return rows


def _say_datasets(project: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"Project {project} has no datasets."
    return f"Datasets of {project}:\n" + "\n".join(
        f"- {r['name']}: version {r['version']}, {r['rows']} rows" for r in rows
    )


TOOLS = [
    Tool(
        "deployments",
        "The project's deployments: status (healthy, degraded, failed), reason and traffic.",
        _keywords(
            "deployment deployments deployed degraded healthy failed failing serving traffic",
            "replica replicas endpoint endpoints rollout canary status down",
        ),
        _deployments,
        _say_deployments,
    ),
    Tool(
        "models",
        "Registered models: champion and challenger versions and their holdout metrics.",
        _keywords(
            "model models champion challenger roc-auc roc auc metric metrics accuracy",
            "registered registry precision recall",
        ),
        _models,
        _say_models,
    ),
    Tool(
        "features",
        "Feature views: entities and features.",
        _keywords("feature features view views entity entities"),
        _features,
        _say_features,
    ),
    Tool(
        "datasets",
        "Versioned datasets.",
        _keywords("dataset datasets data"),
        _datasets,
        _say_datasets,
    ),
]


def pick(question: str) -> list[Tool]:
    """Tools whose words the question uses; none for a how-to question (the docs answer it)."""
    if _HOW_TO.match(question):
        return []
    words = set(re.findall(r"[a-z0-9\-]+", question.lower()))
    return [tool for tool in TOOLS if tool.keywords & words]


def run(ctx: CallContext, settings: Settings, project: str, tools: list[Tool]) -> list[dict[str, Any]]:
    """Each tool's rows and a plain summary; the caller must hold a role on ``project``."""
    ctx.project(project, Role.viewer)  # the same 404 as any route for a project you cannot see
    facts = []
    for tool in tools:
        try:
            rows = tool.run(ctx, settings, project)
            facts.append({"tool": tool.name, "summary": tool.summarize(project, rows), "data": rows})
        except Exception as exc:  # one failing lookup must not hide the others or the docs
            facts.append({"tool": tool.name, "summary": f"{tool.name} could not be read: {exc}", "data": []})
    return facts
