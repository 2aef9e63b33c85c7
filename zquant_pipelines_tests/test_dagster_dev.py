"""End to end against the real `make dev` (webserver + daemon, the Makefile's own command) on
a free local port, with a temporary DAGSTER_HOME, through raw GraphQL and through
`zquant --url`: trigger and wait, history and stats, disable/enable read back through
GraphQL, pause holding a run until resume while the daemon serves other runs, a
code-location reload, `zquant --url URL api` (the REST API through the webserver's
GraphQL); secrets shown by name only; and foreign pages refused (CSRF)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from zquant_pipelines import cli
from zquant_pipelines.operations.graphql import GraphQLOperations
from zquant_pipelines.operations.graphql_documents import DOCUMENTS
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.tasks.catalog import load_catalog
from zquant_pipelines_tests.support.make_dev import serve_make_dev
from zquant_pipelines_tests.support.operations_environment import TEST_CATALOG
from zquant_pipelines_tests.support.ports import unused_port
from zquant_pipelines_tests.support.tushare_wire_server import TushareWireServer
from zquant_pipelines_tests.support.waiting import wait_until
from zquant_pipelines_tests.support.webserver_probes import (
    FOREIGN_ORIGIN,
    TUSHARE_TOKEN,
    assert_secrets_shown_by_name,
    cross_origin_post_refused,
    gateway_url,
    get_mutation_refused,
    location_loaded,
    own_origin_post_allowed,
    websocket_handshake,
)
from zquant_pipelines_tests.support.zquant_api import post, serves_job, zquant_api

RUN_TIMEOUT_SECONDS = 180

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def make_dev_root(tmp_path_factory) -> Path:
    """make dev's DAGSTER_HOME, tasks.yaml, data and its log (dagster_dev.log)."""
    return tmp_path_factory.mktemp("dagster_dev")


@pytest.fixture(scope="module")
def dagster_dev(make_dev_root):
    # The market behind the gateway: the runs `make dev`'s daemon starts read it.
    with TushareWireServer(SampleMarketSource(), token=TUSHARE_TOKEN) as gateway:
        with serve_make_dev(make_dev_root, gateway_url(gateway.url), TEST_CATALOG) as url:
            yield url


def test_make_dev_starts_without_false_warnings_or_the_community_dialog(dagster_dev, make_dev_root):
    log = (make_dev_root / "dagster_dev.log").read_text()
    # dagster dev's warning that the repo's dagster.yaml goes unused: instance_home copied it.
    assert "dagster instance configuration" not in log, log[-3000:]
    # Its advice to use `dg dev`, which is not installed.
    assert "superseded" not in log, log[-3000:]
    answer = requests.post(
        f"{dagster_dev}/graphql", json={"query": "{ shouldShowNux }"}, timeout=30
    )
    assert answer.json() == {"data": {"shouldShowNux": False}}


def zquant(url, capsys, *argv) -> dict:
    capsys.readouterr()
    code = cli.main(["--url", url, "--json", *argv])
    out, err = capsys.readouterr()
    assert code == 0, (argv, out, err)
    return json.loads(out)


def run_status(url, capsys, run_id: str) -> str:
    return zquant(url, capsys, "history", "--run", run_id)["run"]["status"].upper()


def wait_for_status(url, capsys, run_id: str, status: str) -> None:
    wait_until(
        lambda: run_status(url, capsys, run_id) == status,
        RUN_TIMEOUT_SECONDS,
        f"run {run_id} to reach {status}",
    )


def test_make_dev_started_with_sigint_ignored_still_stops_on_sigterm(tmp_path):
    """Started as a background job of a script (SIGINT ignored), make dev must still stop on
    `kill`, webserver and daemon included: dagster dev maps SIGTERM to SIGINT's handler and
    stops its two processes with an interrupt, so an inherited SIG_IGN would make it wait
    for SIGKILL (CI's make dev teardowns waited stop_group's full 60 s)."""
    tushare = f"http://127.0.0.1:{unused_port()}"  # never called: the test only starts it
    with serve_make_dev(tmp_path, tushare, TEST_CATALOG, sigint_ignored=True, stop_timeout=30):
        pass
    log = (tmp_path / "dagster_dev.log").read_text()
    assert "Dagster services shut down." in log, log[-2000:]
    assert "did not terminate cleanly" not in log, log[-2000:]


