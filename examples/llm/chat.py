"""Chat with the default LLM that `make run` serves, with the official openai client.

    .venv/bin/python examples/llm/chat.py "What is a chargeback?"

Calls the data plane (Ray Serve's ingress, port 8000) with the token the Kosmos client finds
(settings, or what `make run` saved); the client asks the control plane where the data plane is.
"""

from __future__ import annotations

import sys

from openai import OpenAI

from kosmos.platform import KosmosClient


def main() -> None:
    kosmos = KosmosClient()
    client = OpenAI(base_url=f"{kosmos.dataplane_url}/demo/openai/v1", api_key=kosmos.token)
    question = " ".join(sys.argv[1:]) or "What is card fraud? Answer in one sentence."
    print("models:", [m.id for m in client.models.list()])
    stream = client.chat.completions.create(
        model="assistant-llm",
        messages=[{"role": "user", "content": question}],
        max_tokens=96,
        temperature=0.3,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
        if chunk.usage:
            print(f"\n[{chunk.usage.prompt_tokens} tokens in, {chunk.usage.completion_tokens} out]")
    print("usage today:", kosmos.get("/projects/demo/llm/usage"))
    kosmos.close()


if __name__ == "__main__":
    main()
