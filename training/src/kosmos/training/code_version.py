"""The version of the training code: git commit, dirty flag and the uncommitted diff."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CodeVersion:
    commit: str
    dirty: bool
    diff: str
    repo_root: str


def _git(cwd: Path, *args: str) -> str | None:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else None


def code_version(path: Path | None = None) -> CodeVersion | None:
    """The git state of the repository containing ``path`` (default: the working directory).

    None when the code is not in a git repository: such a run can be tracked, but a
    model trained by it cannot be registered.
    """
    cwd = (path or Path.cwd()).resolve()
    if cwd.is_file():
        cwd = cwd.parent
    commit = _git(cwd, "rev-parse", "HEAD")
    root = _git(cwd, "rev-parse", "--show-toplevel")
    if not commit or not root:
        return None
    status = _git(cwd, "status", "--porcelain") or ""
    diff = _git(cwd, "diff", "HEAD") or ""
    return CodeVersion(commit=commit.strip(), dirty=bool(status.strip()), diff=diff, repo_root=root.strip())