def test_trigger_wait_history_and_stats(dagster_dev, capsys):
    run_id = zquant(dagster_dev, capsys, "trigger", "by_hand")["run_id"]
    wait_for_status(dagster_dev, capsys, run_id, "SUCCESS")
    page = zquant(dagster_dev, capsys, "history", "by_hand")
    assert page["total"] >= 1 and run_id in [r["run_id"] for r in page["runs"]]
    stats = zquant(dagster_dev, capsys, "stats", "by_hand")
    row = next(t for t in stats["tasks"] if t["task"] == "by_hand")
    assert row["success_count"] >= 1 and row["success_rate"] == 1.0


def schedule_status(url: str, name: str) -> str:
    with GraphQLOperations(url) as ops:
        data = ops.execute(
            DOCUMENTS["TriggerStates"],
            {
                "repositorySelector": {
                    "repositoryLocationName": "zquant_pipelines",
                    "repositoryName": "__repository__",
                }
            },
        )
    schedules = data["repositoryOrError"]["schedules"]
    return next(s["scheduleState"]["status"] for s in schedules if s["name"] == name)


def test_disable_and_enable_read_back_through_graphql(dagster_dev, capsys):
    assert schedule_status(dagster_dev, "nightly_schedule") == "RUNNING"
    zquant(dagster_dev, capsys, "disable", "nightly")
    assert schedule_status(dagster_dev, "nightly_schedule") == "STOPPED"
    zquant(dagster_dev, capsys, "enable", "nightly")
    assert schedule_status(dagster_dev, "nightly_schedule") == "RUNNING"


def test_pause_holds_a_run_until_resume(dagster_dev, capsys):
    zquant(dagster_dev, capsys, "pause", "held")
    held_run = zquant(dagster_dev, capsys, "trigger", "held")["run_id"]
    # The daemon keeps serving the queue: a run of another task, asked for later, finishes...
    other_run = zquant(dagster_dev, capsys, "trigger", "by_hand")["run_id"]
    wait_for_status(dagster_dev, capsys, other_run, "SUCCESS")
    # ...while the paused task's run is still held.
    assert run_status(dagster_dev, capsys, held_run) == "QUEUED"
    zquant(dagster_dev, capsys, "resume", "held")
    wait_for_status(dagster_dev, capsys, held_run, "SUCCESS")


def test_reload_the_code_location(dagster_dev, capsys):
    capsys.readouterr()
    assert cli.main(["--url", dagster_dev, "reload"]) == 0
    assert location_loaded(dagster_dev)


def test_zquant_api_over_url_creates_triggers_and_counts_through_the_webserver(
    dagster_dev, make_dev_root
):
    tasks_file = make_dev_root / "tasks.yaml"
    body = {
        "name": "made_over_url",
        "task_type": "manual_task",
        "cron_expression": None,
        "interval_seconds": None,
        "description": "created through zquant api --url",
        "config": {"task_action": "example_task", "message": "over url"},
        "max_retries": 0,
        "retry_interval": 60,
        "enabled": True,
    }
    with zquant_api("--url", dagster_dev) as api:
        created = post(api, "/tasks", body, expect=201)
        assert "made_over_url" in load_catalog(tasks_file).tasks
        # The write reloaded the webserver's code location: the UI shows the job at once.
        assert serves_job(dagster_dev, "made_over_url")
        task_id = created["id"]

        post(api, "/tasks/trigger", {"task_id": task_id})
        listed = post(api, "/tasks/executions/list", {"task_id": task_id, "skip": 0, "limit": 20})
        assert listed["total"] == 1
        (execution,) = listed["executions"]

        def finished():
            got = post(
                api, "/tasks/executions/get", {"task_id": task_id, "execution_id": execution["id"]}
            )
            return got if got["status"] not in ("pending", "running") else None

        # make dev's daemon takes the run from the queue.
        done = wait_until(finished, RUN_TIMEOUT_SECONDS, "the run to end", 0.5)
        assert done["status"] == "success", done
        stats = post(api, "/stats", {"task_id": task_id})
        assert (stats["total_executions"], stats["success_count"], stats["failed_count"]) == (
            1,
            1,
            0,
        )

        post(api, "/tasks/delete", {"task_id": task_id}, expect=204)
        assert "made_over_url" not in load_catalog(tasks_file).tasks
        assert not serves_job(dagster_dev, "made_over_url")


