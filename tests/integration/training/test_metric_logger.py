"""Per-step metrics leave the training process through shared memory to a logger process, which stores
them in MLflow: a trainer killed right after a step loses nothing, steps and order hold, and a
refusal reaches the trainer. Against a real MLflow server behind Kosmos's gate."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from kosmos.training.metric_buffer import MetricRing

HERE = Path(__file__).parent
STEPS = 400

TRAINER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from kosmos.platform.client import KosmosClient
    from kosmos.platform.settings import Settings
    from kosmos.training.tracking import run

    api, token, tracking, home, steps = sys.argv[1:6]
    settings = Settings(home=home, mlflow={"tracking_uri": tracking})
    with KosmosClient(url=api, token=token) as kosmos:
        with run("demo", "crash", settings=settings, client=kosmos, code_path=Path(sys.argv[6])) as r:
            print(r.run_id, flush=True)
            for i in range(int(steps)):
                r.log_metrics({"loss": 1.0 / (i + 1), "step_seen": float(i)}, step=i)
            r.log_metrics({"odd": float("nan")}, step=int(steps))
            os.kill(os.getpid(), signal.SIGKILL)  # no close, no run end: the process just dies
    """
)


def _history(client: MlflowClient, run_id: str, key: str, expected: int) -> list[Any]:
    deadline = time.monotonic() + 90
    while True:
        found = client.get_metric_history(run_id, key)
        if len(found) >= expected or time.monotonic() > deadline:
            return sorted(found, key=lambda m: m.step)
        time.sleep(0.5)


def test_a_trainer_killed_after_a_step_loses_no_metric(gate, tmp_path, monkeypatch) -> None:
    alice = gate["tokens"]["alice"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS_", "MLFLOW_"))}
    arguments = [gate["api"], alice, gate["url"], str(tmp_path), str(STEPS), str(HERE)]
    trainer = subprocess.run(
        [sys.executable, "-c", TRAINER, *arguments],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert trainer.returncode == -signal.SIGKILL, trainer.stderr[-3000:]
    run_id = trainer.stdout.split()[0]

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", alice)
    client = MlflowClient(gate["url"])
    loss = _history(client, run_id, "loss", STEPS)
    assert [m.step for m in loss] == list(range(STEPS))  # every step, none twice
    assert [m.value for m in loss] == pytest.approx([1.0 / (i + 1) for i in range(STEPS)])
    seen = _history(client, run_id, "step_seen", STEPS)
    assert [m.value for m in seen] == [float(i) for i in range(STEPS)]
    odd = _history(client, run_id, "odd", 1)
    assert len(odd) == 1 and odd[0].step == STEPS and math.isnan(odd[0].value)
    stamps = [m.timestamp for m in loss]
    assert stamps == sorted(stamps)  # the order they were logged in


def test_a_refused_write_reaches_the_trainer(gate, monkeypatch) -> None:
    """bob is a viewer of demo: MLflow's gate refuses his metrics, and the trainer is told why."""
    from kosmos.platform.client import KosmosClient
    from kosmos.training.tracking import run

    with (
        KosmosClient(url=gate["api"], token=gate["tokens"]["alice"]) as kosmos,
        run("demo", "refused", settings=gate["settings"], client=kosmos, code_path=HERE) as r,
    ):
        run_id = r.run_id
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", gate["tokens"]["bob"])
    pipe = MetricRing(gate["url"], run_id)
    pipe.add({"loss": 0.5}, step=1)
    with pytest.raises(RuntimeError, match=r"metrics could not be stored: .*HTTP 403"):
        pipe.close()


def test_a_forked_child_neither_holds_the_run_open_nor_writes_into_it(gate, monkeypatch) -> None:
    """A DataLoader worker forks the training process: the run still ends at once, complete."""
    from kosmos.platform.client import KosmosClient
    from kosmos.training.tracking import run

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", gate["tokens"]["alice"])
    with (
        KosmosClient(url=gate["api"], token=gate["tokens"]["alice"]) as kosmos,
        run("demo", "forked", settings=gate["settings"], client=kosmos, code_path=HERE) as r,
    ):
        for i in range(50):
            r.log_metrics({"loss": float(i)}, step=i)
        child = os.fork()
        if child == 0:  # the worker: it may not log into its parent's run, and it lingers
            try:
                r.log_metrics({"loss": -1.0}, step=99)
                os._exit(1)
            except RuntimeError:
                time.sleep(60)
                os._exit(0)
        started = time.monotonic()
    try:
        assert time.monotonic() - started < 15  # the run ended without waiting for the child
        loss = MlflowClient(gate["url"]).get_metric_history(r.run_id, "loss")
        assert sorted(m.step for m in loss) == list(range(50))
    finally:
        os.kill(child, signal.SIGKILL)
        _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status)  # it was still sleeping: the refusal came, not os._exit(1)
