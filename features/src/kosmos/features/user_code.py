"""A project's feature code, run in a child process: ``python -m kosmos.features.user_code``.

A feature repository is Python: Feast definitions and the project's pipeline functions. Kosmos
never runs that code in the control plane's process. It starts this module with a minimal
environment (no database URL, token, password or cloud key of the server's), sends a JSON
request on stdin and reads a JSON answer on stdout:

- ``{"command": "load", "repo": <live repo path>, "files": {name: source}}`` executes the files
  as modules (``__file__`` is where the file lives, or will, in the live repository, so
  ``Path(__file__).parent`` means the repository) and returns every Feast object as its proto,
  plus the pipeline functions each module defines and their parameters;
- ``{"command": "run", ..., "jobs": [{"view", "pipeline", "output", "columns", "timestamps"}]}``
  also reads the tables each pipeline asks for (its parameter names), calls it, checks that the
  frame has the view's columns and writes it to the view's parquet file.

Errors come back as ``{"error": {"field", "reason"}}``: the parent turns them into a 422.
"""

from __future__ import annotations

import base64
import importlib.abc
import importlib.machinery
import inspect
import json
import linecache
import os
import sys
import traceback
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any


class UserCodeError(Exception):
    """A problem in the user's files, named by the field (a file, a view) it is about."""

    def __init__(self, field: str, reason: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason, self.details = field, reason, details


class _SourceFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Lets the repository's modules import each other (``from pipelines import x``) by file stem."""

    def __init__(self, sources: dict[str, str], repo: Path) -> None:
        self.sources, self.repo = sources, repo

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname in self.sources:
            origin = str(self.repo / f"{fullname}.py")
            return importlib.machinery.ModuleSpec(fullname, self, origin=origin)
        return None

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        name = module.__name__
        module.__file__ = str(self.repo / f"{name}.py")
        source = self.sources[name]
        # inspect.getsource (Feast's on-demand views call it) reads this, not the file on disk:
        # an mtime of None tells linecache never to re-read it from there
        linecache.cache[module.__file__] = (len(source), None, source.splitlines(True), module.__file__)
        try:
            code = compile(source, module.__file__, "exec")
            exec(code, module.__dict__)
        except UserCodeError:
            raise
        except Exception as exc:
            line = traceback.extract_tb(exc.__traceback__)[-1]
            where = f" (line {line.lineno})" if line.filename == module.__file__ else ""
            raise UserCodeError(f"{name}.py", f"cannot load{where}: {type(exc).__name__}: {exc}") from exc


def load_modules(files: dict[str, str], repo: Path) -> dict[str, ModuleType]:
    """Execute the repository's files; their modules by file name (taken out of ``sys.modules``).

    Out of ``sys.modules`` again afterwards, so an on-demand view's function is serialized by
    value (dill), as Feast needs to run it in another process.
    """
    stems = {name.removesuffix(".py"): source for name, source in files.items()}
    finder = _SourceFinder(stems, repo)
    sys.meta_path.insert(0, finder)
    shadowed = {stem: sys.modules.pop(stem) for stem in stems if stem in sys.modules}
    modules: dict[str, ModuleType] = {}
    try:
        for stem in sorted(stems):
            modules[f"{stem}.py"] = sys.modules.get(stem) or __import__(stem)
    finally:
        sys.meta_path.remove(finder)
        for stem in stems:
            sys.modules.pop(stem, None)
        sys.modules.update(shadowed)
    return modules


def kind_of(value: Any) -> str | None:
    """A Feast object's kind as Kosmos names it (``entity``, ``feature_view``, ...), else None."""
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView
    from feast.data_source import DataSource

    for cls, kind in (
        (Entity, "entity"),
        (DataSource, "data_source"),
        (OnDemandFeatureView, "on_demand_feature_view"),
        (FeatureView, "feature_view"),
        (FeatureService, "feature_service"),
    ):
        if isinstance(value, cls):
            return kind
    return None


def _own_function(value: Any, module: ModuleType) -> bool:
    """A function the module defines (not one it imports)."""
    return inspect.isfunction(value) and value.__module__ == module.__name__


def describe(modules: dict[str, ModuleType]) -> dict[str, Any]:
    """Every Feast object (as a base64 proto, with the file that defines it) and every pipeline."""
    objects: list[dict[str, str]] = []
    seen: list[Any] = []
    pipelines: dict[str, dict[str, Any]] = {}
    for file, module in modules.items():
        for attr, value in vars(module).items():
            kind = kind_of(value)
            if kind is not None and not any(value is s for s in seen):
                seen.append(value)
                proto = value.to_proto().SerializeToString()
                objects.append({"kind": kind, "file": file, "proto": base64.b64encode(proto).decode()})
            elif _own_function(value, module) and not attr.startswith("_"):
                params = list(inspect.signature(value).parameters)
                pipelines.setdefault(attr, {"file": file, "inputs": params})
    return {"objects": objects, "pipelines": pipelines}


def _utc_microseconds(frame: Any, column: str, field: str) -> None:
    import pandas as pd

    series = frame[column]
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        raise UserCodeError(field, f"column {column!r} must be timestamps, found {series.dtype}")
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        raise UserCodeError(field, f"column {column!r} must be timezone-aware (UTC)")
    frame[column] = series.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def run_job(modules: dict[str, ModuleType], tables: Path, job: dict[str, Any]) -> int:
    """Run one view's pipeline; the rows written to its parquet file."""
    import pandas as pd

    view, name = job["view"], job["pipeline"]
    owners = [m for m in modules.values() if _own_function(getattr(m, name, None), m)]
    function = getattr(owners[0], name) if owners else None
    if function is None:
        raise UserCodeError(f"{view}.tags.kosmos.pipeline", f"no function {name!r} in the repository's files")
    inputs: dict[str, Any] = {}
    for param in inspect.signature(function).parameters:
        path = tables / f"{param}.parquet"
        if not path.is_file():
            known = sorted(p.stem for p in tables.glob("*.parquet"))
            raise UserCodeError(
                f"{name}({param})", f"no table {param!r} in the project; upload it first (tables: {known})"
            )
        inputs[param] = pd.read_parquet(path)
    try:
        frame = function(**inputs)
    except UserCodeError:
        raise
    except Exception as exc:
        problems = getattr(exc, "details", None)  # a KosmosError (kosmos.features.pipelines.validate)
        reason = str(exc) if problems else f"{type(exc).__name__}: {exc}"
        raise UserCodeError(f"pipeline {name}", reason, problems) from exc
    if not isinstance(frame, pd.DataFrame):
        returned = type(frame).__name__
        raise UserCodeError(f"pipeline {name}", f"must return a pandas DataFrame, returned {returned}")
    missing = [c for c in job["columns"] if c not in frame.columns]
    if missing:
        raise UserCodeError(f"pipeline {name}", f"the frame for view {view!r} lacks columns {missing}")
    for column in job["timestamps"]:
        _utc_microseconds(frame, column, f"pipeline {name}")
    output = Path(job["output"])
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{uuid.uuid4().hex}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, output)
    return len(frame)


def handle(request: dict[str, Any]) -> dict[str, Any]:
    """Answer one request of the parent (see the module docstring)."""
    repo = Path(request["repo"])
    modules = load_modules(request["files"], repo)
    if request["command"] == "load":
        return describe(modules)
    rows = {job["view"]: run_job(modules, Path(request["tables"]), job) for job in request["jobs"]}
    return {"rows": rows}


def main() -> None:
    request = json.load(sys.stdin)
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # a print() in the user's code must not corrupt the answer
    try:
        answer = handle(request)
    except UserCodeError as exc:
        answer = {"error": {"field": exc.field, "reason": exc.reason, "details": exc.details}}
    except Exception as exc:  # a bug of ours or of a library: the parent logs the traceback
        answer = {"error": {"field": "repository", "reason": f"{type(exc).__name__}: {exc}"}}
        traceback.print_exc()
    json.dump(answer, real_stdout)
    real_stdout.flush()


if __name__ == "__main__":
    main()
