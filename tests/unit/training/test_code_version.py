"""The code version a run records: the commit, and a diff that gives back the working tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kosmos.training.code_version import code_version


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_the_diff_holds_untracked_files_and_applies_onto_the_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / ".gitignore").write_text("*.parquet\n")
    (repo / "model.py").write_text("LAYERS = 2\n")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    (repo / "model.py").write_text("LAYERS = 3\n")
    (repo / "jobs").mkdir()
    (repo / "jobs" / "train.py").write_text("import model\nprint(model.LAYERS)")  # never committed
    (repo / "data.parquet").write_bytes(b"PAR1\0")  # ignored by .gitignore

    version = code_version(repo / "jobs")
    assert version is not None and version.dirty
    assert "jobs/train.py" in version.diff and "data.parquet" not in version.diff

    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(repo), str(clone))
    (tmp_path / "run.diff").write_text(version.diff)
    _git(clone, "apply", str(tmp_path / "run.diff"))
    assert (clone / "jobs" / "train.py").read_text() == "import model\nprint(model.LAYERS)"
    assert (clone / "model.py").read_text() == "LAYERS = 3\n"


def test_outside_a_git_repository_there_is_no_code_version(tmp_path: Path) -> None:
    assert code_version(tmp_path) is None
