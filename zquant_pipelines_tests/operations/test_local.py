"""Local `zquant sync-daily` as a real process on a real instance (the shipped dagster.yaml in
a temporary DAGSTER_HOME), with no daemon running, and once with one: its run comes from
the code location of workspace.yaml (so it shows under its job in the UI and can be
re-executed there) and goes through the run queue, so pause and one run per task hold it
like any other run."""

import json
import os
import queue
import subprocess
import sys
import threading
import time

import dagster as dg
import psutil
import pytest
import sqlalchemy as sa
from dagster._core.test_utils import create_run_for_test

from zquant_pipelines.constants import ENV_TUSHARE_API_URL, ENV_TUSHARE_TOKEN, TAG_TASK
from zquant_pipelines.operations.base import REPOSITORY_NAME, SYNC_DAILY_TASK, WORKSPACE_FILE
from zquant_pipelines.operations.local import queue_daemon_alive
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.tasks.builders import job_name
from zquant_pipelines_tests.support.operations_environment import (
    drive_queue_once,
    operations_environment,
    seed_stock_basic,
)
from zquant_pipelines_tests.support.waiting import wait_until

ZQUANT = os.path.join(os.path.dirname(sys.executable), "zquant")
DAGSTER_DAEMON = os.path.join(os.path.dirname(sys.executable), "dagster-daemon")
LOCATION_NAME = "zquant_pipelines"
# A run is a fresh run worker process importing Dagster and the code location, and the
# command starts its own code server first: seconds each on a busy two-core machine.
DEADLINE_SECONDS = 180
POLL_SECONDS = 0.2
S = dg.DagsterRunStatus

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with operations_environment(tmp_path_factory.mktemp("local")) as environment:
        seed_stock_basic(environment)
        yield environment


def wait_for(condition, what: str):
    """``condition``'s first truthy value, polled until the deadline."""
    return wait_until(condition, DEADLINE_SECONDS, what, POLL_SECONDS)


def sync_daily_argv(code: str, start: str, end: str) -> list[str]:
    bare = code.split(".")[0]
    return [ZQUANT, "sync-daily", "--codelist", bare, "--start-date", start, "--end-date", end]


def iso_date(yyyymmdd: str) -> str:
    return f"{yyyymmdd[:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:]}"


