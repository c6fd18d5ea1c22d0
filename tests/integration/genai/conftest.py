"""One live platform serving the packaged default LLM on the real vLLM engine through Ray Serve,
shared by the OpenAI-API, gateway, assistant and failure tests (package scope: about 60 s to start;
stopped when this package's tests end, so its engine's memory and CPU are free for the rest of the run).
Tests that change the platform (policies, extra deployments) put it back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from kosmos.deployment import sdk as deployments
from kosmos.genai.demo import register_default_llm
from kosmos.platform import KosmosClient
from kosmos.platform.bootstrap import bootstrap
from kosmos.platform.db.engine import Database

LLM = "chat"
# the real vLLM engine, shared by every test here; enforce_eager starts it in ~30 s instead of ~90 s.
# float32, not the bfloat16 default: the tests read greedy answers word for word, and in bfloat16 this
# 135M model's first tokens are close enough that a full CI run (2 busy cores) once answered the
# capital question "L'Étoile, la Marseillaise, ..." where every run alone says Paris
SPEC = {
    "engine": "vllm",
    "dtype": "float32",
    "enforce_eager": True,
    "max_num_seqs": 8,
    "max_model_len": 1024,
    "default_max_tokens": 32,
}
# canaries: judged on errors (an LLM call takes seconds, so no tight latency bound), never promoted here
ROLLOUT = {
    "steps": [50, 100],
    "step_seconds": 3600,
    "slo": {"min_requests": 4, "max_error_rate": 0.2, "max_p99_ms": 120000},
}


@pytest.fixture(scope="package")
def llm_env(
    ray_cluster: str, tmp_path_factory, free_port, live_platform, platform_home, reconciler_loop
) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("llm-home")
    settings = platform_home(home)
    database = Database(settings.database_url)
    admin = bootstrap(settings, database).token
    with pytest.MonkeyPatch.context() as patch, live_platform(settings, database, free_port()) as url:
        patch.chdir(home)  # MLflow puts a SQLite store's artifacts under ./mlruns
        settings = settings.model_copy(update={"client": settings.client.model_copy(update={"url": url})})
        with KosmosClient(url=url, token=admin) as c, reconciler_loop(settings, database):
            c.post("/projects", {"name": "other", "team": "risk"})
            c.post("/users", {"name": "otto"})
            c.put("/projects/other/members/otto", {"role": "admin"})
            other = c.post("/tokens", {"name": "otto", "user": "otto"})["token"]
            version = register_default_llm(settings, c)
            deployments.create(
                "demo",
                LLM,
                "smollm2-135m-instruct",
                version=str(version),
                llm=SPEC,
                num_cpus=0.5,
                rollout=ROLLOUT,
                client=c,
            )
            deadline = time.monotonic() + 300
            while (state := deployments.status("demo", LLM, client=c))["status"] != "healthy":
                assert state["status"] != "failed" and time.monotonic() < deadline, (
                    state["status"],
                    state["reason"],
                )
                time.sleep(1)
            yield {"url": url, "admin": admin, "other": other, "settings": settings, "state": state}
    from ray import serve

    from kosmos.deployment.dataplane import APP

    doomed = [a for a in serve.status().applications if a.startswith("kosmos--") or a == "kosmos-embeddings"]
    doomed.append(APP)  # its settings name this platform's database, which goes with the fixture
    for app in doomed:
        serve.delete(app, _blocking=False)  # all at once, then wait for them together, bounded
    deadline = time.monotonic() + 120
    while (left := [a for a in doomed if a in serve.status().applications]) and time.monotonic() < deadline:
        time.sleep(1)
    if left:  # cleanup only: they go with the session's cluster; later tests use their own names
        print(f"LLM tests: {left} still deleting after 120 s")
    database.dispose()
