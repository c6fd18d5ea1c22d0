"""Secrets the embedded platform makes for itself (Ray's token, MLflow's service token)."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path


def local_secret(path: Path) -> str:
    """The secret in ``path``, generated once (mode 0600) when there is none.

    Written atomically, so two processes starting at once read one secret, never half of one.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        os.link(tmp, path)  # fails if another process got there first: theirs wins
    except FileExistsError:
        pass
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path.read_text().strip()
