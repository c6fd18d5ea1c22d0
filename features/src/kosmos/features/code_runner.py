"""Where a project's feature code runs: one small interface, two backends.

    apply / pipelines --request--> CodeRunner --> kosmos.features.user_code (a fresh process)

- :class:`LocalRunner` (``features.code_runner_url`` unset, the embedded profile): a child
  process on this host whose environment holds none of the server's secrets. It runs as the
  server's OS user, so it is a boundary against accidents, not against a hostile project.
- :class:`RemoteRunner` (a URL, the production profile): the request and the tables it needs
  travel as one zip archive to the feature-jobs service (:mod:`kosmos.features.job_runner`),
  which runs the same child in a scratch folder of its own host, holding no platform secret,
  no other project's data and (compose, Kubernetes) no network route to the platform's
  databases. The frames it computed come back in the answer's archive and are written here.

Both take the same request :mod:`kosmos.features.user_code` reads, and give its answer.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import httpx

from kosmos.platform.errors import InvalidInput, ServiceUnavailable
from kosmos.platform.settings import Settings

log = logging.getLogger(__name__)

CHILD_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")
"""All the child process inherits: none of the server's secrets (database URL, tokens, keys)."""

REQUEST, ANSWER = "request.json", "answer.json"


class CodeRunner(ABC):
    """Runs one request of :mod:`kosmos.features.user_code` and returns its answer."""

    @abstractmethod
    def run(self, request: dict[str, Any], *, timeout_s: float) -> dict[str, Any]:
        """The child's answer; a problem in the user's code is an InvalidInput naming it."""


def runner_for(settings: Settings) -> CodeRunner:
    """The runner the settings choose (``features.code_runner_url``)."""
    url = settings.features.code_runner_url
    if url is None:
        return LocalRunner()
    token = settings.features.code_runner_token
    if token is None:
        raise ServiceUnavailable("features.code_runner_url is set but features.code_runner_token is not")
    return RemoteRunner(url, token.get_secret_value())


