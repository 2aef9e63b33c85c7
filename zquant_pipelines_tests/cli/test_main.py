"""The `zquant` CLI in local mode, on a real instance in a temporary DAGSTER_HOME.

Commands run through ``cli.main`` with one shared ``LocalOperations`` (its code server is
loaded once for the module); one test runs the installed console script end to end.
"""

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.scheduler.instigation import InstigatorStatus

from zquant_pipelines import cli
from zquant_pipelines.constants import TAG_TASK, TAG_TASK_TYPE
from zquant_pipelines.dates import market_today
from zquant_pipelines.history.store import sql_run_storage
from zquant_pipelines.history.summary import TaskRunsTable
from zquant_pipelines.operations.base import REPOSITORY_NAME, location_name
from zquant_pipelines.operations.local import LocalOperations
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.sync.market import sync_stock_basic
from zquant_pipelines.tasks import control
from zquant_pipelines.tasks.builders import pool_name
from zquant_pipelines_tests.support.catalog_files import catalog_text
from zquant_pipelines_tests.support.operations_environment import (
    TASK_NAMES,
    OperationsEnvironment,
    executed_run,
    operations_environment,
)

VENV_BIN = os.path.dirname(sys.executable)


@dataclasses.dataclass(frozen=True)
class World:
    env: OperationsEnvironment
    ops: LocalOperations
    # by_hand's runs, oldest first: two successes, then a failure.
    by_hand_runs: list[str]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with operations_environment(tmp_path_factory.mktemp("cli")) as env:
        ops = env.local_operations()
        runs = [
            executed_run(ops, "by_hand", overrides)
            for overrides in ({}, {"message": "again"}, {"fail": True})
        ]
        yield World(env, ops, runs)


def zquant(world: World, capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv), operations=world.ops)
    out, err = capsys.readouterr()
    return code, out, err


