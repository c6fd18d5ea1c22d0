"""Models: versions, aliases, the lineage graph, and promotion with a reason."""

from __future__ import annotations

from typing import Any

import streamlit as st

from kosmos.platform import Role
from kosmos.training import sdk
from kosmos.ui.common import act, client, needs, page, project, table

HEADLINE = ("roc_auc", "pr_auc", "accuracy", "log_loss", "rmse")


def lineage_dot(lineage: dict[str, Any], root: str | None = None) -> str:
    """The lineage as a Graphviz graph: model -> run -> code, dataset -> features; from ``root``
    (a decision's label) to the model when given."""
    model, run, code = lineage["model"], lineage["run"], lineage["code"]
    nodes = {
        "model": f"model\\n{model['name']} v{model['version']}",
        "run": f"run\\n{run['run_id'][:8]}",
        "code": f"code\\n{(code.get('commit') or 'unknown')[:8]}{' (dirty)' if code.get('dirty') else ''}",
    }
    edges = [("model", "run"), ("run", "code")]
    if root:
        nodes["decision"] = root
        edges.insert(0, ("decision", "model"))
    if lineage.get("dataset"):
        ds = lineage["dataset"]
        nodes["dataset"] = f"dataset\\n{ds['name']} v{ds['version']}\\n{ds['rows']} rows"
        edges.append(("run", "dataset"))
    features = lineage.get("features") or {}
    if features.get("feature_service"):
        nodes["service"] = f"feature service\\n{features['feature_service']}"
        edges.append(("dataset" if "dataset" in nodes else "run", "service"))
        for i, view in enumerate(features.get("feature_views", [])):
            nodes[f"view{i}"] = f"feature view\\n{view['name']}"
            edges.append(("service", f"view{i}"))
    lines = [
        "digraph lineage {",
        "rankdir=LR;",
        'node [shape=box, style="rounded,filled", fillcolor="#eef3fb"];',
    ]
    lines += [f'{key} [label="{label}"];' for key, label in nodes.items()]
    lines += [f"{a} -> {b};" for a, b in edges]
    return "\n".join([*lines, "}"])


@page
def render() -> None:
    st.title("Models")
    with client() as c:
        models = sdk.list_models(project(), client=c)
        if not models:
            st.info("No registered models: `kosmos.models.register(name, run_id)`.")
            return
        table([{"model": m["name"], "latest": m["latest_version"], "aliases": m["aliases"]} for m in models])
        names = [m["name"] for m in models]
        linked = st.query_params.get("model")
        name = st.selectbox("Model", names, index=names.index(linked) if linked in names else 0)
        st.query_params["model"] = name  # the address links to this model
        shown = sdk.show_model(project(), name, client=c)
        rows = [
            {
                "version": v["version"],
                "aliases": ", ".join(v["aliases"]),
                **{k: v["metrics"].get(k) for k in HEADLINE if k in v["metrics"]},
                "created": (v["created_at"] or "")[:19],
                "run_id": v["run_id"],
            }
            for v in shown["versions"]
        ]
        table(rows)
        versions = [v["version"] for v in shown["versions"]]
        picked = st.selectbox("Lineage of version", list(reversed(versions)))
        st.graphviz_chart(lineage_dot(sdk.lineage(project(), name, picked, client=c)))
        st.subheader("Promote")
        with st.form("promote"):
            cols = st.columns(3)
            version = cols[0].selectbox("Version", list(reversed(versions)))
            alias = cols[1].selectbox("Alias", ["champion", "challenger"])
            reason = cols[2].text_input("Reason (kept in the audit log)")
            if st.form_submit_button("Promote", **needs(Role.maintainer)):
                if not reason.strip():
                    st.error("Give a reason: it is kept in the audit log.")
                else:
                    act(
                        "Promoting ...",
                        lambda: sdk.promote(project(), name, version, alias=alias, reason=reason, client=c),
                        lambda done: (
                            f"{name} v{version} is now {alias}"
                            + (
                                f" (was v{done['previous_version']})."
                                if done.get("previous_version")
                                else "."
                            )
                        ),
                    )