# --- secrets: GraphQL (the UI's resource pages) names the variables --------------------------


def test_resources_show_the_variable_names_not_the_secrets(dagster_dev):
    assert_secrets_shown_by_name(dagster_dev)


# --- CSRF: a page from another site must not change anything ------------------------------


def test_make_dev_refuses_a_mutation_sent_as_get(dagster_dev):
    get_mutation_refused(dagster_dev, "csrf_get_probe")


def test_make_dev_refuses_cross_origin_posts(dagster_dev):
    cross_origin_post_refused(dagster_dev, "csrf_post_probe")


def test_make_dev_serves_its_own_pages_and_plain_clients(dagster_dev):
    localhost = dagster_dev.replace("127.0.0.1", "localhost")
    page = requests.get(dagster_dev, timeout=60)
    assert page.status_code == 200 and "<html" in page.text.lower()
    own_origin_post_allowed(dagster_dev, [dagster_dev, localhost], "csrf_own_probe")
    # Reads over GET stay (GraphiQL links); a browser hides their replies from other sites.
    reply = requests.get(f"{dagster_dev}/graphql", params={"query": "{ version }"}, timeout=60)
    assert reply.status_code == 200 and reply.json()["data"]["version"], reply.text


def test_make_dev_upgrades_subscriptions_for_its_own_pages_only(dagster_dev):
    assert websocket_handshake(dagster_dev, {"Origin": dagster_dev}).startswith("HTTP/1.1 101")
    assert websocket_handshake(dagster_dev, {}).startswith("HTTP/1.1 101")
    refused = websocket_handshake(dagster_dev, {"Origin": FOREIGN_ORIGIN})
    assert refused.startswith("HTTP/1.1 403"), refused


# --- make run next to make dev: its runs are market_data_job's -----------------------------


JOB_RUNS = """
query JobRuns($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) {
    __typename
    ... on Pipeline { runs { runId repositoryOrigin { repositoryLocationName repositoryName } } }
  }
}
"""


def test_make_run_runs_are_listed_under_market_data_job(dagster_dev):
    """`zquant demo` next to `make dev`: the UI's job page lists its runs (the query of its
    Runs tab), with the repository origin that Re-execute needs; the daemon ran them."""
    environ = {
        **os.environ,
        "ZQUANT_DATA_DIR": str(Path(os.environ["DAGSTER_HOME"]).parent / "data"),
    }
    completed = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "zquant"), "demo", "--days", "2"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS * 2,
    )
    assert completed.returncode == 0, completed.stderr
    assert "the Dagster daemon starts it" in completed.stderr
    run_ids = completed.stdout.split("Runs this time: ")[1].splitlines()[0].split(", ")
    # Two days of market_data_job, then one ranged run of financial_statements_job.
    assert len(run_ids) == 3
    runs = {}
    for job in ("market_data_job", "financial_statements_job"):
        reply = requests.post(
            f"{dagster_dev}/graphql",
            json={
                "query": JOB_RUNS,
                "variables": {
                    "selector": {
                        "repositoryLocationName": "zquant_pipelines",
                        "repositoryName": "__repository__",
                        "pipelineName": job,
                    }
                },
            },
            timeout=30,
        ).json()
        runs.update({run["runId"]: run for run in reply["data"]["pipelineOrError"]["runs"]})
    assert set(run_ids) <= set(runs), reply
    for run_id in run_ids:
        assert runs[run_id]["repositoryOrigin"] == {
            "repositoryLocationName": "zquant_pipelines",
            "repositoryName": "__repository__",
        }