def zquant_json(world: World, capsys, *argv: str):
    code, out, err = zquant(world, capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def listed(world: World, capsys, *argv: str) -> list[dict]:
    """`zquant tasks list --json`'s rows (zquant's {tasks, total})."""
    return zquant_json(world, capsys, "tasks", "list", *argv)["tasks"]


def stored_status(world: World, instigator_name: str) -> InstigatorStatus | None:
    states = [
        state
        for state in world.env.instance.all_instigator_state()
        if state.instigator_name == instigator_name
    ]
    return states[0].status if states else None


# --- tasks list / show / validate ---------------------------------------------------------


def test_tasks_list_shows_every_task_with_its_status(world, capsys):
    rows = {row["name"]: row for row in listed(world, capsys)}
    assert tuple(rows) == tuple(reversed(TASK_NAMES))  # zquant's default order: id desc
    assert rows["by_hand"]["status"] == "failed"  # its latest run failed
    assert rows["by_hand"]["latest_run_id"] == world.by_hand_runs[-1]
    assert rows["repair_daily_bars"]["trigger"] == "manual"
    ticker = rows["ticker"]
    assert (ticker["enabled"], ticker["status"], ticker["next_tick"]) == (False, "disabled", None)
    assert ticker["trigger"] == "every 60 s"
    # zquant's rules: a task no trigger starts that never ran is disabled; a running
    # schedule waits for its next fire (pending).
    assert rows["chain"]["status"] in ("disabled", "running")  # never run, or queued elsewhere
    if rows["nightly"]["enabled"] and rows["nightly"]["latest_run_status"] is None:
        assert rows["nightly"]["status"] == "pending"


def test_tasks_list_next_tick_of_a_cron_task(world, capsys):
    rows = {row["name"]: row for row in listed(world, capsys)}
    nightly = rows["nightly"]
    assert nightly["trigger"] == "0 18 * * 1-5 (Asia/Shanghai)"
    if not nightly["enabled"]:
        pytest.skip("another test left nightly disabled")
    tick = dt.datetime.fromisoformat(nightly["next_tick"]).astimezone(ZoneInfo("Asia/Shanghai"))
    assert (tick.hour, tick.minute, tick.weekday() < 5) == (18, 0, True)
    now = dt.datetime.now(dt.UTC)
    assert now < tick <= now + dt.timedelta(days=4)


def test_tasks_list_filters_and_sorts(world, capsys):
    manual = listed(world, capsys, "--type", "manual_task")
    assert {row["name"] for row in manual} == {"by_hand", "held", "repair_daily_bars"}
    disabled = listed(world, capsys, "--disabled")
    assert disabled and all(not row["enabled"] for row in disabled)
    by_next = listed(world, capsys, "--sort", "next", "--order", "asc")
    ticks = [row["next_tick"] for row in by_next]
    known = [tick for tick in ticks if tick is not None]
    assert ticks[: len(known)] == sorted(known)  # timed rows first, earliest first


def test_tasks_list_pages_as_zquant(world, capsys):
    page = zquant_json(
        world,
        capsys,
        "tasks",
        "list",
        "--sort",
        "name",
        "--order",
        "asc",
        "--skip",
        "2",
        "--limit",
        "3",
    )
    assert [row["name"] for row in page["tasks"]] == sorted(TASK_NAMES)[2:5]
    assert page["total"] == len(TASK_NAMES)
    by_retries = listed(world, capsys, "--sort", "max_retries")
    assert [row["max_retries"] for row in by_retries] == sorted(
        (row["max_retries"] for row in by_retries), reverse=True
    )
    assert [row["id"] for row in listed(world, capsys, "--order", "asc")] == list(
        range(1, len(TASK_NAMES) + 1)
    )
    for argv in (("--limit", "0"), ("--limit", "1001"), ("--skip", "-1")):
        with pytest.raises(SystemExit) as exited:  # argparse's usage error
            zquant(world, capsys, "tasks", "list", *argv)
        err = capsys.readouterr().err
        assert exited.value.code == 2 and f"argument {argv[0]}: {argv[1]!r}" in err, err


def test_tasks_list_human_table(world, capsys):
    code, out, _ = zquant(world, capsys, "tasks", "list")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split() == [
        "ID",
        "NAME",
        "TYPE",
        "TRIGGER",
        "ENABLED",
        "NEXT",
        "TICK",
        "STATUS",
    ]
    by_hand = next(line.split() for line in lines if line.split()[1:2] == ["by_hand"])
    assert (by_hand[0], by_hand[-1]) == ("3", "failed")


def test_tasks_show_a_workflow_and_a_member(world, capsys):
    chain = zquant_json(world, capsys, "tasks", "show", "chain")
    assert chain["workflow"]["members"] == [
        {"name": "by_hand", "dependencies": []},
        {"name": "queued", "dependencies": ["by_hand"]},
    ]
    assert chain["job_name"] == "chain_job"
    by_hand = zquant_json(world, capsys, "tasks", "show", "by_hand")
    assert by_hand["member_of"] == ["chain"]
    assert by_hand["config"] == {"task_action": "example_task", "message": "by hand"}
    recent = by_hand["recent_runs"]
    assert recent["total"] == 3
    assert [run["run_id"] for run in recent["runs"]] == world.by_hand_runs[::-1]

    code, out, _ = zquant(world, capsys, "tasks", "show", "chain")
    assert code == 0
    assert "queued" in out and "by_hand" in out and "Workflow: serial" in out


def test_tasks_show_an_unknown_task_is_a_usage_error(world, capsys):
    code, _, err = zquant(world, capsys, "tasks", "show", "nope")
    assert code == 2
    assert "'nope'" in err and "by_hand" in err


BAD_CATALOG = """
tasks:
  - name: broken
    task_type: common_task
    cron_expression: "61 * * * *"
    config: {task_action: example_task}
  - name: also_broken
    task_type: nonsense
  - name: broken
    task_type: manual_task
    config: {task_action: example_task}
"""


def test_tasks_validate_prints_every_problem(world, capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CATALOG)
    code, out, _ = zquant(world, capsys, "tasks", "validate", str(bad))
    assert code == 2
    assert "minute 61 is out of range" in out
    assert "task_type 'nonsense'" in out
    assert "already used by task #1" in out

    report = json.loads(zquant(world, capsys, "tasks", "validate", str(bad), "--json")[1])
    assert report["valid"] is False and len(report["problems"]) >= 3

    code, out, _ = zquant(world, capsys, "tasks", "validate", str(world.env.tasks_file))
    assert code == 0
    assert out.strip().endswith(f"{len(TASK_NAMES)} tasks OK")


def test_a_bad_catalog_in_the_environment_stops_every_command(world, capsys, tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CATALOG)
    monkeypatch.setenv("ZQUANT_TASKS_FILE", str(bad))
    for argv in (("tasks", "list"), ("tasks", "validate"), ("trigger", "broken")):
        code, out, err = zquant(world, capsys, *argv)
        assert code == 2, argv
        shown = out + err
        assert "minute 61 is out of range" in shown and "task_type 'nonsense'" in shown


# --- trigger -----------------------------------------------------------------------------


def test_trigger_queues_a_run_with_the_task_tags_and_merged_config(world, capsys):
    code, out, _ = zquant(world, capsys, "trigger", "queued", "--config", '{"sleep_seconds": 1}')
    assert code == 0
    assert "queued" in out and "daemon" in out
    run_id = out.split()[1]
    run = world.env.instance.get_run_by_id(run_id)
    assert run.status == dg.DagsterRunStatus.QUEUED
    assert run.tags[TAG_TASK] == "queued" and run.tags[TAG_TASK_TYPE] == "common_task"
    assert run.job_name == "queued_job"
    # The catalog's params (task_action names the op, it is not a param) plus --config.
    assert run.run_config["ops"]["queued"]["config"] == {"message": "default", "sleep_seconds": 1}


def test_trigger_a_workflow_with_config_per_member(world, capsys):
    result = zquant_json(
        world, capsys, "trigger", "chain", "--config", '{"queued": {"message": "late"}}'
    )
    run = world.env.instance.get_run_by_id(result["run_id"])
    assert run.status == dg.DagsterRunStatus.QUEUED
    assert run.tags[TAG_TASK] == "chain" and run.tags[TAG_TASK_TYPE] == "workflow"
    ops = run.run_config["ops"]
    assert ops["queued"]["config"]["message"] == "late"
    assert ops["by_hand"]["config"]["message"] == "by hand"


@pytest.mark.parametrize(
    "argv, named",
    [
        (("trigger", "queued", "--config", "{not json"), "{not json"),
        (("trigger", "queued", "--config", "[1]"), "[1]"),
        (("trigger", "queued", "--config", '{"sleep_seconds": -1}'), "sleep_seconds"),
        (("trigger", "queued", "--config", '{"colour": 1}'), "colour"),
        (("trigger", "chain", "--config", '{"nightly": {}}'), "nightly"),
        (("trigger", "missing_task"), "missing_task"),
    ],
)
def test_trigger_refuses_bad_input(world, capsys, argv, named):
    before = len(world.env.instance.get_run_records())
    code, _, err = zquant(world, capsys, *argv)
    assert code == 2
    assert named in err
    assert len(world.env.instance.get_run_records()) == before


# --- enable / disable / pause / resume -------------------------------------------------


def test_disable_and_enable_a_schedule(world, capsys):
    assert stored_status(world, "nightly_schedule") is None  # default (enabled) in force
    result = zquant_json(world, capsys, "disable", "nightly")
    assert result == {"task": "nightly", "trigger": "nightly_schedule", "running": False}
    assert stored_status(world, "nightly_schedule") == InstigatorStatus.STOPPED
    rows = {row["name"]: row for row in listed(world, capsys)}
    assert (rows["nightly"]["status"], rows["nightly"]["next_tick"]) == ("disabled", None)

    assert zquant_json(world, capsys, "disable", "nightly")["running"] is False  # idempotent
    assert zquant_json(world, capsys, "enable", "nightly")["running"] is True
    assert stored_status(world, "nightly_schedule") == InstigatorStatus.RUNNING
    rows = {row["name"]: row for row in listed(world, capsys)}
    assert rows["nightly"]["enabled"] and rows["nightly"]["next_tick"]


def test_enable_and_disable_a_sensor(world, capsys):
    code, out, _ = zquant(world, capsys, "enable", "ticker")
    assert code == 0 and "ticker_sensor is RUNNING" in out
    assert stored_status(world, "ticker_sensor") == InstigatorStatus.RUNNING
    assert zquant_json(world, capsys, "disable", "ticker")["running"] is False
    assert stored_status(world, "ticker_sensor") == InstigatorStatus.STOPPED


def test_enable_a_task_without_trigger_is_a_usage_error(world, capsys):
    code, _, err = zquant(world, capsys, "enable", "by_hand")
    assert code == 2
    assert "no schedule or sensor" in err and "zquant trigger by_hand" in err


def test_pause_and_resume_hold_the_task_pool(world, capsys):
    instance = world.env.instance
    assert zquant_json(world, capsys, "pause", "held") == {"task": "held", "paused": True}
    limits = {limit.name: limit.limit for limit in instance.event_log_storage.get_pool_limits()}
    assert limits[pool_name("held")] == 0
    rows = {row["name"]: row for row in listed(world, capsys)}
    assert rows["held"]["status"] == "paused"

    assert zquant_json(world, capsys, "resume", "held") == {"task": "held", "paused": False}
    assert not control.is_paused(instance, "held")
    rows = {row["name"]: row for row in listed(world, capsys)}
    assert rows["held"]["status"] == "disabled"  # zquant: a manual task that never ran


# --- history / stats -------------------------------------------------------------------


def test_history_pages_newest_first_with_true_total(world, capsys):
    page = zquant_json(world, capsys, "history", "by_hand")
    assert page["total"] == 3
    assert [run["run_id"] for run in page["runs"]] == world.by_hand_runs[::-1]
    assert [run["status"] for run in page["runs"]] == ["FAILURE", "SUCCESS", "SUCCESS"]
    assert "failed on attempt 1" in page["runs"][0]["error"]
    assert all(run["duration_seconds"] >= 0 and run["attempts"] == 1 for run in page["runs"])

    first = zquant_json(world, capsys, "history", "by_hand", "--limit", "2")
    assert (first["total"], len(first["runs"])) == (3, 2)
    rest = zquant_json(
        world, capsys, "history", "by_hand", "--limit", "2", "--cursor", first["next_cursor"]
    )
    assert [run["run_id"] for run in rest["runs"]] == world.by_hand_runs[:1]
    assert rest["next_cursor"] is None

    failed = zquant_json(world, capsys, "history", "by_hand", "--status", "failed")
    assert failed["total"] == 1 and failed["runs"][0]["run_id"] == world.by_hand_runs[-1]


def test_history_of_one_run(world, capsys):
    detail = zquant_json(world, capsys, "history", "--run", world.by_hand_runs[-1])
    assert detail["run"]["status"] == "FAILURE"
    assert detail["tags"][TAG_TASK] == "by_hand"
    assert [step["step_key"] for step in detail["steps"]] == ["by_hand"]
    code, out, _ = zquant(world, capsys, "history", "--run", world.by_hand_runs[0])
    assert code == 0 and "SUCCESS" in out and world.by_hand_runs[0] in out


@pytest.mark.parametrize(
    "argv, code, named",
    [
        (("history", "--run", "no-such-run"), 1, "no-such-run"),
        (("history", "by_hand", "--limit", "0"), 2, "limit"),
        (("history", "by_hand", "--status", "sideways"), 2, "sideways"),
        (("history", "by_hand", "--cursor", "no-such-run"), 2, "no-such-run"),
        (("history",), 2, "--run"),
        (("stats", "--since", "2024/01/01"), 2, "2024/01/01"),
        (("history", "no_such_task"), 2, "no_such_task"),
        (("stats", "no_such_task"), 2, "no_such_task"),
    ],
)
def test_history_and_stats_refuse_bad_input(world, capsys, argv, code, named):
    exit_code, _, err = zquant(world, capsys, *argv)
    assert exit_code == code
    assert named in err


def test_stats_json_has_zquant_field_names_and_agrees_with_a_naive_count(world, capsys):
    report = zquant_json(world, capsys, "stats")
    by_task = {row["task"]: row for row in report["tasks"]}
    by_hand = by_task["by_hand"]
    assert {
        "total_executions",
        "success_count",
        "failed_count",
        "running_count",
        "success_rate",
        "avg_duration_seconds",
        "latest_execution_time",
        "canceled_count",
        "p95_duration_seconds",
    } <= set(by_hand)
    records = world.env.instance.get_run_records(dg.RunsFilter(tags={TAG_TASK: "by_hand"}))
    statuses = [record.dagster_run.status for record in records]
    success = statuses.count(dg.DagsterRunStatus.SUCCESS)
    failed = statuses.count(dg.DagsterRunStatus.FAILURE)
    assert (by_hand["total_executions"], by_hand["success_count"], by_hand["failed_count"]) == (
        len(records),
        success,
        failed,
    )
    assert by_hand["success_rate"] == pytest.approx(success / (success + failed))
    overall = report["overall"]
    assert overall["total_executions"] == sum(row["total_executions"] for row in by_task.values())

    one = zquant_json(world, capsys, "stats", "by_hand")
    assert [row["task"] for row in one["tasks"]] == ["by_hand"]
    assert one["tasks"][0]["total_executions"] == len(records)

    tomorrow = (market_today() + dt.timedelta(days=1)).isoformat()
    later = zquant_json(world, capsys, "stats", "by_hand", "--since", tomorrow)
    assert later["tasks"][0]["total_executions"] == 0

    code, out, _ = zquant(world, capsys, "stats")
    assert code == 0 and "by_hand" in out and "(all tasks)" in out


def test_stats_rebuild_rebuilds_the_summary_from_the_run_store(world, capsys):
    before = zquant_json(world, capsys, "stats")
    # A summary gone wrong (no trigger of it would ever do this): every run a success.
    with sql_run_storage(world.env.instance).connect() as conn:
        conn.execute(sa.update(TaskRunsTable).values(status="SUCCESS"))
    assert zquant_json(world, capsys, "stats")["overall"] != before["overall"]

    code, out, err = zquant(world, capsys, "stats", "--rebuild", "--json")

    assert code == 0, err
    assert json.loads(out) == before
    runs = len(world.env.instance.get_run_records())
    assert f"rebuilt the task run summary from the run store: {runs} runs" in err


# --- sync-daily --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, named",
    [
        (
            ("--codelist", "000047", "--start-date", "20240110", "--end-date", "20240102"),
            "20240110",
        ),
        (("--ts-code", "000047", "--end-date", "20991231"), "--end-date 20991231"),
        (("--symbol", "000047", "--start-date", "2024-01-02"), "--start-date '2024-01-02'"),
        (("--codelist", "000047,12345"), "12345"),
        (("--ts-code", "51"), "--ts-code '51'"),
    ],
)
def test_sync_daily_refuses_bad_arguments(world, capsys, argv, named):
    code, _, err = zquant(world, capsys, "sync-daily", *argv)
    assert code == 2
    assert named in err