class LocalRunner(CodeRunner):
    """A fresh child process on this host, with a minimal environment."""

    def run(self, request: dict[str, Any], *, timeout_s: float) -> dict[str, Any]:
        return raise_for_error(self.answer(request, timeout_s=timeout_s))

    def answer(self, request: dict[str, Any], *, timeout_s: float) -> dict[str, Any]:
        """The child's answer as it gave it: a problem is an ``{"error": ...}``, not raised."""
        env = {k: os.environ[k] for k in CHILD_ENV if k in os.environ}
        try:
            done = subprocess.run(
                [sys.executable, "-m", "kosmos.features.user_code"],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                env=env,
                cwd=request["repo"],
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            return _error("repository", f"the feature code ran longer than {timeout_s:.0f} s")
        if done.stderr.strip():
            log.info("feature code said: %s", done.stderr.strip()[-4000:])
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError:
            reason = (
                done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
            )
            return _error("repository", f"the feature code crashed: {reason}")


def _error(field: str, reason: str) -> dict[str, Any]:
    return {"error": {"field": field, "reason": reason}}


def raise_for_error(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer, or the InvalidInput its error stands for."""
    if "error" in answer:
        error = answer["error"]
        if error.get("details"):
            raise InvalidInput(f"{error['field']}: {error['reason']}", details=error["details"])
        raise InvalidInput.field(error["field"], error["reason"])
    return answer


def pipeline_inputs(files: dict[str, str], functions: set[str]) -> set[str]:
    """The parameter names (table names) of the module-level ``functions`` in ``files``, read
    from the syntax tree: nothing of the user's code runs here."""
    names: set[str] = set()
    for source in files.values():
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue  # the child names the syntax error
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in functions:
                args = node.args
                names.update(a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs])
    return names


class RemoteRunner(CodeRunner):
    """The feature-jobs service: the request and its tables in, the answer and frames out."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def run(self, request: dict[str, Any], *, timeout_s: float) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="kosmos-feature-job-") as tmp:
            sent = Path(tmp) / "request.zip"
            outputs = _pack(request, sent)
            received = Path(tmp) / "answer.zip"
            self._post(sent, received, timeout_s)
            with zipfile.ZipFile(received) as archive:
                answer = raise_for_error(json.loads(archive.read(ANSWER)))
                for view, output in outputs.items():
                    if f"out/{view}.parquet" in archive.namelist():
                        _write_atomically(archive, f"out/{view}.parquet", output)
            return answer

    def _post(self, sent: Path, received: Path, timeout_s: float) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/zip"}
        timeout = httpx.Timeout(timeout_s + 30, connect=10)
        try:
            with (
                sent.open("rb") as body,
                httpx.stream(
                    "POST", f"{self.url}/jobs", content=body, headers=headers, timeout=timeout
                ) as response,
            ):
                if response.status_code != 200:
                    response.read()
                    raise ServiceUnavailable(
                        f"the feature-jobs service at {self.url} answered {response.status_code}: "
                        f"{response.text[:300]}"
                    )
                with received.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"the feature-jobs service (features.code_runner_url={self.url}) is unreachable: {exc}"
            ) from exc


def _pack(request: dict[str, Any], archive_path: Path) -> dict[str, Path]:
    """The request as the runner will read it, and the tables its pipelines name; the real
    output path of each view (the runner writes ``out/<view>.parquet`` instead)."""
    jobs = request.get("jobs", [])
    outputs = {job["view"]: Path(job["output"]) for job in jobs}
    portable = {**request, "jobs": [{**job, "output": f"out/{job['view']}.parquet"} for job in jobs]}
    with zipfile.ZipFile(archive_path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(REQUEST, json.dumps(portable))
        if jobs:
            tables = Path(request["tables"])
            wanted = pipeline_inputs(request["files"], {job["pipeline"] for job in jobs})
            for name in sorted(wanted):
                path = tables / f"{name}.parquet"
                if path.is_file():  # a missing one: the child names it, with the tables it has
                    archive.write(path, f"tables/{name}.parquet")
    return outputs


def _write_atomically(archive: zipfile.ZipFile, member: str, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{uuid.uuid4().hex}.tmp")
    try:
        with archive.open(member) as source, tmp.open("wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


def run_unpacked(archive_path: Path, folder: Path, *, timeout_s: float) -> Path:
    """The runner's side: unpack a job into ``folder``, run it with :class:`LocalRunner`, and
    pack its answer (and the frames it wrote) into an archive; its path."""
    if not zipfile.is_zipfile(archive_path):
        raise InvalidInput.field("job", "the body must be a zip archive (request.json, tables/*.parquet)")
    with zipfile.ZipFile(archive_path) as archive:
        names = archive.namelist()
        bad = [n for n in names if n != REQUEST and not (n.startswith("tables/") and n.endswith(".parquet"))]
        if bad or REQUEST not in names or any("/" in n.removeprefix("tables/") or ".." in n for n in names):
            raise InvalidInput.field("job", f"unexpected archive members: {sorted(names)[:10]}")
        request = json.loads(archive.read(REQUEST))
        (folder / "tables").mkdir()
        for name in names:
            if name.startswith("tables/"):
                with archive.open(name) as source, (folder / name).open("wb") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
    repo = folder / "repo"
    repo.mkdir()
    request = {
        **request,
        "repo": str(repo),
        "tables": str(folder / "tables"),
        "jobs": [
            {**job, "output": str(folder / "out" / f"{job['view']}.parquet")}
            for job in request.get("jobs", [])
        ],
    }
    answer = LocalRunner().answer(request, timeout_s=timeout_s)
    packed = folder / "answer.zip"
    with zipfile.ZipFile(packed, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(ANSWER, json.dumps(answer))
        for job in request["jobs"]:
            out = Path(job["output"])
            if out.is_file():
                archive.write(out, f"out/{job['view']}.parquet")
    return packed
