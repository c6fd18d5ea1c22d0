"""The token `kosmos login` saves, written atomically with mode 0600."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def save_credentials(path: Path, url: str, token: str) -> None:
    """Write ``{url, token}`` so no reader ever sees a half-written or world-readable file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".credentials-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"url": url, "token": token}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_credentials(path: Path) -> dict[str, str]:
    """The saved ``{url, token}``, or an empty dict when there is none."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read saved credentials {path}: {exc}; run `kosmos login` again") from exc
    return {k: v for k, v in data.items() if k in ("url", "token") and isinstance(v, str)}