def test_sync_daily_needs_one_code_option(world, capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["sync-daily", "--start-date", "20240102"], operations=world.ops)
    assert raised.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(["sync-daily", "--symbol", "000047", "--ts-code", "000047.SZ"])


def test_sync_daily_writes_bars_through_a_dagster_run(world, capsys):
    warehouse = Warehouse(url=world.env.warehouse_url)
    sync_stock_basic(SampleMarketSource(), warehouse)  # the run checks its codes against it
    warehouse.dispose()
    result = zquant_json(
        world,
        capsys,
        "sync-daily",
        "--codelist",
        "000047,000123",
        "--start-date",
        "20240102",
        "--end-date",
        "20240131",
    )
    assert result["status"] == "SUCCESS"
    engine = sa.create_engine(world.env.warehouse_url)
    with engine.connect() as conn:
        stored = {
            table: conn.execute(
                sa.text(
                    f"SELECT COUNT(*) FROM {table} WHERE ts_code IN ('000047.SZ', '000123.SZ')"
                    " AND trade_date BETWEEN '2024-01-02' AND '2024-01-31'"
                )
            ).scalar_one()
            for table in ("daily", "adj_factor")
        }
    engine.dispose()
    assert stored["daily"] > 0
    assert result["rows_written"] == stored
    run = world.env.instance.get_run_by_id(result["run_id"])
    assert run.tags[TAG_TASK] == "repair_daily_bars"
    assert run.run_config["ops"]["repair_daily_bars"]["config"]["codelist"] == "000047,000123"
    page = zquant_json(world, capsys, "history", "repair_daily_bars")
    assert result["run_id"] in [run["run_id"] for run in page["runs"]]


