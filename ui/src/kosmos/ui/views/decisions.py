"""Decisions: why one prediction or LLM answer came out as it did, and the same decision replayed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import streamlit as st

from kosmos.deployment import sdk
from kosmos.ui.common import client, page, project, table
from kosmos.ui.views.models import lineage_dot


def _facts(record: dict[str, Any]) -> None:
    cols = st.columns(4)
    cols[0].metric("Deployment", record.get("deployment") or "-")
    cols[1].metric("Model version", f"v{record.get('model_version')}" if record.get("model_version") else "-")
    cols[2].metric("Status", record.get("status") or "-")
    cols[3].metric("Latency", f"{record.get('latency_ms') or 0:.1f} ms")
    traffic = (record.get("traffic") or {}).get("arm")
    st.caption(
        f"At {record.get('at')} by **{record.get('caller')}**"
        + (f", traffic: **{traffic}**" if traffic else "")
        + (f", shadow v{record['shadow_version']}" if record.get("shadow_version") else "")
    )


def _features(record: dict[str, Any]) -> None:
    features = record.get("features") or {}
    if not features:
        return
    st.subheader("Features as served")
    rows = []
    for name, item in features.items():
        for i, value in enumerate(item.get("values") or []):
            stamps = item.get("event_timestamps") or []
            ts = stamps[i] if i < len(stamps) else None
            when = datetime.fromtimestamp(ts, UTC).isoformat()[:19] if ts else "from the request"
            rows.append({"row": i, "feature": name, "view": item.get("view"), "value": value, "as of": when})
    table(rows)


def _lineage(found: dict[str, Any], request_id: str) -> None:
    lineage = found.get("lineage")
    if found.get("missing"):
        st.warning(found["missing"])
    if not lineage:
        return
    st.subheader("Lineage")
    st.graphviz_chart(lineage_dot(lineage, root=f"decision\\n{request_id[:12]}"))
    dataset = lineage.get("dataset") or {}
    code = lineage.get("code") or {}
    links = found.get("links") or {}
    run = lineage["run"]["run_id"]
    st.markdown(
        f"- model **{lineage['model']['name']} v{lineage['model']['version']}**"
        + (f" ([MLflow]({links['model_version']}))" if links.get("model_version") else "")
        + f"\n- run `{run}`"
        + (f" ([MLflow]({links['run']}))" if links.get("run") else "")
        + f"\n- commit `{code.get('commit') or 'unknown'}`{' (dirty)' if code.get('dirty') else ''}"
        + (f"\n- dataset **{dataset['name']} v{dataset['version']}**" if dataset else "")
        + (f" from feature service `{dataset['feature_service']}`" if dataset.get("feature_service") else "")
    )


def _llm(record: dict[str, Any]) -> None:
    prompt = record.get("prompt")
    if prompt:
        st.markdown(f"Prompt **{prompt['name']} v{prompt['version']}** ({prompt['reference']})")
    cache = record.get("cache") or {}
    detail = ""
    if cache.get("decision") == "hit" and cache.get("similarity") is not None:
        detail = f", entry {cache['entry']} at similarity {cache['similarity']:.3f}"
    elif cache.get("entry") is not None:  # a miss whose answer was stored
        detail = f", the answer was stored as entry {cache['entry']}"
    st.markdown(f"Cache: **{cache.get('decision') or 'off'}**{detail}")
    st.subheader("Messages as the model got them")
    messages = record.get("messages")
    if isinstance(messages, list):
        table([{"role": m.get("role"), "content": m.get("content")} for m in messages])
    else:
        st.code(str(messages))
    sampling = record.get("sampling") or {}
    if sampling:
        st.caption("Sampling: " + ", ".join(f"{k}={v}" for k, v in sampling.items()))


def _replay(request_id: str) -> None:
    against = st.text_input("Compare with (version or alias)", "champion")
    if not st.button("Replay", help="Recompute the decision from its record alone"):
        return
    with st.spinner("Replaying"), client() as c:
        result = sdk.replay(project(), request_id, against=against or None, client=c)
    same = result.get("exact")
    (st.success if same else st.warning)(
        "The replay gives the same output, bit for bit." if same else "The replay differs from the record."
    )
    other = result.get("against") or {}
    if other.get("version") is not None:
        changed = other.get("decides_differently") or []
        st.markdown(
            f"**{other['alias']}** (v{other['version']}) decides "
            + (f"differently on rows {changed}" if changed else "the same")
        )
    skew = result.get("skew") or {}
    if skew.get("checked"):
        if skew["skewed"]:
            st.error("Training/serving skew: online values the offline store did not have then")
            table([{"feature": k, **d} for k, ds in skew["skewed"].items() for d in ds])
        else:
            st.caption(f"No skew in {len(skew['columns'])} features against the offline store.")
    elif skew:
        st.caption(f"Skew not checked: {skew.get('reason')}")


@page
def render() -> None:
    st.title("Decisions")
    st.caption("Paste the X-Request-Id a prediction or an LLM call answered with.")
    request_id = st.text_input("Request id", value=st.query_params.get("request", ""))
    if not request_id:
        return
    with client() as c:
        found = sdk.explain(project(), request_id.strip(), client=c)
    record = found["record"]
    _facts(record)
    if record.get("kind") == "llm":
        _llm(record)
    else:
        st.subheader("Input as received")
        table(record.get("input") or [])
        _features(record)
    output = record.get("output")
    st.subheader("Output")
    if output is None:
        st.error(record.get("error") or "no output")
    elif record.get("kind") == "llm":
        st.markdown(output.get("text") or "")
    else:
        st.write(output.get("predictions"))
    _lineage(found, request_id.strip())
    _replay(request_id.strip())
