"""`zquant retry` and the errors of `zquant terminate` / `zquant retry`, locally and with
--url through a webserver serving the same workspace: a real instance, the code location of
workspace.yaml, and runs that really fail in a script.

The workflow ``pair`` runs first -> flaky -> last (serial, stop on failure); flaky's script
fails until its folder holds ``fixed``, as an operator's fix would make it pass. A retry
from failure must re-run flaky and last only, linked to its parent and root as Dagster's
Re-execute links them.

``backfill_bars`` syncs the whole market's daily bars over a range from a tushare wire server
(the real SDK); one day of it is not published on the first try, so the run fails mid-range.
A retry from failure must fetch only the days that run did not write.
"""

import collections
import datetime as dt
import json
import logging
import textwrap

import dagster as dg
import pytest
from dagster._core.storage.tags import (
    MAX_RETRIES_TAG,
    PARENT_RUN_ID_TAG,
    ROOT_RUN_ID_TAG,
    WILL_RETRY_TAG,
)
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import (
    consume_new_runs_for_automatic_reexecution,
)

from zquant_pipelines import cli
from zquant_pipelines.api.app import Backend, Scheduler
from zquant_pipelines.constants import ENV_TUSHARE_API_URL, ENV_TUSHARE_TOKEN, TAG_TASK
from zquant_pipelines.history.pause import is_paused_run, pause_request_pool
from zquant_pipelines.history.progress import run_progress
from zquant_pipelines.operations.base import OperationFailed, op_configs, run_config
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.sync import market as sync
from zquant_pipelines.tasks.builders import job_name
from zquant_pipelines_tests.support.operations_environment import (
    drive_queue_once,
    executed_run,
    operations_environment,
    serving,
)
from zquant_pipelines_tests.support.tushare_wire_server import TushareWireServer
from zquant_pipelines_tests.support.waiting import wait_until

CATALOG = textwrap.dedent(
    """
    tasks:
      - name: first
        task_type: manual_task
        max_retries: 0
        config: {task_action: example_task, message: first}
      - name: flaky
        task_type: manual_task
        max_retries: 0
        config: {task_action: run_script, script: fails_until_fixed.py}
      - name: last
        task_type: manual_task
        max_retries: 0
        config: {task_action: example_task, message: last}
      - name: pair
        task_type: workflow
        config:
          workflow_type: serial
          on_failure: stop
          tasks:
            - {name: first}
            - {name: flaky, dependencies: [first]}
            - {name: last, dependencies: [flaky]}
      - name: alone
        task_type: manual_task
        max_retries: 0
        executor: in_process
        config: {task_action: example_task}
      - name: backfill_bars
        task_type: manual_task
        max_retries: 0
        executor: in_process
        config: {task_action: sync_all_daily_data, start_date: "20240102", end_date: "20240110"}
      - name: paused_bars
        task_type: manual_task
        max_retries: 0
        executor: in_process
        config: {task_action: sync_all_daily_data, start_date: "20240115", end_date: "20240123"}
    """
)
# backfill_bars' open days (2024-01-01 is New Year's Day); the fourth one is not published
# on the first try.
BACKFILL_DAYS = ["20240102", "20240103", "20240104", "20240105", "20240108", "20240109", "20240110"]
UNPUBLISHED_DAY = "20240105"
FAILS_UNTIL_FIXED = """
import sys
from pathlib import Path

sys.exit(0 if Path("fixed").exists() else 1)
"""


@pytest.fixture(scope="module")
def wire():
    with TushareWireServer(SampleMarketSource()) as server:
        yield server


@pytest.fixture(scope="module")
def env(tmp_path_factory, wire):
    root = tmp_path_factory.mktemp("rerun")
    scripts = {"fails_until_fixed.py": FAILS_UNTIL_FIXED}
    tushare = {ENV_TUSHARE_TOKEN: wire.token, ENV_TUSHARE_API_URL: wire.url}
    with operations_environment(root, CATALOG, scripts, tushare) as environment:
        # The stock list and calendar the runs' syncs read, straight from the sample market.
        warehouse = Warehouse(url=environment.warehouse_url)
        warehouse.ensure_schema()
        sync.sync_stock_basic(SampleMarketSource(), warehouse)
        sync.sync_trade_cal(
            SampleMarketSource(), warehouse, dt.date(2023, 12, 1), dt.date(2024, 1, 31)
        )
        yield environment


@pytest.fixture(scope="module")
def url(env):
    with serving(env.workspace) as base_url:
        yield base_url