# --- the installed console script ------------------------------------------------------


def test_console_script_uses_the_instance_in_dagster_home(world):
    completed = subprocess.run(
        [os.path.join(VENV_BIN, "zquant"), "history", "by_hand", "--limit", "1", "--json"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    page = json.loads(completed.stdout)
    assert page["total"] == 3 and page["runs"][0]["run_id"] == world.by_hand_runs[-1]


def test_console_script_trigger_queues_a_run_of_the_code_location(world):
    completed = subprocess.run(
        [os.path.join(VENV_BIN, "zquant"), "trigger", "queued", "--json"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    run = world.env.instance.get_run_by_id(json.loads(completed.stdout)["run_id"])
    assert run.status == dg.DagsterRunStatus.QUEUED
    # Listed under queued_job of the code location in the UI, with Re-execute.
    assert run.job_name == "queued_job"
    origin = run.remote_job_origin
    assert origin is not None and origin.job_name == "queued_job"
    assert origin.repository_origin.repository_name == REPOSITORY_NAME
    assert origin.repository_origin.code_location_origin.location_name == location_name()


# --- wording -----------------------------------------------------------------------------


def test_printed_times_carry_their_utc_offset(world, capsys):
    code, out, _ = zquant(world, capsys, "history", "--run", world.by_hand_runs[0])
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.splitlines()[:8] if " " in line)
    created = dt.datetime.fromisoformat(fields["created"].strip())
    assert created.utcoffset() == dt.timedelta(hours=8), fields["created"]


def test_counts_of_one_are_singular(world, capsys, tmp_path):
    code, out, _ = zquant(world, capsys, "history", "by_hand", "--status", "failed")
    assert code == 0
    assert out.splitlines()[0].startswith("Task by_hand: 1 run "), out
    code, out, _ = zquant(world, capsys, "history", "by_hand")
    assert out.splitlines()[0].startswith("Task by_hand: 3 runs"), out

    one_task = tmp_path / "one.yaml"
    one_task.write_text(
        catalog_text(
            [
                {
                    "name": "only",
                    "task_type": "manual_task",
                    "config": {"task_action": "example_task"},
                }
            ]
        )
    )
    code, out, _ = zquant(world, capsys, "tasks", "validate", str(one_task))
    assert (code, out.strip()) == (0, f"{one_task}: 1 task OK")


def test_resume_says_whether_the_task_was_paused(world, capsys):
    zquant(world, capsys, "pause", "held")
    code, out, _ = zquant(world, capsys, "resume", "held")
    assert (code, out.strip()) == (0, "Task held was paused: its held runs are released.")
    code, out, _ = zquant(world, capsys, "resume", "held")
    assert code == 0
    assert out.startswith("Task held was not paused"), out


def test_validate_with_a_url_says_it_validates_the_local_file(world, capsys):
    url = "http://127.0.0.1:3999"
    code, out, _ = zquant(
        world, capsys, "--url", url, "tasks", "validate", str(world.env.tasks_file)
    )
    assert code == 0
    assert f"validates the local file {world.env.tasks_file}" in out
    assert f"`zquant --url {url} reload`" in out
    code, out, _ = zquant(world, capsys, "tasks", "validate", str(world.env.tasks_file))
    assert "local file" not in out
