"""How often the assistant's model wording is shown, and why it is withheld, on a running platform.

    make run                                   # in another terminal
    .venv/bin/kosmos cache flush -p demo --yes   # no wording cached by an earlier setting
    .venv/bin/python bench/assistant_wording.py --label "frequency_penalty 0"

The assistant shows the model's words only when they pass the grounding check
(``kosmos.genai.assistant.grounding``); otherwise it shows the facts. This asks the questions of
``bench/data/assistant_questions.tsv`` (how-to) and ``bench/data/assistant_tools_heldout.tsv``
(mostly live lookups) in project ``demo``, none of them the questions the end-to-end test checks,
and prints the share worded, withheld (by reason) and failed, and the time per answer. The
settings compared (``assistant.frequency_penalty``) are the server's: restart `make run` with
``KOSMOS_ASSISTANT__FREQUENCY_PENALTY`` set, flush the cache, and run again with another label.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import statistics
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent


def _questions() -> list[str]:
    found = []
    for name in ("assistant_questions.tsv", "assistant_tools_heldout.tsv"):
        with (ROOT / "data" / name).open() as f:
            rows = [line for line in f if not line.startswith("#")]
        found += [r["question"] for r in csv.DictReader(rows, delimiter="\t")]
    return found


def _reason(withheld: str) -> str:
    for key in ("named", "contradict", "repeats", "none of the facts"):
        if key in withheld:
            return key
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--label", required=True, help="the server's setting, for the table")
    args = parser.parse_args()
    home = Path(os.environ.get("KOSMOS_HOME", Path.home() / ".kosmos"))
    token = json.loads((home / "credentials.json").read_text())["token"]
    outcomes: collections.Counter[str] = collections.Counter()
    seconds = []
    with httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {token}"}, timeout=300) as c:
        for question in _questions():
            started = time.perf_counter()
            reply = c.post("/api/v1/projects/demo/assistant", json={"question": question}).json()
            seconds.append(time.perf_counter() - started)
            model = reply["model"]
            if reply["answer"]:
                outcomes["worded"] += 1
            elif model.get("withheld"):
                outcomes[f"withheld: {_reason(model['withheld'])}"] += 1
            else:
                outcomes["no model answer"] += 1
    n = sum(outcomes.values())
    print(f"{args.label}: {n} questions, {statistics.mean(seconds):.1f} s per answer (mean)")
    print(f"{'outcome':<34}{'share':>8}")
    for outcome, count in outcomes.most_common():
        print(f"{outcome:<34}{count / n:>8.0%}")


if __name__ == "__main__":
    main()
