"""Ask the Kosmos assistant a how-to question, a live question, and one it must refuse.

Run after `make run` (it saved the admin token): `.venv/bin/python examples/llm/assistant.py`
"""

from __future__ import annotations

import kosmos
from kosmos.platform import NotFound

kosmos.login()
kosmos.init(project="demo")

howto = kosmos.assistant.ask("How do I deploy a model with a canary?")
print(howto["answer"] or howto["summary"])
print("sources:", [s["citation"] for s in howto["sources"]])

live = kosmos.assistant.ask("What is the champion model's ROC-AUC?")
print(live["facts"][0]["summary"])

try:
    kosmos.assistant.ask("Which deployments of project secret are degraded?")
except NotFound as exc:
    print("refused:", exc.message)
