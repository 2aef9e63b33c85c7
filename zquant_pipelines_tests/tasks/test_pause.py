"""Pause / resume and one run per task, through Dagster's run queue as dagster.yaml sets it
up: runs are submitted like the webserver submits them and the daemons are driven one
iteration at a time; the launcher only records which runs left the queue."""

import datetime as dt
import logging

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorStatus
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from zquant_pipelines.tasks.builders import schedule_name
from zquant_pipelines.tasks.control import is_paused, pause_task, paused_tasks, resume_task
from zquant_pipelines_tests.tasks.support import catalog_location, example, member, workflow

QUEUED, STARTING = dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING


@pytest.fixture
def daemon_context(queue_instance):
    with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), queue_instance) as context:
        yield context


@pytest.fixture
def drive_queue(daemon_context):
    """One pass of the run queue daemon (what `dagster-daemon run` does every few seconds)."""
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)

    def drive() -> None:
        list(daemon.run_iteration(daemon_context))

    return drive


@pytest.fixture
def location(use_catalog, queue_instance):
    use_catalog(
        [
            example("repair", task_type="manual_task"),
            example("nightly", cron_expression="0 2 * * *", enabled=False),
            example("other", task_type="manual_task"),
            workflow("chain", "serial", "stop", [member("repair"), member("other", "repair")]),
        ]
    )
    with catalog_location(queue_instance) as loaded:
        yield loaded


def launched(location, run_id: str) -> bool:
    return location.instance.run_launcher.did_run_launch(run_id)


def test_pause_holds_a_manual_run_in_the_queue_until_resume(location, drive_queue):
    pause_task(location.instance, "repair")
    held = location.submit_run("repair")
    free = location.submit_run("other")

    drive_queue()
    drive_queue()

    assert location.status(held) == QUEUED and not launched(location, held)
    assert location.status(free) == STARTING and launched(location, free)
    assert is_paused(location.instance, "repair")
    assert paused_tasks(location.instance) == {"repair"}

    resume_task(location.instance, "repair")
    drive_queue()

    assert location.status(held) == STARTING and launched(location, held)
    assert not is_paused(location.instance, "repair")


def test_pausing_a_workflow_holds_its_runs(location, drive_queue):
    pause_task(location.instance, "chain")
    held = location.submit_run("chain")

    drive_queue()
    assert location.status(held) == QUEUED

    resume_task(location.instance, "chain")
    drive_queue()
    assert launched(location, held)


def test_second_run_of_a_task_waits_while_the_first_is_in_flight(location, drive_queue):
    first = location.submit_run("repair")
    drive_queue()
    second = location.submit_run("repair")
    other = location.submit_run("other")

    drive_queue()

    assert location.status(first) == STARTING
    assert location.status(second) == QUEUED and not launched(location, second)
    assert launched(location, other)

    location.instance.report_run_failed(location.instance.get_run_by_id(first))
    drive_queue()
    assert location.status(second) == STARTING and launched(location, second)


def test_a_disabled_task_still_runs_by_hand(location, drive_queue):
    remote_schedule = location.remote_repository.get_schedule(schedule_name("nightly"))
    state = remote_schedule.get_current_instigator_state(None)
    assert state.status == InstigatorStatus.STOPPED

    manual = location.submit_run("nightly")
    drive_queue()

    assert launched(location, manual)
    assert not is_paused(location.instance, "nightly")


def test_pause_and_resume_are_idempotent(location):
    resume_task(location.instance, "repair")
    pause_task(location.instance, "repair")
    pause_task(location.instance, "repair")
    assert paused_tasks(location.instance) == {"repair"}
    resume_task(location.instance, "repair")
    resume_task(location.instance, "repair")
    assert paused_tasks(location.instance) == set()


def test_a_run_stuck_starting_is_failed_by_run_monitoring_and_frees_the_task(
    location, drive_queue, daemon_context
):
    stuck = location.submit_run("repair")
    drive_queue()
    waiting = location.submit_run("repair")
    drive_queue()
    assert (location.status(stuck), location.status(waiting)) == (STARTING, QUEUED)
    timeout = location.instance.run_monitoring_start_timeout_seconds
    assert timeout == 180  # dagster.yaml's run_monitoring.start_timeout_seconds

    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=timeout + 1)
    with freeze_time(later):
        list(execute_run_monitoring_iteration(daemon_context, logging.getLogger(__name__)))
    drive_queue()

    assert location.status(stuck) == dg.DagsterRunStatus.FAILURE
    assert location.status(waiting) == STARTING
