"""The assistant against known answers: questions about `make run`'s demo project whose answers the
platform's own APIs give (the registry, the deployments, the datasets, the feature repository).

For each question, the reply must hold the known answer in its facts, and a worded answer that is
shown must not name a number or a version the known answers do not hold: the assistant's wording
agrees with the platform, or it is withheld (``model.withheld``) and the facts are shown instead.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

Truth = dict[str, Any]
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:,\d{3})*(?:\.\d+)?)(%?)(?!\w)")
_VERSION = re.compile(r"\bversion\s+(\d+)\b|\bv(\d+)\b", re.I)


@dataclass(frozen=True)
class Known:
    """A question, the lookup it needs (None: the docs answer it, a lookup besides is allowed), and
    what the reply must say."""

    question: str
    tool: str | None
    expect: Callable[[Truth], list[str]]
    """Text the reply's facts and citations must hold; ``a|b``: either."""
    previous: str | None = None
    wrong: Callable[[Truth], list[str]] = lambda t: []
    """Patterns (regular expressions, any case) a shown answer must not match: known-wrong answers."""


def _champion(t: Truth, model: str = "fraud-detector") -> int:
    return t["models"][model]["aliases"]["champion"]


def _metric(t: Truth, name: str, model: str = "fraud-detector") -> str:
    version = next(v for v in t["models"][model]["versions"] if v["version"] == _champion(t, model))
    return f"{name} {round(version['metrics'][name], 4)}"


def _aliased(t: Truth, alias: str) -> list[str]:
    found = [
        f"{m} {alias} is version {d['aliases'][alias]}"
        for m, d in t["models"].items()
        if alias in d["aliases"]
    ]
    return found or [f"(no model has a {alias})"]  # the demo run promotes one: this fails otherwise


def _status(t: Truth, name: str) -> str:
    d = t["deployments"][name]
    return f"- {name} ({d['model']}): {d['status']}"


def _misstated(t: Truth) -> list[str]:
    """A deployment said to be in a state other than its own, or not in its own; a state no
    deployment is in, said without a negation."""
    states = "healthy|degraded|unstable|failed|deploying|down|broken"
    held = {d["status"] for d in t["deployments"].values()}
    absent = "|".join(s for s in states.split("|") if s not in held)
    return [
        rf"\b{re.escape(n)}\b[^.\n]*\b(?:(?!{d['status']}\b)(?:{states})|not {d['status']})\b"
        for n, d in t["deployments"].items()
    ] + [rf"^(?!.*\b(?:no|none|not|nothing)\b).*\b(?:{absent})\b"]  # a state nothing is in


def _all_well(t: Truth) -> list[str]:
    """When nothing is unwell: a yes to "is anything broken?", or a line saying something is unwell."""
    unwell = [n for n, d in t["deployments"].items() if d["status"] in ("degraded", "unstable", "failed")]
    said_unwell = (
        r"^(?!.*\b(?:no|none|not|nothing)\b).*\b(?:is|are) (?:degraded|unstable|failed|down|broken)\b"
    )
    return [] if unwell else [r"^\W*yes\b", said_unwell]


def _other_version(t: Truth, model: str, alias: str) -> list[str]:
    """The alias said to be another version than its own."""
    v = t["models"].get(model, {}).get("aliases", {}).get(alias)
    return [rf"\b{alias}\b[^.\n]*\bversion (?!{v}\b)\d+"] if v is not None else []


def _unwell(t: Truth) -> str:
    bad = [n for n, d in t["deployments"].items() if d["status"] in ("degraded", "unstable", "failed")]
    return f"Degraded, unstable or failed in demo: {', '.join(bad)}." if bad else "is degraded or failed"


