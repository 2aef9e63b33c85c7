"""`zquant api` as a process of its own for the tests that drive it over HTTP
(api/test_routes.py on an instance, test_dagster_dev.py with --url on `make dev`), the POST
helper they send zquant's bodies with, and the check that a webserver serves a task's job."""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping

import requests

from zquant_pipelines.constants import ENV_API_READ_TOKEN, ENV_API_TOKEN, REPO_ROOT
from zquant_pipelines.operations.base import REPOSITORY_NAME, location_name
from zquant_pipelines.tasks.builders import job_name
from zquant_pipelines_tests.support.ports import unused_port
from zquant_pipelines_tests.support.waiting import wait_until

PREFIX = "/api/v1/scheduler"
FULL_KEY = "full-key-for-tests"
READ_KEY = "read-key-for-tests"
START_SECONDS = 120


@contextlib.contextmanager
def zquant_api(*options: str, environment: Mapping[str, str] | None = None) -> Iterator[str]:
    """`zquant [options] api` on a free port with both keys set (``environment`` added to
    this process's): its base URL once /docs answers."""
    port = unused_port()
    environ = {
        **os.environ,
        **(environment or {}),
        ENV_API_TOKEN: FULL_KEY,
        ENV_API_READ_TOKEN: READ_KEY,
        "PYTHONPATH": str(REPO_ROOT),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "zquant_pipelines.cli", *options, "api", "--port", str(port)],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def answers():
        assert process.poll() is None, process.stderr.read()[-3000:]
        try:
            return requests.get(f"{url}/docs", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(answers, START_SECONDS, "zquant api to answer", 0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stderr.close()


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
