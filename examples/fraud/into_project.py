"""The fraud demo as any project's features: generate its tables, upload them, apply its repository.

    .venv/bin/python examples/fraud/into_project.py --project risk-scoring --team risk

What `make run` does for the `demo` project, through the SDK: the repository is the one the
demo ships (``kosmos.features.demo.fraud_repo``: ``features.py`` and ``pipelines.py``), applied
from its folder like any user's.
"""

from __future__ import annotations

import argparse
from importlib.util import find_spec
from pathlib import Path

import kosmos
from kosmos.features.demo import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="risk-scoring")
    parser.add_argument("--team", default="risk")
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    kosmos.login()
    if args.project not in {p["name"] for p in kosmos.projects.list()}:
        kosmos.projects.create(args.project, args.team, description="Card fraud, from examples/fraud.")
    kosmos.init(args.project)
    data = generate(rows=args.rows)
    for table in ("transactions", "users", "merchants"):
        kosmos.features.upload_table(table, getattr(data, table))
    spec = find_spec("kosmos.features.demo.fraud_repo")
    assert spec and spec.submodule_search_locations
    applied = kosmos.features.apply(Path(next(iter(spec.submodule_search_locations))))
    run = kosmos.features.run_pipelines()
    print(f"{args.project}: feature repository v{applied['version']}, pipelines {run['status']}")
    print(f"rows per view: {run['rows']}")


if __name__ == "__main__":
    main()