def run_task(env, name: str) -> str:
    """A run of ``name`` carried to its end (this process takes it from the queue)."""
    with env.local_operations() as ops:
        return executed_run(ops, name)


def zquant(env, capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with env.local_operations() as ops:
        code = cli.main(list(argv), operations=ops if "--url" not in argv else None)
    out, err = capsys.readouterr()
    return code, out, err


def executed_steps(env, run_id: str) -> set[str]:
    records = env.instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_START
    ).records
    return {record.event_log_entry.step_key for record in records}


@pytest.mark.parametrize("mode", ["local", "url"])
def test_retry_from_failure_reruns_only_the_failed_and_unfinished_steps(env, request, capsys, mode):
    scripts = env.root / "scripts"
    (scripts / "fixed").unlink(missing_ok=True)
    parent = run_task(env, "pair")
    assert env.instance.get_run_by_id(parent).status == dg.DagsterRunStatus.FAILURE
    assert executed_steps(env, parent) == {"first", "flaky"}
    (scripts / "fixed").write_text("the operator fixed it")

    url_args = ["--url", request.getfixturevalue("url")] if mode == "url" else []
    code, out, err = zquant(env, capsys, *url_args, "retry", parent, "--from-failure", "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["parent_run_id"] == parent and answer["from_failure"] is True
    retry_id = answer["run_id"]
    queued = env.instance.get_run_by_id(retry_id)
    # Queued like every run of the task, so pause and one run per task hold it.
    assert queued.status == dg.DagsterRunStatus.QUEUED
    assert queued.tags[PARENT_RUN_ID_TAG] == parent and queued.tags[ROOT_RUN_ID_TAG] == parent
    assert queued.tags[TAG_TASK] == "pair"

    with env.local_operations() as ops:
        outcome = ops.run_to_end(retry_id)
    assert outcome.status == "SUCCESS"
    assert executed_steps(env, retry_id) == {"flaky", "last"}

    # A retry of the retry keeps the first run as its root.
    code, out, err = zquant(env, capsys, *url_args, "retry", retry_id, "--json")
    assert code == 0, err
    second = env.instance.get_run_by_id(json.loads(out)["run_id"])
    assert second.tags[PARENT_RUN_ID_TAG] == retry_id and second.tags[ROOT_RUN_ID_TAG] == parent
    with env.local_operations() as ops:
        assert ops.run_to_end(second.run_id).status == "SUCCESS"
    assert executed_steps(env, second.run_id) == {"first", "flaky", "last"}


@pytest.mark.parametrize("mode", ["local", "url"])
def test_refusals_name_the_run(env, request, capsys, mode):
    url_args = ["--url", request.getfixturevalue("url")] if mode == "url" else []
    done = run_task(env, "alone")
    cases = [
        (["terminate", "no-such-run"], 1, ["no run 'no-such-run'"]),
        (["retry", "no-such-run"], 1, ["no run 'no-such-run'"]),
        (["terminate", done], 2, [done, "already ended SUCCESS", f"zquant retry {done}"]),
        (["retry", done, "--from-failure"], 2, [done, "is SUCCESS", f"zquant retry {done}"]),
        (["pause-run", "no-such-run"], 1, ["no run 'no-such-run'"]),
        (["pause-run", done], 2, [done, "already ended SUCCESS", "nothing to pause"]),
    ]
    for argv, expected_code, named in cases:
        code, out, err = zquant(env, capsys, *url_args, *argv)
        assert code == expected_code, (argv, out, err)
        assert err.startswith(f"zquant {argv[0]}: ") and all(part in err for part in named), err
    # Nothing was re-executed, canceled or asked to pause by the refusals.
    assert pause_request_pool(done) not in env.instance.event_log_storage.get_concurrency_keys()
    assert env.instance.get_runs(dg.RunsFilter(tags={PARENT_RUN_ID_TAG: done})) == []
    assert env.instance.get_run_by_id(done).status == dg.DagsterRunStatus.SUCCESS


@pytest.mark.parametrize("mode", ["local", "url"])
def test_terminate_a_queued_run_cancels_it(env, request, capsys, mode):
    url_args = ["--url", request.getfixturevalue("url")] if mode == "url" else []
    with env.local_operations() as ops:
        catalog = ops.catalog()
        run_id = ops.trigger(catalog, "alone", {})
    code, out, err = zquant(env, capsys, *url_args, "terminate", run_id)
    assert code == 0, err
    assert f"Run {run_id} is CANCELED." in out
    assert env.instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.CANCELED


@dg.op
def ad_hoc_op():
    return 1


@dg.job
def ad_hoc_job():
    ad_hoc_op()


@pytest.mark.parametrize("mode", ["local", "url"])
def test_retry_of_a_run_outside_the_code_location_is_refused(env, request, capsys, mode):
    url_args = ["--url", request.getfixturevalue("url")] if mode == "url" else []
    # An in-process run (as `dagster job execute -f` makes): no job of the code location.
    run_id = ad_hoc_job.execute_in_process(instance=env.instance).run_id
    code, _, err = zquant(env, capsys, *url_args, "retry", run_id)
    assert code == 1 and err.startswith(f"zquant retry: run {run_id} "), err
    assert env.instance.get_runs(dg.RunsFilter(tags={PARENT_RUN_ID_TAG: run_id})) == []


def test_a_retry_of_a_paused_task_is_held_in_the_queue_until_resume(env, capsys):
    done = run_task(env, "alone")
    with env.local_operations() as ops:
        ops.pause("alone")
        try:
            code, out, err = zquant(env, capsys, "retry", done, "--json")
            assert code == 0, err
            retry_id = json.loads(out)["run_id"]
            with pytest.raises(OperationFailed, match=f"task alone is paused: run {retry_id}"):
                ops.run_to_end(retry_id)
            assert env.instance.get_run_by_id(retry_id).status == dg.DagsterRunStatus.QUEUED
        finally:
            ops.resume("alone")
        assert ops.run_to_end(retry_id).status == "SUCCESS"


def calls_per_day(wire, api_name: str, days: list[str] = BACKFILL_DAYS) -> dict[str, int]:
    """How many calls asked for each of ``days``: by its trade_date, or in their range."""
    calls = collections.Counter(
        day
        for call in wire.calls_to(api_name)
        for day in days
        if call.asked[0] <= day <= call.asked[1]
    )
    return {day: calls[day] for day in days}


def stored_days(env, table: str, days: list[str] = BACKFILL_DAYS) -> list[str]:
    """The days of ``days`` that ``table`` holds rows of."""
    frame = Warehouse(url=env.warehouse_url).read_frame(
        f"SELECT DISTINCT trade_date FROM {table} ORDER BY trade_date"
    )
    return [day for day in (f"{day:%Y%m%d}" for day in frame["trade_date"]) if day in days]


def test_retry_from_failure_fetches_only_the_days_the_failed_run_did_not_write(env, wire, capsys):
    wire.short_reply("daily", rows=0, trade_date=UNPUBLISHED_DAY)
    try:
        parent = run_task(env, "backfill_bars")
    finally:
        wire.clear_faults()
    assert env.instance.get_run_by_id(parent).status == dg.DagsterRunStatus.FAILURE
    written_before = BACKFILL_DAYS[: BACKFILL_DAYS.index(UNPUBLISHED_DAY)]
    assert stored_days(env, "daily") == written_before

    wire.reset_calls()
    code, out, err = zquant(env, capsys, "retry", parent, "--from-failure", "--json")
    assert code == 0, err
    seen = []
    with env.local_operations() as ops:
        outcome = ops.run_to_end(json.loads(out)["run_id"], seen.append)
    assert outcome.status == "SUCCESS", outcome.error

    # The days the failed run wrote cost no call; the others one each, and adj_factor,
    # which the failed run never reached, every day.
    assert calls_per_day(wire, "daily") == {
        day: int(day not in written_before) for day in BACKFILL_DAYS
    }
    assert calls_per_day(wire, "adj_factor") == dict.fromkeys(BACKFILL_DAYS, 1)
    assert stored_days(env, "daily") == stored_days(env, "adj_factor") == BACKFILL_DAYS
    # The run reports every day of the range as written, the resumed ones too.
    materialized = {
        record.asset_materialization.partition
        for record in env.instance.get_records_for_run(
            outcome.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        if record.asset_materialization.asset_key == dg.AssetKey("daily")
    }
    assert materialized == {
        dt.datetime.strptime(d, "%Y%m%d").strftime("%Y-%m-%d") for d in BACKFILL_DAYS
    }
    # Its progress went on from the days written: 2 tables x 7 days, 3 of them resumed.
    final = seen[-1]
    assert (final.status, final.processed_items, final.total_items) == ("SUCCESS", 14, 14)
    assert final.current_item == "adj_factor 2024-01-10"
    counted = [p.processed_items for p in seen if p.processed_items is not None]
    assert counted == sorted(counted) and min(counted) >= len(written_before) + 1


# paused_bars' open days, per mode a range of its own so each run starts with none written.
# The reply holding the first day is held until the pause was asked for: the sync plans one
# call per day or one code-list call over several days (whichever needs fewer), so the run
# waits there either way, with nothing written.
PAUSE_RANGES = {
    "local": ["20240115", "20240116", "20240117", "20240118", "20240119", "20240122", "20240123"],
    "url": ["20240124", "20240125", "20240126", "20240129", "20240130", "20240131"],
}
RUN_SECONDS = 120


def days_written(env, run_id: str) -> int:
    run = env.instance.get_run_by_id(run_id)
    return run_progress(run_id, run.status.value, run.tags).processed_items or 0


def asked_for(wire, api_name: str, day: str) -> bool:
    return any(call.asked[0] <= day <= call.asked[1] for call in wire.calls_to(api_name))


@pytest.mark.parametrize("mode", ["local", "url"])
def test_pause_stops_at_a_day_boundary_and_resume_fetches_only_the_rest(
    env, wire, request, capsys, mode
):
    days = PAUSE_RANGES[mode]
    held_day = days[0]
    url_args = ["--url", request.getfixturevalue("url")] if mode == "url" else []
    wire.reset_calls()
    wire.hold("daily", held_day)
    try:
        with env.local_operations() as ops:
            catalog = ops.catalog()
            params = {"start_date": days[0], "end_date": days[-1]}
            config = run_config(op_configs(catalog, catalog.tasks["paused_bars"], params))
            # A run Dagster's run-retry daemon would retry (dagster.yaml retries none), but
            # for the pause.
            run_id = ops.submit_job_run(
                job_name("paused_bars"), config, tags={MAX_RETRIES_TAG: "2"}
            )
        drive_queue_once(env)
        # Caught at the start of the range: the first day asked for, no day written.
        wait_until(
            lambda: asked_for(wire, "daily", held_day),
            RUN_SECONDS,
            f"run {run_id} to wait on {held_day}",
            0.1,
        )
        code, out, err = zquant(env, capsys, *url_args, "pause-run", run_id, "--json")
        assert code == 0, err
        assert json.loads(out) == {"run_id": run_id, "status": "STARTED", "pause_requested": True}
        assert days_written(env, run_id) == 0
    finally:
        wire.release()
    with env.local_operations() as ops:
        outcome = ops.run_to_end(run_id)
        paused_summary = ops.run_detail(run_id).run
        execution = Scheduler(Backend(ops, None)).execution_of(ops.catalog(), paused_summary)

    # The day being fetched when the pause came was written; no later day was.
    written = days[:1]
    assert stored_days(env, "daily", days) == written
    assert stored_days(env, "adj_factor", days) == []
    paused = env.instance.get_run_by_id(run_id)
    assert outcome.status == "FAILURE" and is_paused_run(run_id, paused.tags)
    assert paused_summary.paused and "paused on request" in paused_summary.error
    assert (execution.status, execution.is_paused) == ("paused", True)
    code, out, err = zquant(env, capsys, *url_args, "history", "--run", run_id)
    assert code == 0 and "FAILURE (paused)" in out, (out, err)
    # The request is done with; Dagster's run-retry daemon leaves the run for the resume.
    assert pause_request_pool(run_id) not in env.instance.event_log_storage.get_concurrency_keys()
    assert paused.tags[WILL_RETRY_TAG] == "false"
    (record,) = env.instance.get_run_records(dg.RunsFilter(run_ids=[run_id]))
    list(consume_new_runs_for_automatic_reexecution(env.workspace, [record], logging.getLogger()))
    assert env.instance.get_runs(dg.RunsFilter(tags={PARENT_RUN_ID_TAG: run_id})) == []

    wire.reset_calls()
    code, out, err = zquant(env, capsys, *url_args, "retry", run_id, "--from-failure", "--json")
    assert code == 0, err
    with env.local_operations() as ops:
        resumed = ops.run_to_end(json.loads(out)["run_id"])
    assert resumed.status == "SUCCESS", resumed.error
    assert not is_paused_run(resumed.run_id, env.instance.get_run_by_id(resumed.run_id).tags)
    # Only the days the paused run did not write were fetched; adj_factor, never reached,
    # every day.
    assert calls_per_day(wire, "daily", days) == {day: int(day not in written) for day in days}
    assert calls_per_day(wire, "adj_factor", days) == dict.fromkeys(days, 1)
    assert stored_days(env, "daily", days) == stored_days(env, "adj_factor", days) == days