QUESTIONS = [
    Known("Which version of fraud-detector is the champion?", "models",
          lambda t: [f"fraud-detector champion is version {_champion(t)}"],
          wrong=lambda t: _other_version(t, "fraud-detector", "champion")),
    Known("What is the champion model's ROC-AUC?", "models", lambda t: [_metric(t, "roc_auc")]),
    Known("What PR-AUC does the fraud-detector champion reach?", "models", lambda t: [_metric(t, "pr_auc")]),
    Known("How was the fraud-detector champion trained?", "models",
          lambda t: [f"trained in run {t['lineage']['run']['run_name']}"]),
    Known("Which dataset version was the champion trained on?", "models",
          lambda t: [f"on dataset {t['lineage']['dataset']['name']} v{t['lineage']['dataset']['version']}"]),
    Known("Which features did the champion model use?", "models",
          lambda t: [f"features from {t['lineage']['features']['feature_service']}"]),
    Known("Which code commit produced the champion?", "models",
          lambda t: [f"code commit {t['lineage']['code']['commit'][:10]}"]),
    Known("Which version of quickstart-fraud is the challenger?", "models",
          lambda t: _aliased(t, "challenger"),
          wrong=lambda t: _other_version(t, "quickstart-fraud", "challenger")),
    Known("Show me the registered models", "models", lambda t: [f"- {m} " for m in t["models"]]),
    Known("And the challenger?", "models", lambda t: _aliased(t, "challenger"),
          previous="Which version of fraud-detector is the champion?"),
    Known("Which deployments are degraded?", "deployments", lambda t: [_unwell(t)],
          wrong=lambda t: _misstated(t) + _all_well(t)),
    Known("Is the fraud-detector deployment healthy?", "deployments",
          lambda t: [_status(t, "fraud-detector")], wrong=_misstated),
    Known("What is the status of my deployments?", "deployments",
          lambda t: [_status(t, n) for n in t["deployments"]], wrong=_misstated),
    Known("Is the assistant-llm endpoint up?", "deployments", lambda t: [_status(t, "assistant-llm")],
          wrong=_misstated),
    Known("Is anything broken in production right now?", "deployments", lambda t: [_unwell(t)],
          wrong=lambda t: _misstated(t) + _all_well(t)),
    Known("Which feature views does this project define?", "features",
          lambda t: [f"feature views: {', '.join(t['features']['feature_views'])}"]),
    Known("What feature services are there?", "features",
          lambda t: [f"feature services: {', '.join(t['features']['feature_services'])}"]),
    Known("Which datasets are registered?", "datasets", lambda t: [f"- {n}: " for n in t["datasets"]]),
    Known("How many rows does the fraud-training dataset have?", "datasets",
          lambda t: [f"{t['datasets']['fraud-training']['rows']} rows"]),
    Known("What is the latest version of fraud-training?", "datasets",
          lambda t: [f"fraud-training: version {t['datasets']['fraud-training']['version']}"]),
    Known("How do I roll back a deployment?", None, lambda t: ["docs/deployment.md#"]),
    Known("How do I create an API token for a notebook?", None,  # cli.md and ui.md show the command
          lambda t: ["docs/identity-and-access.md|docs/cli.md|docs/ui.md|docs/sdk.md"]),
    Known("How do I flush the semantic cache?", None, lambda t: ["docs/gateway.md#"]),
    Known("How do I build a point-in-time training set?", None,  # sdk.md documents training_set
          lambda t: ["docs/features.md|docs/sdk.md#kosmosfeatures|docs/training.md"]),
]  # fmt: skip


def _truth(c: httpx.Client) -> Truth:
    """The known answers, from the platform's own routes (not the assistant's lookups)."""
    models = {m["name"]: c.get(f"models/{m['name']}").json() for m in c.get("models").json()}
    champion = _champion({"models": models})
    features = c.get("features").json()
    aliased = {(name, v) for name, m in models.items() for v in m["aliases"].values()}
    return {
        "models": models,
        "lineage": c.get(f"models/fraud-detector/versions/{champion}/lineage").json(),
        # every aliased version's run, parameters and data: what the assistant's facts may cite
        "lineages": [c.get(f"models/{name}/versions/{v}/lineage").json() for name, v in sorted(aliased)],
        "deployments": {d["name"]: d for d in c.get("deployments").json()},
        "datasets": {d["name"]: d for d in c.get("datasets").json()},
        "features": {k: features[k] for k in ("feature_views", "feature_services")},
    }