def stored_bars(env, code: str, start: str, end: str) -> int:
    engine = sa.create_engine(env.warehouse_url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("daily"):
                return 0
            return conn.execute(
                sa.text(
                    "SELECT COUNT(*) FROM daily WHERE ts_code = :code"
                    " AND trade_date BETWEEN :start AND :end"
                ),
                {"code": code, "start": iso_date(start), "end": iso_date(end)},
            ).scalar_one()
    finally:
        engine.dispose()


def task_runs(env, task: str = SYNC_DAILY_TASK) -> list[dg.DagsterRun]:
    return list(env.instance.get_runs(dg.RunsFilter(tags={TAG_TASK: task})))


def assert_remote_origin(run: dg.DagsterRun, job: str) -> None:
    """The run belongs to ``job`` of the loaded code location: the UI lists it under that
    job and offers Re-execute."""
    assert run.job_name == job
    origin = run.remote_job_origin
    assert origin is not None, f"run {run.run_id} of {run.job_name} has no code location origin"
    assert origin.job_name == job
    assert origin.repository_origin.code_location_origin.location_name == LOCATION_NAME
    assert origin.repository_origin.repository_name == REPOSITORY_NAME


def test_sync_daily_runs_the_task_job_of_the_code_location(env):
    completed = subprocess.run(
        [*sync_daily_argv("000047.SZ", "20240102", "20240110"), "--json"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["status"] == "SUCCESS"
    run = env.instance.get_run_by_id(result["run_id"])
    assert_remote_origin(run, job_name(SYNC_DAILY_TASK))
    assert run.tags[TAG_TASK] == SYNC_DAILY_TASK
    assert result["rows_written"]["daily"] == stored_bars(env, "000047.SZ", "20240102", "20240110")
    assert result["rows_written"]["daily"] > 0


def test_sync_daily_of_a_paused_task_is_held_in_the_queue_until_resume(env):
    code, start, end = "000123.SZ", "20240201", "20240229"
    env.local_operations().pause(SYNC_DAILY_TASK)
    before = {run.run_id for run in task_runs(env)}
    completed = subprocess.run(
        sync_daily_argv(code, start, end),
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
    )
    (held,) = [run for run in task_runs(env) if run.run_id not in before]
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert f"task {SYNC_DAILY_TASK} is paused" in completed.stderr
    assert held.run_id in completed.stderr
    assert held.status == S.QUEUED
    assert_remote_origin(held, job_name(SYNC_DAILY_TASK))
    assert stored_bars(env, code, start, end) == 0

    drive_queue_once(env)  # the queue keeps holding it while the task is paused
    assert env.instance.get_run_by_id(held.run_id).status == S.QUEUED

    env.local_operations().resume(SYNC_DAILY_TASK)
    drive_queue_once(env)
    finished = wait_for(
        lambda: (run := env.instance.get_run_by_id(held.run_id)).is_finished and run,
        "the resumed run to end",
    )
    assert finished.status == S.SUCCESS
    assert stored_bars(env, code, start, end) > 0


def read_lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)


def test_sync_daily_waits_queued_while_a_run_of_its_task_is_in_flight(env):
    code, start, end = "000047.SZ", "20240301", "20240329"
    blocker = create_run_for_test(
        env.instance,
        job_name=job_name(SYNC_DAILY_TASK),
        tags={TAG_TASK: SYNC_DAILY_TASK},
        status=S.STARTED,
    )
    before = {run.run_id for run in task_runs(env)}
    process = subprocess.Popen(
        [*sync_daily_argv(code, start, end), "--json"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    errors: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(process.stderr, errors), daemon=True).start()
    try:
        # The command says why its run waits once it has tried to take it from the queue.
        deadline = time.monotonic() + DEADLINE_SECONDS
        notice = ""
        while blocker.run_id not in notice:
            assert process.poll() is None, "sync-daily ended instead of waiting for its turn"
            assert time.monotonic() < deadline, "sync-daily said nothing about waiting"
            try:
                notice = errors.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
        (waiting,) = [run for run in task_runs(env) if run.run_id not in before]
        assert waiting.status == S.QUEUED
        assert_remote_origin(waiting, job_name(SYNC_DAILY_TASK))
        assert stored_bars(env, code, start, end) == 0

        # The run in flight ends (run monitoring fails a dead one): the waiting run starts.
        env.instance.report_run_failed(env.instance.get_run_by_id(blocker.run_id))
        out, _ = process.communicate(timeout=DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    result = json.loads(out)
    assert (result["run_id"], result["status"]) == (waiting.run_id, "SUCCESS")
    assert stored_bars(env, code, start, end) > 0


def test_kill_9_of_sync_daily_leaves_no_run_stuck(env, tushare_server_factory):
    """The command is SIGKILLed while its run waits on tushare: the run goes on in its own run
    worker and ends, the command's code server follows it out, and the task's next
    sync-daily runs (before, the run lived in the command and stayed STARTED for hours)."""
    server = tushare_server_factory(SampleMarketSource())
    server.slow_next(1, 10)  # the run's first call: the command dies while the run waits
    code, start, end = "000123.SZ", "20240401", "20240430"
    tushare = {**os.environ, ENV_TUSHARE_TOKEN: server.token, ENV_TUSHARE_API_URL: server.url}
    before = {run.run_id for run in task_runs(env)}
    process = subprocess.Popen(
        sync_daily_argv(code, start, end),
        env=tushare,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: server.calls_to("daily"), "the run's first tushare call")
        left_behind = psutil.Process(process.pid).children(recursive=True)
    finally:
        process.kill()
        process.wait()
    (run,) = [run for run in task_runs(env) if run.run_id not in before]
    ended = wait_for(
        lambda: (current := env.instance.get_run_by_id(run.run_id)).is_finished and current,
        "the killed command's run to end",
    )
    assert ended.status in (S.SUCCESS, S.FAILURE)
    wait_for(
        lambda: not [child for child in left_behind if child.is_running()],
        "the killed command's code server and run worker to exit",
    )

    completed = subprocess.run(
        [*sync_daily_argv(code, start, end), "--json"],
        env=tushare,
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["status"] == "SUCCESS"
    assert stored_bars(env, code, start, end) > 0


def test_with_a_daemon_alive_sync_daily_leaves_the_queue_to_it(env):
    code, start, end = "000123.SZ", "20240301", "20240329"
    daemon = subprocess.Popen(
        [DAGSTER_DAEMON, "run", "-w", str(WORKSPACE_FILE)],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: queue_daemon_alive(env.instance), "the daemon's first heartbeat")
        completed = subprocess.run(
            [*sync_daily_argv(code, start, end), "--json"],
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=DEADLINE_SECONDS,
        )
    finally:
        daemon.terminate()
        daemon.wait(timeout=DEADLINE_SECONDS)
    assert completed.returncode == 0, completed.stderr
    assert "the Dagster daemon starts it" in completed.stderr
    result = json.loads(completed.stdout)
    assert result["status"] == "SUCCESS"
    assert_remote_origin(env.instance.get_run_by_id(result["run_id"]), job_name(SYNC_DAILY_TASK))
    assert stored_bars(env, code, start, end) > 0
