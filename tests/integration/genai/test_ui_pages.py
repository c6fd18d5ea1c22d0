"""Each web UI page's logic with Streamlit's AppTest, against the live platform of the LLM tests.

The pages read only through the SDK, so they run here exactly as in the browser: the
fixture gives the demo project a dataset, a tracked run with curves and an ROC picture,
a registered and promoted model, a prompt with two versions and the live LLM endpoint.
(The browser tests in tests/e2e/test_make_run.py open every page of the real `make run`.)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from streamlit.testing.v1 import AppTest

from kosmos.deployment import sdk as deploy_sdk
from kosmos.genai import sdk as genai
from kosmos.platform import Forbidden
from kosmos.platform.client import KosmosClient
from kosmos.training import run
from kosmos.training import sdk as training

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve()
LLM = "chat"


@pytest.fixture(scope="module")
def ui_env(llm_env) -> dict[str, Any]:
    settings = llm_env["settings"]
    with KosmosClient(url=llm_env["url"], token=llm_env["admin"]) as c:
        rng = np.random.default_rng(7)
        frame = pd.DataFrame({"amount": rng.gamma(2.0, 30.0, 400), "label": rng.integers(0, 2, 400)})
        training.register_dataset("demo", "ui-set", frame, client=c)
        with run(
            "demo", "ui-exp", dataset="ui-set", run_name="ui-run", settings=settings, client=c, code_path=HERE
        ) as r:
            for step in range(5):
                r.log_metrics(
                    {"train_loss": 1.0 / (step + 1), "validation_loss": 1.2 / (step + 1)}, step=step
                )
            r.log_metrics({"roc_auc": 0.91})
            figure, axes = plt.subplots()
            axes.plot([0, 0.2, 1], [0, 0.8, 1])
            r.log_figure(figure, "evaluation/roc_curve.png")
            plt.close(figure)
            model = LogisticRegression().fit(frame[["amount"]], frame["label"])
            r.log_model(model, input_example=frame[["amount"]].head(5))
        version = training.register_model("demo", "ui-model", r.run_id, client=c)
        genai.register_prompt("demo", "ui-prompt", "Hello from {{company}}.", "first", client=c)
        genai.register_prompt("demo", "ui-prompt", "Hi from {{company}}, briefly.", "shorter", client=c)
        genai.set_prompt_alias("demo", "ui-prompt", "production", 2, client=c)
    return {"url": llm_env["url"], "token": llm_env["admin"], "run_id": r.run_id, "version": version}


def _page(ui_env: dict[str, Any], name: str, *, token: str | None = None) -> AppTest:
    at = AppTest.from_string(f"from kosmos.ui.views import {name}\n{name}.render()\n", default_timeout=180)
    at.session_state["token"] = token or ui_env["token"]
    at.session_state["url"] = ui_env["url"]
    at.session_state["project"] = "demo"
    return at.run()


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
    parts += [s.value for s in at.success] + [w.value for w in at.warning] + [t.value for t in at.title]
    return "\n".join(str(p) for p in parts)


def test_projects_and_audit_pages_show_the_platform(ui_env) -> None:
    at = _page(ui_env, "projects")
    _ok(at)
    assert "demo" in at.dataframe[0].value["name"].tolist()
    at = _page(ui_env, "audit")
    _ok(at)
    assert "prompt.alias" in at.dataframe[0].value["action"].tolist()


def test_datasets_page_shows_versions_schema_and_statistics(ui_env) -> None:
    at = _page(ui_env, "datasets")
    _ok(at)
    at.selectbox[0].set_value("ui-set").run()
    _ok(at)
    frames = [d.value for d in at.dataframe]
    assert any("amount" in f.get("column", pd.Series(dtype=str)).tolist() for f in frames)  # the schema
    assert any("mean" in f.columns and "amount" in f.index for f in frames)  # the statistics
    assert next(s for s in at.selectbox if s.label == "Column").value == "amount"  # its histogram
    assert "Class balance of `label`" in _text(at)


def test_experiments_page_shows_runs_curves_comparison_and_pictures(ui_env) -> None:
    at = _page(ui_env, "experiments")
    _ok(at)
    next(s for s in at.selectbox if s.label == "Experiment").set_value("ui-exp").run()
    runs = at.dataframe[0].value
    assert ui_env["run_id"] in runs["run_id"].tolist()
    assert runs["run"].tolist()[0] == "ui-run" and "MLflow" in runs.columns
    next(t for t in at.text_input if t.label.startswith("Filter")).set_value("metrics.roc_auc > 0.9").run()
    _ok(at)
    assert at.dataframe[0].value["run_id"].tolist() == [ui_env["run_id"]]
    assert at.get("arrow_line_chart") or at.get("vega_lite_chart"), "metric curves are drawn"
    with KosmosClient(url=ui_env["url"], token=ui_env["token"]) as c:
        assert training.run_images("demo", ui_env["run_id"], client=c) == ["evaluation/roc_curve.png"]
    assert [c for i in at.image for c in i.captions] == ["evaluation/roc_curve.png"], _text(at)
    assert at.query_params["run"] == ui_env["run_id"]  # the address links to the run shown


def test_a_link_to_a_run_opens_that_run(ui_env, llm_env) -> None:
    ids = {}
    with KosmosClient(url=ui_env["url"], token=ui_env["token"]) as c:
        for name, auc in (("linked-a", 0.4), ("linked-b", 0.6)):  # b is best, so first by default
            settings = llm_env["settings"]
            with run("demo", "ui-links", run_name=name, settings=settings, client=c, code_path=HERE) as r:
                r.log_metrics({"roc_auc": auc})
            ids[name] = r.run_id
    for link, shown in (({}, "linked-b"), ({"run": ids["linked-a"]}, "linked-a")):
        at = AppTest.from_string("from kosmos.ui.views import experiments\nexperiments.render()\n")
        at.session_state["token"], at.session_state["url"] = ui_env["token"], ui_env["url"]
        at.session_state["project"] = "demo"
        at.query_params.update({"experiment": "ui-links", **link})
        at.run(timeout=180)
        _ok(at)
        assert next(s for s in at.selectbox if s.label == "Run").value == shown, link


def test_a_sweep_is_ranked_best_first_compared_by_name_and_drawn(ui_env, llm_env) -> None:
    scores = {"sweep-a": (0.01, 3, 0.71), "sweep-b": (0.1, 5, 0.93), "sweep-c": (0.05, 4, 0.82)}
    with KosmosClient(url=ui_env["url"], token=ui_env["token"]) as c:
        settings = llm_env["settings"]
        for name, (lr, depth, auc) in scores.items():
            with run("demo", "ui-sweep", run_name=name, settings=settings, client=c, code_path=HERE) as r:
                r.log_params({"lr": lr, "depth": depth, "seed": 7})
                r.log_metrics({"roc_auc": auc + 1e-9 / 3, "log_loss": 1 - auc})
    at = _page(ui_env, "experiments")
    next(s for s in at.selectbox if s.label == "Experiment").set_value("ui-sweep").run()
    _ok(at)
    table = at.dataframe[0].value
    assert table["run"].tolist() == ["sweep-b", "sweep-c", "sweep-a"]  # best roc_auc first
    assert list(table.columns[:3]) == ["run", "roc_auc", "log_loss"]
    assert table["roc_auc"].tolist() == [0.93, 0.82, 0.71]  # rounded, not 0.9300000003333
    assert "param lr" in table.columns and "param seed" not in table.columns  # only what varied
    compared = at.dataframe[1].value
    assert list(compared.columns) == ["sweep-b", "sweep-c"]  # headed by run name, not run id
    assert at.get("vega_lite_chart"), "the scatter and the parallel coordinates are drawn"
    _ok(at)


def test_models_page_promotes_with_a_reason_and_refuses_without_one(ui_env) -> None:
    at = _page(ui_env, "models")
    _ok(at)
    model_box = next(s for s in at.selectbox if s.label == "Model")
    model_box.set_value("ui-model").run()
    _ok(at)
    assert at.query_params["model"] == "ui-model"  # the address links to the model shown
    assert at.get("graphviz_chart"), "the lineage graph is drawn"
    alias = next(s for s in at.selectbox if s.label == "Alias")
    alias.set_value("challenger")
    at.button[0].click().run()  # no reason given
    assert "Give a reason" in at.error[0].value
    next(t for t in at.text_input if t.label.startswith("Reason")).set_value("UI test")
    next(s for s in at.selectbox if s.label == "Alias").set_value("challenger")
    at.button[0].click().run()
    assert any("is now challenger" in s.value for s in at.success), _text(at)
    with KosmosClient(url=ui_env["url"], token=ui_env["token"]) as c:
        assert (
            training.show_model("demo", "ui-model", client=c)["aliases"]["challenger"]
            == ui_env["version"]["version"]
        )


def _help(at: AppTest, label: str) -> tuple[bool, str]:
    """Whether the button ``label`` is disabled, and its tooltip (a form's submit button too)."""
    button = next(b for b in at.button if b.label == label)
    return button.disabled, button.proto.help


def test_actions_a_role_cannot_take_are_disabled_with_the_role_they_need(ui_env) -> None:
    with KosmosClient(url=ui_env["url"], token=ui_env["token"]) as c:  # an admin's token capped at viewer
        viewer = c.post("/tokens", {"name": "ui-viewer-cap", "project": "demo", "role": "viewer"})["token"]
    with KosmosClient(url=ui_env["url"], token=viewer) as c:  # the timeline the page draws for a viewer
        assert deploy_sdk.events("demo", LLM, client=c)[-1]["action"] == "deployment.create"
        with pytest.raises(Forbidden, match="maintainer"):  # while the audit log stays a maintainer's
            c.get("/audit", project="demo")
    at = _page(ui_env, "models", token=viewer)
    _ok(at)
    next(s for s in at.selectbox if s.label == "Model").set_value("ui-model").run()
    disabled, why = _help(at, "Promote")
    assert disabled and "Needs the maintainer role on demo; you are viewer" in why, why
    at = _page(ui_env, "deployments", token=viewer)
    _ok(at)
    for label in ("Roll back", "Promote the candidate"):
        disabled, why = _help(at, label)
        assert disabled and "Needs the developer role" in why, (label, why)
    at = _page(ui_env, "prompts", token=viewer)
    next(s for s in at.selectbox if s.label == "Prompt").set_value("ui-prompt").run()
    assert _help(at, "Move alias")[0]
    at = _page(ui_env, "cache", token=viewer)
    next(c for c in at.checkbox if c.label.startswith("Yes, drop")).check().run()
    disabled, why = _help(at, "Flush")
    assert disabled and "maintainer" in why, why
    # the same pages with the admin's own token: the actions are there
    at = _page(ui_env, "cache")
    next(c for c in at.checkbox if c.label.startswith("Yes, drop")).check().run()
    assert _help(at, "Flush") == (False, "")
    at = _page(ui_env, "deployments")
    assert not _help(at, "Roll back")[0]


def test_a_rollback_without_a_reason_is_refused_before_the_api_is_called(ui_env) -> None:
    at = _page(ui_env, "deployments")
    _ok(at)
    name = next(s for s in at.selectbox if s.label == "Deployment").value
    with KosmosClient(url=ui_env["url"], token=ui_env["token"]) as c:
        before = c.get(f"/projects/demo/deployments/{name}")
    next(b for b in at.button if b.label == "Roll back").click().run()
    assert "Give a reason" in at.error[0].value
    with KosmosClient(url=ui_env["url"], token=ui_env["token"]) as c:
        after = c.get(f"/projects/demo/deployments/{name}")
    assert (after["stable_version"], after["status"]) == (before["stable_version"], before["status"])


def test_deployments_prompts_cache_and_playground_pages(ui_env) -> None:
    at = _page(ui_env, "deployments")
    _ok(at)
    assert LLM in at.dataframe[0].value["name"].tolist()
    at = _page(ui_env, "prompts")
    _ok(at)
    next(s for s in at.selectbox if s.label == "Prompt").set_value("ui-prompt").run()
    _ok(at)
    assert any("+Hi from {{company}}, briefly." in c.value for c in at.code), [c.value for c in at.code]
    assert any(c.value == "Hi from Kosmos Bank, briefly." for c in at.code)
    at = _page(ui_env, "cache")
    _ok(at)
    assert [m.label for m in at.metric][:3] == ["Hit rate", "Estimated false hits", "Tokens saved"]
    at = _page(ui_env, "playground")
    _ok(at)
    assert LLM in next(s for s in at.selectbox if s.label == "Endpoint").options


def test_the_deployments_page_draws_the_last_hour_against_the_slo_and_the_timeline(ui_env) -> None:
    from openai import OpenAI

    client = OpenAI(
        base_url=f"{ui_env['url']}/api/v1/projects/demo/openai/v1", api_key=ui_env["token"], max_retries=0
    )
    client.chat.completions.create(model=LLM, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    at = _page(ui_env, "deployments")
    next(s for s in at.selectbox if s.label == "Deployment").set_value(LLM).run()
    _ok(at)
    charts = {}
    for element in at.get("vega_lite_chart"):
        spec = json.loads(element.proto.spec)
        charts[(spec.get("title") or spec.get("layer", [{}])[0].get("title"))] = spec
    assert {"p99 latency (ms), per minute", "error rate, per minute"} <= set(charts), list(charts)
    p99 = charts["p99 latency (ms), per minute"]
    assert [layer["mark"]["type"] for layer in p99["layer"]] == ["line", "rule"]  # the SLO is drawn
    assert "Rollout events (hover for who and why)" in charts
    events = at.dataframe[-1].value
    assert "create" in events["event"].tolist()


def test_the_decisions_page_explains_and_replays_an_llm_call(ui_env, llm_env) -> None:
    from openai import OpenAI

    client = OpenAI(
        base_url=f"{ui_env['url']}/api/v1/projects/demo/openai/v1", api_key=ui_env["token"], max_retries=0
    )
    raw = client.chat.completions.with_raw_response.create(
        model=LLM,
        messages=[{"role": "user", "content": "Name one colour of the sky."}],
        temperature=0,
        max_tokens=8,
    )
    answer, request_id = raw.parse().choices[0].message.content, raw.headers["x-request-id"]
    at = _page(ui_env, "decisions")
    _ok(at)
    deadline = time.monotonic() + 15  # the record is written within about a second
    while True:
        at.text_input[0].set_value(request_id).run()
        if not at.error or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    _ok(at)
    assert [m.label for m in at.metric][:2] == ["Deployment", "Model version"] and at.metric[0].value == LLM
    assert answer in _text(at)
    assert at.dataframe[0].value["content"].tolist()[-1] == "Name one colour of the sky."
    next(b for b in at.button if b.label == "Replay").click().run()
    _ok(at)
    assert "same output" in _text(at)


def test_the_assistant_page_answers_with_citations(ui_env, llm_env) -> None:
    with KosmosClient(url=ui_env["url"], token=ui_env["token"]) as c:
        genai.set_gateway_policy("demo", {"routes": {"assistant-llm": [LLM]}}, client=c)
        try:
            at = _page(ui_env, "assistant")
            _ok(at)
            at.chat_input[0].set_value("How do I deploy a model with a canary?").run()
            _ok(at)
            assert "docs/deployment.md#" in _text(at)
        finally:
            c.put("/projects/demo/gateway", {})


def test_a_page_shows_a_readable_error_not_a_stack_trace(ui_env, llm_env) -> None:
    at = _page(ui_env, "models", token="kos_not_a_real_token")
    assert not at.exception
    assert at.error and "token" in at.error[0].value.lower()
