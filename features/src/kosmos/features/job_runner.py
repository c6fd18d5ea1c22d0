"""The feature-jobs service: ``python -m kosmos.features.job_runner`` (production profile).

It runs projects' feature code (definitions and pipelines) away from the platform. It holds
no platform secret, no database URL and no project's data at rest: each job brings its files
and the tables it reads as one zip archive, runs in a fresh child process in a scratch folder
that is deleted afterwards, and the answer (with the frames it computed) goes back the same
way. Only the platform's ``features.code_runner_token`` is accepted, checked before a byte of
the body is read. compose and Kubernetes give it no route to the databases, MLflow or Redis.

    POST /jobs     application/zip (request.json, tables/*.parquet) -> application/zip
    GET  /healthz  {"status": "ok"}
"""

from __future__ import annotations

import argparse
import hmac
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from kosmos.features.code_runner import run_unpacked
from kosmos.platform.errors import KosmosError
from kosmos.platform.settings import get_settings

log = logging.getLogger("kosmos.features.job_runner")

MAX_JOB_BYTES = 8 << 30
"""A job's archive: its files and tables (each table at most 512 MiB, kosmos.features.project_tables)."""
JOB_TIMEOUT_S = 3600.0


class _TooLarge(Exception):
    pass


def create_app(token: str, *, max_job_bytes: int = MAX_JOB_BYTES) -> FastAPI:
    """The service's app, accepting ``token`` only."""
    app = FastAPI(title="Kosmos feature jobs", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/jobs", response_model=None)
    async def run_job(request: Request) -> Any:
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"error": "send the platform's features.code_runner_token"}, status_code=401)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_job_bytes:
            return JSONResponse({"error": f"a job is at most {max_job_bytes} bytes"}, status_code=413)
        folder = Path(tempfile.mkdtemp(prefix="kosmos-job-"))
        try:
            archive, size = folder / "job.zip", 0
            with archive.open("wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_job_bytes:
                        raise _TooLarge
                    out.write(chunk)
            packed = await run_in_threadpool(run_unpacked, archive, folder, timeout_s=JOB_TIMEOUT_S)
        except _TooLarge:
            shutil.rmtree(folder, ignore_errors=True)
            return JSONResponse({"error": f"a job is at most {max_job_bytes} bytes"}, status_code=413)
        except KosmosError as exc:  # a malformed archive
            shutil.rmtree(folder, ignore_errors=True)
            return JSONResponse({"error": exc.message}, status_code=exc.status_code)
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(
            packed,
            media_type="application/zip",
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    token = get_settings().features.code_runner_token
    if token is None:
        raise SystemExit("set KOSMOS_FEATURES__CODE_RUNNER_TOKEN: the service accepts only that token")
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(create_app(token.get_secret_value()), host=args.host, port=args.port, access_log=False)


if __name__ == "__main__":
    main()
