"""`zquant api` as a process of its own for the tests that drive it over HTTP
(api/test_routes.py on an instance, test_dagster_dev.py with --url on `make dev`), the POST
helper they send zquant's bodies with, and the check that a webserver serves a task's job."""

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import requests

from zquant_pipelines.constants import ENV_API_READ_TOKEN, ENV_API_TOKEN, REPO_ROOT
from zquant_pipelines.operations.base import REPOSITORY_NAME, location_name
from zquant_pipelines.tasks.builders import job_name
from zquant_pipelines_tests.support.ports import launch_on_free_port, start_logged, stop_group

PREFIX = "/api/v1/scheduler"
FULL_KEY = "full-key-for-tests"
READ_KEY = "read-key-for-tests"
START_SECONDS = 120


@contextlib.contextmanager
def zquant_api(*options: str, environment: Mapping[str, str] | None = None) -> Iterator[str]:
    """`zquant [options] api` on a free port with both keys set (``environment`` added to
    this process's): its base URL once /docs answers."""
    environ = {
        **os.environ,
        **(environment or {}),
        ENV_API_TOKEN: FULL_KEY,
        ENV_API_READ_TOKEN: READ_KEY,
        "PYTHONPATH": str(REPO_ROOT),
    }
    with tempfile.TemporaryDirectory() as logs:
        log_path = Path(logs) / "zquant_api.log"

        def launch(port: int) -> subprocess.Popen:
            argv = [sys.executable, "-m", "zquant_pipelines.cli", *options, "api"]
            return start_logged(
                argv + ["--port", str(port)], log_path, env=environ, stdout_too=False
            )

        def answers(port: int) -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/docs", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        process, port = launch_on_free_port(
            launch, log_path.read_text, answers, stop_group, "zquant api", START_SECONDS
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_group(process)


def post(api, route, body, key=FULL_KEY, expect=200):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = requests.post(f"{api}{PREFIX}{route}", json=body, headers=headers, timeout=60)
    assert response.status_code == expect, response.text
    return response.json() if response.content else None


def serves_job(webserver_url: str, task_name: str) -> bool:
    """Whether the webserver (the UI) serves the job of ``task_name`` now."""
    served = requests.post(
        f"{webserver_url}/graphql",
        json={
            "query": "query($s: PipelineSelector!) { pipelineOrError(params: $s) { __typename } }",
            "variables": {
                "s": {
                    "repositoryLocationName": location_name(),
                    "repositoryName": REPOSITORY_NAME,
                    "pipelineName": job_name(task_name),
                }
            },
        },
        timeout=60,
    ).json()
    return served["data"]["pipelineOrError"]["__typename"] == "Pipeline"
