"""The gateway on the demo project: a registered prompt, the semantic cache, redaction, feedback.

    .venv/bin/python examples/llm/gateway.py

Run it after `make run`. It uses the URL and token the Kosmos client finds.
"""

from __future__ import annotations

from openai import OpenAI

from kosmos.genai import sdk
from kosmos.platform import KosmosClient


def ask(client: OpenAI, question: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="assistant-llm",
        messages=[{"role": "user", "content": question}],
        temperature=0,
        max_tokens=64,
        extra_body={
            "kosmos": {"prompt": "prompts:/support@production", "variables": {"company": "Kosmos Bank"}}
        },
    )
    answer = raw.parse().choices[0].message.content
    h = raw.headers
    print(f"[{h['x-kosmos-cache']:>6} {h['x-kosmos-prompt']}] {question}\n         {answer}\n")


def main() -> None:
    kosmos = KosmosClient()
    print("prompt:", sdk.show_prompt("demo", "support", client=kosmos)["aliases"])
    client = OpenAI(base_url=sdk.openai_base_url("demo", client=kosmos), api_key=kosmos.token)
    ask(client, "How do I block my card?")  # miss: the model answers (a few seconds on a CPU)
    ask(client, "How do I block my card?")  # hit: the same question
    ask(client, "How can I freeze my card?")  # hit: a paraphrase
    ask(client, "How do I unblock my card?")  # miss: close in embedding space, but the opposite
    ask(client, "My card 4111 1111 1111 1111 was charged twice, why?")  # the model sees [CARD]
    stats = sdk.cache_stats("demo", client=kosmos)
    print({k: stats[k] for k in ("requests", "outcomes", "hit_rate", "tokens_saved", "flagged")})


if __name__ == "__main__":
    main()
