"""`zquant tasks add/update/remove` on a real instance and a real Dagster webserver (in this
process, sharing the workspace the local operations use): the edit reaches the UI at once
through the reload, with --url and through the webserver found at ZQUANT_UI_URL; refusals
leave tasks.yaml byte-identical; a task's run history survives update and remove + add."""

import io
import json

import pytest
import requests

from zquant_pipelines import cli
from zquant_pipelines.constants import ENV_UI_URL
from zquant_pipelines.operations.base import REPOSITORY_NAME, location_name
from zquant_pipelines.tasks.builders import job_name
from zquant_pipelines_tests.support.operations_environment import (
    executed_run,
    operations_environment,
    serving,
)
from zquant_pipelines_tests.support.ports import unused_port

JOBS = """
query Jobs($selector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $selector) {
    ... on Repository { jobs { name description } }
  }
}
"""
NIGHTLY_SPEC = """\
name: nightly
task_type: common_task
cron_expression: "0 18 * * 1-5"
max_retries: 0
executor: in_process
description: back again
config: {task_action: example_task, message: nightly}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with operations_environment(tmp_path_factory.mktemp("edits")) as env:
        with serving(env.workspace) as url:
            yield env, url


def served_jobs(url: str) -> dict[str, str]:
    selector = {"repositoryLocationName": location_name(), "repositoryName": REPOSITORY_NAME}
    reply = requests.post(
        f"{url}/graphql", json={"query": JOBS, "variables": {"selector": selector}}, timeout=60
    )
    return {
        job["name"]: job["description"] for job in reply.json()["data"]["repositoryOrError"]["jobs"]
    }


def zquant(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def history_ids(url: str, capsys, task: str) -> list[str]:
    code, out, err = zquant(capsys, "--url", url, "history", task, "--json")
    assert code == 0, err
    return [run["run_id"] for run in json.loads(out)["runs"]]


def run_nightly(env) -> str:
    """One real run of nightly (in_process), so the task has history."""
    return executed_run(env.local_operations(), "nightly")


def test_edits_reach_the_webserver_and_history_survives(site, capsys, monkeypatch, tmp_path):
    env, url = site
    first = run_nightly(env)

    code, out, err = zquant(
        capsys, "--url", url, "tasks", "update", "nightly", "--set", "description=changed"
    )
    assert code == 0, err
    assert "reloaded" in out
    assert served_jobs(url)[job_name("nightly")] == "changed"
    assert history_ids(url, capsys, "nightly") == [first]

    # Without --url: the webserver at ZQUANT_UI_URL answers and is reloaded.
    monkeypatch.setenv(ENV_UI_URL, url)
    code, out, err = zquant(capsys, "tasks", "remove", "nightly")
    assert code == 0, err
    assert job_name("nightly") not in served_jobs(url)
    assert history_ids(url, capsys, "nightly") == [first]

    spec = tmp_path / "nightly.yaml"
    spec.write_text(NIGHTLY_SPEC)
    code, out, err = zquant(capsys, "tasks", "add", "--file", str(spec))
    assert code == 0, err
    assert served_jobs(url)[job_name("nightly")] == "back again"
    assert history_ids(url, capsys, "nightly") == [first]


def test_a_refused_edit_prints_every_problem_and_writes_nothing(site, capsys, monkeypatch):
    env, _ = site
    before = env.tasks_file.read_bytes()
    bad = {
        "name": "broken",
        "task_type": "manual_task",
        "cron_expression": "0 1 * * *",
        "retry_backoff": "sometimes",
        "config": {"task_action": "example_task", "sleep_seconds": -1},
    }
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(bad)))
    code, _, err = zquant(capsys, "tasks", "add", "--file", "-")
    assert code == 2
    for field in ("cron_expression", "retry_backoff", "sleep_seconds"):
        assert any(
            line.startswith("task 'broken': ") and field in line for line in err.splitlines()
        ), (field, err)
    assert env.tasks_file.read_bytes() == before

    code, _, err = zquant(capsys, "tasks", "remove", "by_hand")
    assert code == 2
    assert "workflow 'chain'" in err
    code, _, err = zquant(capsys, "tasks", "update", "ticker", "--set", "interval_seconds=5")
    assert code == 2
    assert "task 'ticker': interval_seconds 5: must be at least 10" in err
    assert env.tasks_file.read_bytes() == before


def test_without_a_webserver_the_edit_says_so(site, capsys, monkeypatch):
    env, _ = site
    closed = f"http://127.0.0.1:{unused_port()}"
    monkeypatch.setenv(ENV_UI_URL, closed)
    code, out, err = zquant(
        capsys, "tasks", "update", "held", "--set", "description=held runs", "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["changed"] and report["tasks"] == ["held"]
    assert report["reload"].startswith(f"no webserver answered at {closed}")
    assert "description: held runs" in env.tasks_file.read_text()
