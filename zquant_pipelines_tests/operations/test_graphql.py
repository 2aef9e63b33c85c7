"""`zquant --url`: every command through a real Dagster webserver (served in this process,
no daemon) on a temporary instance, checked against what the local back end reads from the
same instance."""

import json
import socket

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorStatus

from zquant_pipelines import cli
from zquant_pipelines.constants import TAG_TASK, TAG_TASK_TYPE
from zquant_pipelines.operations.graphql import GraphQLOperations
from zquant_pipelines.tasks import control
from zquant_pipelines_tests.support.operations_environment import (
    executed_run,
    operations_environment,
    serving,
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(environment, url, by_hand run ids oldest first: success, failure)."""
    with operations_environment(tmp_path_factory.mktemp("graphql")) as env:
        ops = env.local_operations()
        runs = [executed_run(ops, "by_hand", overrides) for overrides in ({}, {"fail": True})]
        with serving(env.workspace) as url:
            yield env, url, runs


def zquant_url(site, capsys, *argv: str, operations=None) -> tuple[int, str, str]:
    _, url, _ = site
    capsys.readouterr()
    code = cli.main(["--url", url, *argv], operations=operations)
    out, err = capsys.readouterr()
    return code, out, err


def json_both(site, capsys, *argv: str) -> tuple[object, object]:
    """The --json output through GraphQL and through the local back end."""
    env, _, _ = site
    code, out, err = zquant_url(site, capsys, *argv, "--json")
    assert code == 0, err
    remote = json.loads(out)
    assert cli.main([*argv, "--json"], operations=env.local_operations()) == 0
    return remote, json.loads(capsys.readouterr().out)


def test_tasks_list_and_show_agree_with_local(site, capsys):
    remote, local = json_both(site, capsys, "tasks", "list")
    assert remote == local
    statuses = {row["name"]: row["status"] for row in remote["tasks"]}
    assert statuses["by_hand"] == "failed"
    remote, local = json_both(site, capsys, "tasks", "show", "by_hand")
    assert remote == local
    assert remote["recent_runs"]["total"] == 2


def test_history_and_run_detail_agree_with_local(site, capsys):
    _, _, runs = site
    remote, local = json_both(site, capsys, "history", "by_hand")
    assert remote == local
    assert [run["run_id"] for run in remote["runs"]] == runs[::-1]
    assert "failed on attempt 1" in remote["runs"][0]["error"]
    remote, local = json_both(site, capsys, "history", "by_hand", "--limit", "1")
    assert remote == local and remote["next_cursor"] == runs[-1]
    remote, local = json_both(site, capsys, "history", "by_hand", "--status", "success")
    assert remote == local and remote["total"] == 1
    remote, local = json_both(site, capsys, "history", "--run", runs[-1])
    assert remote == local


def test_stats_agree_with_local(site, capsys):
    remote, local = json_both(site, capsys, "stats")
    # Averages are summed in another order (SQL vs Python): equal up to rounding.
    for report in (remote, local):
        for row in [*report["tasks"], report["overall"]]:
            row["avg_duration_seconds"] = pytest.approx(row["avg_duration_seconds"])
    assert remote == local
    by_hand = next(row for row in remote["tasks"] if row["task"] == "by_hand")
    assert (by_hand["success_count"], by_hand["failed_count"]) == (1, 1)
    remote, local = json_both(site, capsys, "stats", "by_hand", "--since", "2000-01-01")
    assert remote["tasks"][0]["total_executions"] == local["tasks"][0]["total_executions"] == 2


def test_trigger_queues_a_run_on_the_server(site, capsys):
    env, _, _ = site
    code, out, err = zquant_url(
        site, capsys, "trigger", "queued", "--config", '{"message": "via graphql"}', "--json"
    )
    assert code == 0, err
    run = env.instance.get_run_by_id(json.loads(out)["run_id"])
    assert run.status == dg.DagsterRunStatus.QUEUED
    assert (run.tags[TAG_TASK], run.tags[TAG_TASK_TYPE]) == ("queued", "common_task")
    assert run.run_config["ops"]["queued"]["config"] == {"message": "via graphql"}


def stored_status(env, name: str) -> InstigatorStatus | None:
    states = [s for s in env.instance.all_instigator_state() if s.instigator_name == name]
    return states[0].status if states else None


def test_disable_and_enable_through_graphql(site, capsys):
    env, _, _ = site
    # nightly runs by default and ticker does not: each is toggled away and back.
    for task, trigger, verbs in (
        ("nightly", "nightly_schedule", ("disable", "enable")),
        ("ticker", "ticker_sensor", ("enable", "disable")),
    ):
        for verb in verbs:
            status = InstigatorStatus.RUNNING if verb == "enable" else InstigatorStatus.STOPPED
            code, out, err = zquant_url(site, capsys, verb, task, "--json")
            assert code == 0, err
            assert json.loads(out) == {
                "task": task,
                "trigger": trigger,
                "running": status == InstigatorStatus.RUNNING,
            }
            assert stored_status(env, trigger) == status
    code, _, err = zquant_url(site, capsys, "disable", "by_hand")
    assert code == 2 and "no schedule or sensor" in err


def test_pause_and_resume_through_graphql(site, capsys):
    env, _, _ = site
    code, out, _ = zquant_url(site, capsys, "pause", "held", "--json")
    assert (code, json.loads(out)) == (0, {"task": "held", "paused": True})
    assert control.is_paused(env.instance, "held")
    code, out, _ = zquant_url(site, capsys, "resume", "held", "--json")
    assert (code, json.loads(out)) == (0, {"task": "held", "paused": False})
    assert not control.is_paused(env.instance, "held")


def test_reload_the_code_location(site, capsys):
    code, out, err = zquant_url(site, capsys, "reload")
    assert code == 0, err
    assert "reloaded" in out and "zquant_pipelines" in out


def test_sync_daily_waits_for_the_run_and_says_why_it_did_not_start(site, capsys):
    env, url, _ = site
    impatient = GraphQLOperations(url, run_timeout_seconds=1)
    code, _, err = zquant_url(
        site, capsys, "sync-daily", "--ts-code", "000047.SZ", operations=impatient
    )
    assert code == 1
    assert "QUEUED" in err and "daemon" in err
    queued = env.instance.get_run_records(
        dg.RunsFilter(tags={TAG_TASK: "repair_daily_bars"}, statuses=[dg.DagsterRunStatus.QUEUED])
    )
    assert len(queued) == 1


def test_unreachable_server_and_bad_url(capsys):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        closed = holder.getsockname()[1]  # bound, not listening: connections are refused
        assert cli.main(["--url", f"http://127.0.0.1:{closed}", "tasks", "list"]) == 1
    assert "cannot reach" in capsys.readouterr().err
    assert cli.main(["--url", "localhost:3000", "tasks", "list"]) == 2
    assert "http://HOST:PORT" in capsys.readouterr().err


def test_printed_urls_hide_their_password(capsys):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        closed = holder.getsockname()[1]
        url = f"http://erin:pa55-word@127.0.0.1:{closed}"
        assert cli.main(["--url", url, "tasks", "list"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach" in err and f"erin:***@127.0.0.1:{closed}" in err
    assert "pa55-word" not in err
    assert cli.main(["--url", "ftp://erin:pa55-word@127.0.0.1:21", "tasks", "list"]) == 2
    err = capsys.readouterr().err
    assert "http://HOST:PORT" in err and "erin:***@" in err and "pa55-word" not in err
