"""A project's tables: parquet files its pipelines read and its Feast sources may name.

A table lives at ``feature_repo/data/tables/<name>.parquet``: a pipeline function asks for it by
naming a parameter ``<name>``; a ``FileSource(path="data/tables/<name>.parquet")`` reads it as it
is. Uploads are checked to be parquet and replace the table atomically (a reader sees the old
file or the new one, never half of one). A table may also come from a Kosmos dataset version
(``kosmos.datasets.as_feature_table``): it then shows that version as its origin.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import uuid
from typing import Any

import pyarrow.parquet as pq

from kosmos.features.repo import FeatureRepo
from kosmos.platform.errors import InvalidInput, NotFound

MAX_TABLE_BYTES = 512 * 1024 * 1024
TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def check_name(name: str) -> str:
    """A table name is a Python parameter name (a pipeline asks for it by one)."""
    if not TABLE_NAME.match(name):
        raise InvalidInput.field(
            "table", "lowercase letters, digits and _, starting with a letter, at most 63"
        )
    return name


def _describe(name: str, data: bytes | None, path: Any) -> dict[str, Any]:
    meta = pq.read_metadata(io.BytesIO(data) if data is not None else path)
    schema = meta.schema.to_arrow_schema()
    return {
        "table": name,
        "rows": meta.num_rows,
        "columns": {f.name: str(f.type) for f in schema},
        "path": f"data/tables/{name}.parquet",
    }


def _origin_path(repo: FeatureRepo, name: str) -> Any:
    return repo.tables_dir / f".{name}.origin.json"


def write_table(repo: FeatureRepo, name: str, data: bytes, *, origin: str | None = None) -> dict[str, Any]:
    """Check ``data`` is a parquet file with columns and make it table ``name``.

    ``origin``: where the data came from (a dataset version's URI), shown with the table."""
    check_name(name)
    if len(data) > MAX_TABLE_BYTES:
        raise InvalidInput.field("body", f"at most {MAX_TABLE_BYTES} bytes of parquet")
    try:
        described = _describe(name, data, None)
    except Exception as exc:
        raise InvalidInput.field("body", f"not a parquet file: {exc}") from exc
    if not described["columns"]:
        raise InvalidInput.field("body", "the table has no columns")
    path = repo.tables_dir / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    digest = hashlib.sha256(data).hexdigest()
    marker = _origin_path(repo, name)
    if origin is None:
        marker.unlink(missing_ok=True)
    else:
        stat = path.stat()  # a later upload replaces the file: another size or mtime
        marker.write_text(json.dumps({"origin": origin, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}))
    return {**described, "bytes": len(data), "sha256": digest, "origin": origin}


def _origin(repo: FeatureRepo, name: str, path: Any) -> str | None:
    """The recorded origin, if the table is still the file it came with (no hashing per listing)."""
    try:
        marker = json.loads(_origin_path(repo, name).read_text())
    except (FileNotFoundError, ValueError):
        return None
    stat = path.stat()
    same = (marker.get("size"), marker.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns)
    return marker["origin"] if same else None


def list_tables(repo: FeatureRepo) -> list[dict[str, Any]]:
    """Every table with its rows, columns and size."""
    out = []
    for path in sorted(repo.tables_dir.glob("*.parquet")):
        if TABLE_NAME.match(path.stem):
            described = _describe(path.stem, None, path)
            out.append({**described, "bytes": path.stat().st_size, "origin": _origin(repo, path.stem, path)})
    return out


def delete_table(repo: FeatureRepo, name: str) -> None:
    path = repo.tables_dir / f"{check_name(name)}.parquet"
    if not path.is_file():
        raise NotFound(f"project {repo.project!r} has no table {name!r}")
    path.unlink()
    _origin_path(repo, name).unlink(missing_ok=True)
