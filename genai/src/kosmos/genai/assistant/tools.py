"""Live facts the assistant may look up: read-only calls into the service layer.

Each tool runs in the caller's transaction, after the caller's role on the project
was checked, so it sees exactly what the caller's token may see. Tools are picked by a
nearest-example classifier on the question's embedding (the gateway's local MiniLM): each
tool, and "none" (a how-to question the docs answer), has example questions; the question
gets the tools whose nearest example is about as near as the nearest of all (``MARGIN``), also
when that one is a how-to example (the docs come with every answer, so a lookup too many costs a
facts box and one too few the answer), and none when nothing is near (``MIN_SIMILARITY``). A tiny model cannot
be trusted to call functions, and words alone miss "Is anything broken in production?".
Measured on held-out questions: ``bench/assistant_tools.py``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kosmos.platform.context import CallContext
from kosmos.platform.db.models import Role
from kosmos.platform.settings import Settings

MIN_SIMILARITY = 0.35
"""A question whose nearest example is farther than this gets no lookup (the docs answer it)."""
MARGIN = 0.06
"""Tools whose nearest example is within this of the best one's are all picked (a question about
two things, "is the scoring model healthy and what is its AUC?")."""
HOW_TO = (
    "How do I deploy a model with a canary?",
    "How do I create a token?",
    "How do I register a prompt?",
    "Where do I configure the database?",
    "How do I train a model in a notebook?",
    "What does the semantic cache do?",
    "How do I add my own data to the feature store?",
    "Can I use my own LLM?",
    "What is the difference between shadow and canary rollouts?",
    "How do I give a colleague access to my project?",
)
"""Questions the docs answer: near one of these, no lookup runs."""


@dataclass(frozen=True)
class Tool:
    """A named, read-only lookup in one project."""

    name: str
    description: str
    examples: tuple[str, ...]
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
    unwell = [r["name"] for r in rows if r["status"] in ("degraded", "unstable", "failed")]
    head = (
        f"Degraded, unstable or failed in {project}: {', '.join(unwell)}."
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
                        "trained": _training(settings, project, model["name"], aliases[alias]),
                    }
                )
        if not aliases:
            rows.append({"model": model["name"], "alias": None, "version": None, "metrics": {}})
    return rows


def _training(settings: Settings, project: str, model: str, version: int) -> dict[str, Any] | None:
    """How a version was trained: its run, parameters, dataset version, features and commit."""
    from kosmos.training import registry

    try:
        found = registry.lineage(settings, project, model, str(version))
    except Exception:  # lineage is a bonus to the metrics: a run deleted since leaves it out
        return None
    run, dataset, features = found["run"], found["dataset"], found["features"]
    return {
        "run": run.get("run_name") or run["run_id"],
        "run_id": run["run_id"],
        "entry_point": run.get("entry_point"),
        "params": dict(list((run.get("params") or {}).items())[:8]),
        "dataset": f"{dataset['name']} v{dataset['version']} ({dataset['rows']} rows)" if dataset else None,
        "features": (features or {}).get("feature_service"),
        "commit": (found["code"].get("commit") or "")[:10] or None,
    }


def _say_training(trained: dict[str, Any] | None) -> str:
    if not trained:
        return ""
    params = ", ".join(f"{k} {v}" for k, v in trained["params"].items() if len(str(v)) <= 40)
    parts = [f"trained in run {trained['run']}"]
    parts += [f"with {params}"] if params else []
    parts += [f"on dataset {trained['dataset']}"] if trained["dataset"] else []
    parts += [f"features from {trained['features']}"] if trained["features"] else []
    parts += [f"code commit {trained['commit']}"] if trained["commit"] else []
    return "; " + ", ".join(parts)


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
        trained = _say_training(r.get("trained"))
        lines.append(f"- {r['model']} {r['alias']} is version {r['version']}: {shown}{trained}")
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
        (
            "Which deployments are degraded?",
            "Is the churn-scorer deployment healthy?",
            "What is the status of my deployments?",
            "Show the traffic split of the canary",
            "Are any replicas down?",
            "Why did my deployment fail?",
            "Which endpoints are serving?",
            "Is the rollout still in progress?",
        ),
        _deployments,
        _say_deployments,
    ),
    Tool(
        "models",
        "Registered models: champion and challenger versions, metrics, and how each was trained.",
        (
            "What is the champion model's ROC-AUC?",
            "Which model version is champion?",
            "Which version is the challenger?",
            "What metrics does the registered model have?",
            "How was the champion trained?",
            "Which run and dataset produced version 3?",
            "What parameters were used to train the model?",
            "Show me the registered models",
        ),
        _models,
        _say_models,
    ),
    Tool(
        "features",
        "Feature views: entities and features.",
        (
            "Which features does the project have?",
            "What feature views are defined?",
            "Which entities do the features use?",
            "What does the feature service contain?",
            "List the features of the user view",
        ),
        _features,
        _say_features,
    ),
    Tool(
        "datasets",
        "Versioned datasets.",
        (
            "Which datasets are registered?",
            "What is the latest version of the training dataset?",
            "How many rows does the dataset have?",
            "List the datasets",
        ),
        _datasets,
        _say_datasets,
    ),
]


class ToolPicker:
    """The nearest-example classifier: ``pick(question)`` -> the tools to run (none for how-to)."""

    def __init__(self, encode: Callable[[list[str]], Any]) -> None:
        self.encode = encode
        self.labels = [t.name for t in TOOLS for _ in t.examples] + ["none"] * len(HOW_TO)
        self.vectors = np.asarray(encode([e for t in TOOLS for e in t.examples] + list(HOW_TO)))

    def scores(self, question: str) -> dict[str, float]:
        """Per class (each tool, and ``none``), the similarity of its nearest example."""
        similarity = self.vectors @ np.asarray(self.encode([question]))[0]
        best: dict[str, float] = {}
        for label, value in zip(self.labels, similarity, strict=True):
            best[label] = max(best.get(label, -1.0), float(value))
        return best

    def pick(self, question: str, previous: str | None = None) -> list[Tool]:
        scores = self.scores(question)
        top = max(scores.values())
        if top < MIN_SIMILARITY and previous:  # near nothing ("and the challenger?"): a follow-up
            return self.pick(f"{previous} {question}")
        if top < MIN_SIMILARITY:
            return []
        return [t for t in TOOLS if scores[t.name] >= top - MARGIN]


_pickers: weakref.WeakKeyDictionary[Callable[[list[str]], Any], ToolPicker] = weakref.WeakKeyDictionary()


def pick(question: str, encode: Callable[[list[str]], Any], previous: str | None = None) -> list[Tool]:
    """The tools ``question`` needs (none for a how-to question: the docs answer it). A question
    near no example at all is read as a follow-up of ``previous``, the question before it."""
    picker = _pickers.get(encode)
    if picker is None:
        picker = _pickers[encode] = ToolPicker(encode)
    return picker.pick(question, previous)


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
