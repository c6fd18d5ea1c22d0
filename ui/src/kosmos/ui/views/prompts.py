"""Prompts: versions, diffs, aliases, rendering, and a try on an endpoint."""

from __future__ import annotations

import json

import streamlit as st

from kosmos.genai import sdk
from kosmos.platform import Role
from kosmos.ui.common import act, client, needs, page, project, table
from kosmos.ui.views.playground import llm_models

EXAMPLES = {"company": "Kosmos Bank"}
"""Sample values for variables the demo prompts use; others start as <name>."""


@page
def render() -> None:
    st.title("Prompts")
    with client() as c:
        prompts = sdk.list_prompts(project(), client=c)
        if not prompts:
            st.info("No prompts: `kosmos prompts register NAME -m MESSAGE -t TEXT -p PROJECT`.")
            return
        table(prompts)
        name = st.selectbox("Prompt", [p["name"] for p in prompts])
        shown = sdk.show_prompt(project(), name, client=c)
        versions = [v["version"] for v in shown["versions"]]  # newest first
        table(shown["versions"])
        if len(versions) > 1:
            cols = st.columns(2)
            a = cols[0].selectbox("Diff from", versions, index=1)
            b = cols[1].selectbox("to", versions, index=0)
            st.code(sdk.diff_prompt(project(), name, a, b, client=c) or "(identical)", language="diff")
        with st.form("alias"):
            cols = st.columns(3)
            alias = cols[0].text_input("Alias", value="production")
            version = cols[1].selectbox("Version", versions)
            if cols[2].form_submit_button("Move alias", **needs(Role.maintainer)):
                act(
                    "Moving ...",
                    lambda: sdk.set_prompt_alias(project(), name, alias, version, client=c),
                    f"{name}@{alias} is version {version}.",
                )
        st.subheader("Render and try")
        alias_used = "production" if "production" in shown.get("aliases", {}) else None
        current = next((v for v in shown["versions"] if alias_used in v["aliases"]), shown["versions"][0])
        key = f"{name}-{current['version']}"
        fields = st.columns(max(1, min(3, len(current["variables"]))))
        variables = {
            variable: fields[i % len(fields)].text_input(
                variable, value=EXAMPLES.get(variable, ""), key=f"variable-{key}-{variable}"
            )
            for i, variable in enumerate(current["variables"])
        }
        reference = f"prompts:/{name}@production" if alias_used else f"prompts:/{name}/{versions[0]}"
        rendered = sdk.render_prompt(project(), name, variables, alias=alias_used, client=c)
        st.code(rendered if isinstance(rendered, str) else json.dumps(rendered, indent=2))
        models = llm_models(c)
        question = st.text_input("Ask with this prompt", value="How do I block my card?")
        if not models:
            st.caption("No LLM endpoint in this project to try the prompt on.")
        elif st.button("Try it"):
            with st.spinner(f"Asking {models[0]} ..."):
                reply = sdk.chat(
                    project(), [{"role": "user", "content": question}], model=models[0],
                    prompt=reference, variables=variables, max_tokens=96, client=c,
                )  # fmt: skip
            st.write(reply["text"])
            st.caption(f"cache {reply['cache']} · prompt {reply['prompt']} · request {reply['request_id']}")