def _disagreements(answer: str, truth: Truth, reply: dict[str, Any]) -> list[str]:
    """What a shown answer names that the known answers, the question and the cited passages do not:
    numbers (also as percentages, and rounded) and versions."""
    versions = _versions(truth) | {int(a or b) for a, b in _VERSION.findall(reply["question"])}
    held = json.dumps(truth) + reply["question"] + " ".join(s["text"] for s in reply["sources"])
    known = {
        float(n.replace(",", "")) for n, _ in _NUMBER.findall(held) if n.replace(",", "").count(".") <= 1
    }
    wrong = []
    for number, percent in _NUMBER.findall(re.sub(r"\[\d+\]", "", answer)):
        raw = number.replace(",", "")
        if raw.count(".") > 1:
            continue
        places = len(raw.split(".")[1]) if "." in raw else 0
        value = float(raw)
        if not any(round(k, places) == value or (percent and round(100 * k, places) == value) for k in known):
            wrong.append(number + percent)
    wrong += [f"version {a or b}" for a, b in _VERSION.findall(answer) if int(a or b) not in versions]
    return wrong


def _versions(truth: Truth) -> set[int]:
    """Every version the platform has: of each model and each dataset."""
    found = {v["version"] for m in truth["models"].values() for v in m["versions"]}
    found |= {d["version"] for d in truth["datasets"].values()}
    return found | ({(g.get("dataset") or {}).get("version") for g in truth["lineages"]} - {None})


def check_known_answers(base: str, token: str, report: Path) -> list[dict[str, Any]]:
    """Ask every question in QUESTIONS of project demo; fail on a reply that lacks its known answer
    or shows wording that disagrees with it. Writes each reply's outcome to ``report``."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"{base}/api/v1/projects/demo/", headers=headers, timeout=180) as c:
        truth = _truth(c)
        rows, failures = [], []
        for known in QUESTIONS:
            started = time.monotonic()
            body = {"question": known.question, "previous": known.previous}
            got = c.post("assistant", json=body)
            if got.status_code != 200:
                failures.append({"question": known.question, "status": got.status_code, "body": got.text})
                continue
            reply = got.json()
            tools = [f["tool"] for f in reply["facts"]]
            shown = reply["summary"] + "\n" + "\n".join(s["citation"] for s in reply["sources"])
            missing = [e for e in known.expect(truth) if not any(alt in shown for alt in e.split("|"))]
            answer = reply["answer"] or ""
            wrong = _disagreements(answer, truth, reply) if answer else []
            wrong += [w for w in known.wrong(truth) if re.search(w, answer, re.I | re.M)]
            row = {
                "question": known.question,
                "tools": tools,
                "answer": reply["answer"],
                "withheld": reply["model"].get("withheld"),
                "model_status": reply["model"]["status"],
                "seconds": round(time.monotonic() - started, 2),
                "missing": missing,
                "disagrees": wrong,
            }
            rows.append(row)
            expected_tools = [known.tool] if known.tool else []
            # a how-to question may get a lookup too (its facts box costs little); it needs its page
            if (known.tool and known.tool not in tools) or missing or wrong:
                failures.append({**row, "expected_tools": expected_tools})
    report.write_text(json.dumps(rows, indent=2))
    assert not failures, json.dumps(failures, indent=2)
    return rows


@pytest.fixture
def known_answers() -> Callable[[str, str, Path], list[dict[str, Any]]]:
    """``check(base_url, token, report)``: the assistant against QUESTIONS on a live demo platform."""
    return check_known_answers
