"""Connecting to the Ray cluster Kosmos trains and serves on."""

from __future__ import annotations

import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from kosmos.platform.errors import ServiceUnavailable
from kosmos.platform.local_secrets import local_secret
from kosmos.platform.settings import Settings

_lock = threading.Lock()


def head_command(port: int, *, num_cpus: float | None = None, temp_dir: str | None = None) -> list[str]:
    """``ray start --head`` in the foreground, without dashboard or usage stats (kosmos up, tests)."""
    command = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        "--block",
        "--port",
        str(port),
        "--include-dashboard",
        "false",
        "--disable-usage-stats",
    ]
    if num_cpus:
        command += ["--num-cpus", str(num_cpus)]
    if temp_dir:
        command += ["--temp-dir", temp_dir]
    return command


def serve_env(settings: Settings) -> dict[str, str]:
    """The environment every Ray node of the platform starts with, for the data plane's ingress.

    Ray Serve reads these when its processes start, so they belong to the nodes (the embedded
    head, the KubeRay pods, compose's Ray services), not to a Kosmos process.
    """
    if settings.dataplane.ingress == "proxy":
        return {}
    return {  # measured in bench/serve_ingress.py: HAProxy 1.50x Serve's proxy, with gRPC 1.75x
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
        "RAY_SERVE_HAPROXY_STATS_PORT": str(settings.dataplane.haproxy_stats_port),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(settings.dataplane.haproxy_metrics_port),
    }


def local_auth_token(home: Path) -> str:
    """The embedded Ray instance's auth token: ``{home}/ray/auth_token``, generated once (mode 0600)."""
    return local_secret(home / "ray" / "auth_token")


def auth_env(settings: Settings) -> dict[str, str]:
    """Ray's token-authentication variables for a node or a client of the platform's cluster.

    The configured ``ray.auth_token``; else, for the local instance `kosmos up` starts, its
    generated token; else nothing, and Ray looks the token up itself (an external cluster).
    """
    if settings.ray.auth_token is not None:
        token = settings.ray.auth_token.get_secret_value()
    elif settings.ray.address is None and not os.environ.get("RAY_ADDRESS"):
        token = local_auth_token(settings.home)
    else:
        return {}
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}


def ray_address(settings: Settings) -> str:
    """The configured cluster, else ``RAY_ADDRESS``, else the embedded head node of `kosmos up`."""
    return settings.ray.address or os.environ.get("RAY_ADDRESS") or f"127.0.0.1:{settings.ray.gcs_port}"


def connect(settings: Settings) -> None:
    """Join the Ray cluster once per process (idempotent, thread-safe).

    Never starts a private Ray instance: a missing cluster is an error naming the
    address, so nothing trains or serves on a cluster nobody can see.
    """
    import ray
    from ray.exceptions import AuthenticationError

    with _lock:
        if ray.is_initialized():
            return
        address = ray_address(settings)
        if auth := auth_env(settings):
            use_auth(auth)
        try:
            ray.init(
                address=address,
                namespace="kosmos",
                log_to_driver=False,
                ignore_reinit_error=True,
                configure_logging=False,
            )
        except (AuthenticationError, ConnectionError, RuntimeError) as exc:
            if isinstance(exc, AuthenticationError) or _answers(address):
                # Ray reports a refused token only in its C++ log; the GCS answering tells it apart
                raise ServiceUnavailable(
                    f"Ray cluster at {address} answers but refused this process ({exc}): most often a "
                    "wrong or missing authentication token; set ray.auth_token (KOSMOS_RAY__AUTH_TOKEN) "
                    "to the cluster's"
                ) from exc
            raise ServiceUnavailable(f"Ray cluster at {address} is unreachable: {exc}") from exc


def _answers(address: str) -> bool:
    """Whether the GCS at ``host:port`` (or ``ray://host:port``) accepts a TCP connection."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def use_auth(auth: dict[str, str]) -> None:
    """Put ``auth_env``'s variables into this process, where Ray reads its token from.

    Ray caches its config when it is imported; this refreshes it as Ray itself does when it
    turns token mode on in-process, so the next ``ray.init`` sends the token.
    """
    from ray._raylet import AuthenticationTokenLoader, Config

    os.environ.update(auth)
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def cluster_status(settings: Settings) -> dict[str, Any]:
    """The Ray cluster's nodes as the GCS sees them, and whether any has gone.

    ``status`` is ``healthy`` when every node that joined is alive and ``degraded``
    when one has died (its replicas and training workers are being replaced on the
    others). The GCS remembers dead nodes, so a lost worker stays visible.
    """
    import ray

    connect(settings)
    nodes = []
    for node in ray.nodes():
        resources = node.get("Resources") or {}
        nodes.append(
            {
                "node_id": node["NodeID"],
                "address": node.get("NodeManagerAddress", ""),
                "alive": bool(node.get("Alive")),
                "head": "node:__internal_head__" in resources,
                "cpus": resources.get("CPU", 0.0),
                "gpus": resources.get("GPU", 0.0),
                "death_reason": node.get("DeathReasonMessage") or None,
            }
        )
    dead = [n for n in nodes if not n["alive"]]
    alive = len(nodes) - len(dead)
    if dead:
        reason = f"{len(dead)} of {len(nodes)} nodes down: " + ", ".join(
            f"{n['address']} ({n['node_id'][:8]})" for n in dead
        )
    else:
        reason = f"{alive} node{'s' if alive != 1 else ''} alive"
    return {
        "address": ray_address(settings),
        "status": "degraded" if dead else "healthy",
        "reason": reason,
        "alive_nodes": alive,
        "cpus": sum(n["cpus"] for n in nodes if n["alive"]),
        "gpus": sum(n["gpus"] for n in nodes if n["alive"]),
        "nodes": nodes,
    }
