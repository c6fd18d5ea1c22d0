"""Every Kosmos package installs, joins the namespace and registers itself."""

from __future__ import annotations

import importlib
import platform as stdlib_platform
import subprocess
import sys
from pathlib import Path

PACKAGES = ["features", "training", "deployment", "genai", "ui"]
ROOT = Path(__file__).resolve().parents[3]


def test_packages_register_through_entry_points(platform_env) -> None:
    plugins = platform_env.ok("GET", "/api/v1/plugins")
    assert {p["name"] for p in plugins} >= set(PACKAGES)
    assert {p["package"] for p in plugins} >= {f"kosmos-{p}" for p in PACKAGES}


def test_every_package_imports_into_one_namespace() -> None:
    for name in ["platform", *PACKAGES]:
        module = importlib.import_module(f"kosmos.{name}")
        assert f"{name}/src/kosmos/{name}" in module.__file__.replace("\\", "/")


def test_no_root_folder_shadows_the_standard_library() -> None:
    # run from the repository root, where a stray platform/__init__.py would win
    out = subprocess.run(
        [sys.executable, "-c", "import platform; print(platform.system())"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == stdlib_platform.system()
    assert not any((ROOT / d / "__init__.py").exists() for d in ["platform", *PACKAGES, "tests"])


def test_cli_mounts_plugin_groups() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kosmos.platform.cli.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for group in ("projects", "teams", "tokens", "audit", "db", "ui"):
        assert group in out.stdout
