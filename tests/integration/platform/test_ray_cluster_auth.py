"""The platform's Ray cluster runs with Ray's token authentication: joining it takes the token."""

from __future__ import annotations

import os
import subprocess
import sys
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
