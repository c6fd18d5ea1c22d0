"""What checking a feature repository costs: Kosmos's apply against `feast apply` on the same files.

For each repository (the biopsies example; the fraud demo's), from a fresh project each round:
  (a) `feast apply` in the folder (Feast's CLI: a fresh process that parses the files, applies);
  (a') Feast's Python API in this warm process, its best case: ``parse_repo`` + ``FeatureStore.apply``
      (no process start, Feast already imported), on another fresh project;
  (b) FeatureRepo.apply_files: load the files in a child process without the server's
      secrets, Kosmos's checks, a trial apply on a scratch registry, then the real apply;
  (c) apply_files again with the same files (unchanged: returns the current version);
  (d) run_pipelines with the user's pipeline in a child process, against the same run with
      the pipeline called in-process (what Kosmos did before), materialization excluded.

    .venv/bin/python bench/feature_apply.py [--rounds 3]

Embedded profile (file registry, SQLite online store). Median seconds of the rounds.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from kosmos.features import project_tables
from kosmos.features.demo import generate
from kosmos.features.repo import FeatureRepo, template_files
from kosmos.features.runs import compute_offline, pipeline_jobs
from kosmos.features.user_code import handle
from kosmos.platform.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "biopsies"))
from biopsy_data import biopsies  # noqa: E402


def _repos() -> dict[str, tuple[dict[str, str], dict[str, pd.DataFrame]]]:
    folder = ROOT / "examples" / "biopsies" / "feature_repo"
    fraud = generate(rows=20_000)
    return {
        "biopsies (569 rows)": (
            {p.name: p.read_text() for p in sorted(folder.glob("*.py"))},
            {"biopsies": biopsies()[0]},
        ),
        "fraud demo (20k transactions)": (
            template_files("fraud"),
            {"transactions": fraud.transactions, "users": fraud.users},
        ),
    }


def _fresh(settings: Settings, tables: dict[str, pd.DataFrame]) -> FeatureRepo:
    repo = FeatureRepo(settings, f"bench-{uuid.uuid4().hex[:8]}")
    repo.init()
    for name, frame in tables.items():
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        project_tables.write_table(repo, name, buffer.getvalue())
    return repo


def _timed(fn: Any, *args: Any, **kwargs: Any) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def _feast_in_process(path: Path) -> None:
    """What `feast apply` does, without its process start: parse the folder, apply what it defines."""
    from feast import FeatureStore
    from feast.repo_operations import parse_repo

    here = os.getcwd()
    os.chdir(path)  # parse_repo names modules relative to the working directory, as the CLI runs
    sys.path.insert(0, str(path))  # and imports them from the repository, as the CLI does
    for stem in ("features", "pipelines"):
        sys.modules.pop(stem, None)  # each round parses its own files, as a fresh CLI would
    try:
        contents = parse_repo(path)
    finally:
        os.chdir(here)
        sys.path.remove(str(path))
    objects = [
        *contents.data_sources,
        *contents.entities,
        *contents.feature_views,
        *contents.on_demand_feature_views,
        *contents.feature_services,
    ]
    FeatureStore(repo_path=str(path)).apply(objects)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    feast = Path(sys.executable).parent / "feast"
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="kosmos-bench-apply-")))
    print(f"{'repository':<32}{'case':<44}{'median s':>10}")
    for label, (files, tables) in _repos().items():
        times: dict[str, list[float]] = {k: [] for k in ("a", "a2", "b", "c", "d")}
        inproc: list[float] = []
        for _ in range(args.rounds):
            cli = _fresh(settings, tables)
            for name, source in files.items():
                (cli.path / name).write_text(source)
            run = subprocess.run
            times["a"].append(
                _timed(run, [str(feast), "apply"], cwd=cli.path, check=True, capture_output=True)
            )
            warm = _fresh(settings, tables)
            for name, source in files.items():
                (warm.path / name).write_text(source)
            times["a2"].append(_timed(_feast_in_process, warm.path))
            repo = _fresh(settings, tables)
            times["b"].append(_timed(repo.apply_files, files, applied_by="bench"))
            times["c"].append(_timed(repo.apply_files, files, applied_by="bench"))
            times["d"].append(_timed(compute_offline, repo))
            request = {
                "command": "run",
                "repo": str(repo.path),
                "files": repo.files(),
                "tables": str(repo.tables_dir),
                "jobs": pipeline_jobs(repo),
            }
            inproc.append(_timed(handle, request))
        cases = {
            "a": "(a) feast apply (CLI, a fresh process)",
            "a2": "(a') Feast API in-process: parse + apply",
            "b": "(b) Kosmos apply: child + checks + trial",
            "c": "(c) Kosmos apply, same files (unchanged)",
            "d": "(d) pipelines in a child process",
        }
        for key, name in cases.items():
            print(f"{label:<32}{name:<44}{statistics.median(times[key]):>10.3f}")
        print(f"{label:<32}{'(d) the same pipelines in-process':<44}{statistics.median(inproc):>10.3f}")


if __name__ == "__main__":
    main()
