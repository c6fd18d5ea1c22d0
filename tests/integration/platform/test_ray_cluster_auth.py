"""The platform's Ray cluster runs with Ray's token authentication: joining it takes the token."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
JOIN = "import ray; ray.init(address='{address}', log_to_driver=False); print(len(ray.nodes()))"


def _join(address: str, home: Path, **auth: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env |= {"HOME": str(home), **auth}  # HOME: no ~/.ray/auth_token of the machine's user
    return subprocess.run(
        [sys.executable, "-c", JOIN.format(address=address)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_joining_the_cluster_takes_its_token(ray_cluster: str, tmp_path: Path) -> None:
    without = _join(ray_cluster, tmp_path)
    assert without.returncode != 0 and "uthentication" in without.stderr, without.stderr[-2000:]
    wrong = _join(ray_cluster, tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64)
    assert wrong.returncode != 0 and "uthentication" in wrong.stderr, wrong.stderr[-2000:]
    right = _join(ray_cluster, tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=os.environ["RAY_AUTH_TOKEN"])
    assert right.returncode == 0 and int(right.stdout.split()[-1]) >= 1, right.stderr[-2000:]


def test_a_reconciler_that_cannot_reach_ray_is_reported_by_readyz_and_doctor(
    ray_cluster: str, platform_env, tmp_path: Path
) -> None:
    """The reconciler of a platform whose Ray token is wrong: every pass fails, and says why."""
    from kosmos.platform.doctor import run_checks

    settings = platform_env.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "KOSMOS_"))}
    env |= {
        "HOME": str(tmp_path),
        "KOSMOS_HOME": str(settings.home),
        "KOSMOS_DATABASE__URL": settings.database_url,
        "KOSMOS_MLFLOW__TRACKING_URI": settings.mlflow_tracking_uri,
        "KOSMOS_RAY__ADDRESS": ray_cluster,
        "KOSMOS_RAY__AUTH_TOKEN": "f" * 64,  # not the cluster's
        "KOSMOS_DEPLOYMENT__RECONCILE_SECONDS": "1",
    }
    reconciler = subprocess.Popen(
        [sys.executable, "-m", "kosmos.deployment.reconciler"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while (ready := platform_env.client.get("/readyz").json())["status"] == "ready":
            assert reconciler.poll() is None and time.monotonic() < deadline, ready
            time.sleep(1)
    finally:
        reconciler.terminate()
        reconciler.wait(timeout=60)
    assert ready["status"] == "degraded" and ready["problems"] == {}, ready
    cause = ready["degraded"]["deployment reconciler"]
    assert ray_cluster in cause and "authentication token" in cause, cause
    check = next(c for c in run_checks(settings) if c.service == "deployment reconciler")
    assert check.status == "FAIL" and ray_cluster in check.detail and "authentication token" in check.detail
