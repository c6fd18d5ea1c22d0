"""The version of the training code: git commit, dirty flag and the uncommitted diff.

The diff covers untracked files too (those ``.gitignore`` does not exclude), as new-file
patches: ``git apply code/uncommitted.diff`` on the commit gives back the tree the run used.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

MAX_UNTRACKED_BYTES = 1024 * 1024
"""An untracked file larger than this (data, a model) is named in the diff, not copied into it."""


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
    untracked = (
        _git(cwd, "ls-files", "--others", "--exclude-standard", "-z", "--full-name", ":/") or ""
    ).split("\0")
    patches = [_new_file_patch(Path(root.strip()), name) for name in untracked if name]
    notes = "".join(p for p in patches if p.startswith("#"))  # git apply skips text before a diff
    diff = notes + diff + "".join(p for p in patches if not p.startswith("#"))
    return CodeVersion(commit=commit.strip(), dirty=bool(status.strip()), diff=diff, repo_root=root.strip())


def _new_file_patch(root: Path, name: str) -> str:
    """A git patch that creates ``name`` as it is now (a note instead for a large or binary file)."""
    path = root / name
    text, size = None, -1
    try:
        size = path.stat().st_size
        data = path.read_bytes() if size <= MAX_UNTRACKED_BYTES else b"\0"
        text = data.decode() if b"\0" not in data else None
    except (OSError, UnicodeDecodeError):
        pass
    if text is None:
        return f"# untracked, not included: {name} ({size} bytes, binary or over {MAX_UNTRACKED_BYTES})\n"
    header = f"diff --git a/{name} b/{name}\nnew file mode 100644\n"
    if not text:
        return header
    lines = text.splitlines(keepends=True)
    body = "".join("+" + line for line in lines)
    if not text.endswith("\n"):
        body += "\n\\ No newline at end of file\n"
    return header + f"--- /dev/null\n+++ b/{name}\n@@ -0,0 +1,{len(lines)} @@\n" + body
