"""A long sync's progress while it runs, under the real `make dev` (webserver + daemon): a run
of ``backfill_bars`` (the whole market's bars over seven open days, from a tushare wire
server through the real SDK) is held on its third day; meanwhile GraphQL (what the UI reads)
lists its step's progress tag, the run's logs hold the per-day lines, `zquant history --run`
shows its progress, and `zquant --url ... trigger --wait` in a real process (its output not
a terminal) prints plain progress lines, then the outcome once the day is released."""

import datetime as dt
import json
import os
import subprocess
import sys
import threading

import pytest
import requests

from zquant_pipelines import cli
from zquant_pipelines.constants import TAG_PROGRESS_PREFIX
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import WAREHOUSE_FILE_NAME, Warehouse
from zquant_pipelines.sync import market as sync
from zquant_pipelines_tests.support.make_dev import serve_make_dev
from zquant_pipelines_tests.support.tushare_wire_server import TushareWireServer
from zquant_pipelines_tests.support.waiting import wait_until
from zquant_pipelines_tests.support.webserver_probes import TUSHARE_TOKEN, gateway_url

CATALOG = """
tasks:
  - name: backfill_bars
    task_type: manual_task
    max_retries: 0
    executor: in_process
    config: {task_action: sync_all_daily_data, start_date: "20240102", end_date: "20240110"}
"""
TASK = "backfill_bars"
# Seven open days (2024-01-01 is a holiday) of daily, then of adj_factor: 14 items. The
# sample market's seven days come in one code-list call per API; adj_factor's is held, so
# the run stays after daily's seven days.
HELD_API, HELD_DAY = "adj_factor", "20240104"
ITEMS = 14
RUN_TIMEOUT_SECONDS = 300

pytestmark = pytest.mark.slow

RUNS_WITH_TAGS = """
query StartedRuns {
  runsOrError(filter: {statuses: [STARTED]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""
RUN_LOGS = """
query RunLogs($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection { events { __typename ... on MessageEvent { message } } }
  }
}
"""


@pytest.fixture(scope="module")
def wire():
    with TushareWireServer(SampleMarketSource(), token=TUSHARE_TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def make_dev_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress_dev")
    # The stock list and calendar backfill_bars reads, in make dev's warehouse.
    (root / "data").mkdir()
    warehouse = Warehouse(url=f"sqlite:///{root / 'data' / WAREHOUSE_FILE_NAME}")
    warehouse.ensure_schema()
    source = SampleMarketSource()
    sync.sync_stock_basic(source, warehouse)
    sync.sync_trade_cal(source, warehouse, dt.date(2023, 12, 1), dt.date(2024, 1, 31))
    warehouse.dispose()
    return root


@pytest.fixture(scope="module")
def dagster_dev(make_dev_root, wire):
    with serve_make_dev(make_dev_root, gateway_url(wire.url), CATALOG) as url:
        yield url


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    reply = requests.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
    )
    assert reply.status_code == 200 and "errors" not in reply.json(), reply.text[:1000]
    return reply.json()["data"]


def read_lines(stream, lines: list[str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: lines.extend(stream), daemon=True)
    thread.start()
    return thread


def test_progress_shows_while_the_run_runs_and_trigger_wait_follows_it(dagster_dev, wire, capsys):
    wire.hold(HELD_API, HELD_DAY)
    follower = subprocess.Popen(
        [sys.executable, "-m", "zquant_pipelines.cli", "--url", dagster_dev]
        + ["trigger", TASK, "--wait"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    err_lines: list[str] = []
    try:
        reader = read_lines(follower.stderr, err_lines)
        at_day_two = f"7 of {ITEMS} days written"
        wait_until(
            lambda: any(at_day_two in line for line in err_lines) or follower.poll() is not None,
            RUN_TIMEOUT_SECONDS,
            "trigger --wait to print daily's last day",
        )
        line = next((line for line in err_lines if at_day_two in line), None)
        assert line is not None, "".join(err_lines)
        # A plain line: the run, its status, the days, the percentage, the last day written.
        assert line.startswith("Run ") and ": STARTED, " in line and "\x1b" not in line
        assert "(50.0%), last daily 2024-01-10, estimated end " in line, line
        run_id = line.split()[1].rstrip(":")

        # GraphQL, as the UI's runs list and run page ask: the step's progress tag.
        runs = graphql(dagster_dev, RUNS_WITH_TAGS)["runsOrError"]["results"]
        (run,) = [run for run in runs if run["runId"] == run_id]
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        step = json.loads(tags[f"{TAG_PROGRESS_PREFIX}{TASK}"])
        assert (step["run_id"], step["table"], step["day"]) == (run_id, "daily", "2024-01-10")
        assert (step["done"], step["total"], step["written_through"]) == (
            7,
            ITEMS,
            {"daily": "2024-01-10"},
        )
        assert step["rows"] > 0 and step["estimated_end_time"]
        # The per-day lines among the run's logs, as the run page streams them.
        events = graphql(dagster_dev, RUN_LOGS, {"runId": run_id})["logsForRun"]["events"]
        messages = [event.get("message", "") for event in events]
        for k, day in ((1, "2024-01-02"), (7, "2024-01-10")):
            assert any(m.startswith(f"daily: day {k} of 7 ({day}), ") for m in messages)

        # zquant history --run, through the same server, while the run is held.
        capsys.readouterr()
        assert cli.main(["--url", dagster_dev, "--json", "history", "--run", run_id]) == 0
        progress = json.loads(capsys.readouterr().out)["progress"]
        assert progress["status"] == "STARTED"
        assert (progress["processed_items"], progress["total_items"]) == (7, ITEMS)
        assert progress["progress_percent"] == 50.0
        assert progress["current_item"] == "daily 2024-01-10"
        assert progress["estimated_end_time"] is not None
        assert cli.main(["--url", dagster_dev, "history", "--run", run_id]) == 0
        shown = capsys.readouterr().out
        assert f"Progress: Run {run_id}: STARTED, 7 of {ITEMS} days written" in shown
    finally:
        wire.release()
    out = follower.stdout.read()
    follower.wait(timeout=RUN_TIMEOUT_SECONDS)
    reader.join(timeout=RUN_TIMEOUT_SECONDS)
    assert follower.returncode == 0, "".join(err_lines)
    assert f"Run {run_id}: SUCCESS, {ITEMS} of {ITEMS} days written (100.0%)" in "".join(err_lines)
    assert f"Run {run_id} ({TASK}): SUCCESS" in out and "Rows written: daily " in out
