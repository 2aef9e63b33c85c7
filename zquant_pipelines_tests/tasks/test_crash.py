"""A task run whose worker process is killed ends FAILURE and stops blocking its task.

Everything is real: the instance is the shipped dagster.yaml with its default run launcher,
the code location is served by a gRPC code server process (as under `dagster dev` or the
daemon), the run leaves the queue through the queue daemon and runs in its own run worker
process, which the test kills with SIGKILL while the task sleeps.

Who fails the run: the DefaultRunLauncher cannot check a worker's health, so Dagster's run
monitoring alone does not notice a dead worker of a STARTED run; the code server that
launched the worker does, within a second (it watches its worker processes). The test
drives run monitoring too, as the daemon would, and shows which of the two ended the run.
"""

import logging
import os
import signal
import time

import dagster as dg
import pytest
import yaml
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from zquant_pipelines.tasks.builders import schedule_name
from zquant_pipelines_tests.tasks.support import (
    DAGSTER_YAML,
    LOCATION_MODULE,
    REPO_ROOT,
    CatalogLocation,
    dagster_events,
    dagster_home,
    example,
    step_event_types,
)

TASK = "crashy"
# Long enough that only the kill can end the run within the test.
SLEEP_SECONDS = 300
# The run worker is a fresh Python process importing Dagster and the code location: on a
# busy two-core machine that takes seconds.
DEADLINE_SECONDS = 45
POLL_SECONDS = 0.2
STARTED_PROCESS_MESSAGE = "Started process for run (pid: "
S = dg.DagsterRunStatus

pytestmark = pytest.mark.slow


def wait_for(condition, what: str):
    """Poll ``condition`` until it returns something truthy, or fail after the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"timed out after {DEADLINE_SECONDS} s waiting for {what}")


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid the run worker reported in its "Started process for run" engine event."""
    for entry in dagster_events(instance, run_id):
        if (entry.dagster_event.message or "").startswith(STARTED_PROCESS_MESSAGE):
            return int(entry.dagster_event.engine_event_data.metadata["pid"].value)
    return None


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def grpc_instance(tmp_path):
    """The shipped dagster.yaml as it is: run queue, tag limit, default run launcher."""
    overrides = yaml.safe_load(DAGSTER_YAML.read_text())
    with dg.instance_for_test(temp_dir=dagster_home(tmp_path), overrides=overrides) as instance:
        yield instance


@pytest.fixture
def daemon_context(use_catalog, grpc_instance):
    """A workspace whose code location runs in its own gRPC code server process."""
    use_catalog(
        [
            example(
                TASK,
                cron_expression="0 2 * * *",
                executor="in_process",  # the sleep runs in the run worker itself
                config={"sleep_seconds": SLEEP_SECONDS},
            )
        ]
    )
    target = ModuleTarget(
        module_name=LOCATION_MODULE,
        attribute="defs",
        working_directory=str(REPO_ROOT),
        location_name="crash_test",
    )
    with create_test_daemon_workspace_context(target, grpc_instance) as context:
        yield context


def test_a_killed_run_worker_fails_the_run_and_the_next_tick_runs(daemon_context):
    instance = daemon_context.instance
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_max_resume_run_attempts == 0
    assert not instance.run_launcher.supports_check_run_worker_health
    location = CatalogLocation(instance, daemon_context.create_request_context())
    schedule = location.repository.get_definition().get_schedule_def(schedule_name(TASK))

    def tick():
        return schedule.evaluate_tick(dg.build_schedule_context(instance=instance))

    run_id = location.submit_run(TASK)
    list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(daemon_context))
    pid = None
    try:
        wait_for(lambda: location.status(run_id) == S.STARTED, "the run to start")
        wait_for(lambda: step_event_types(instance, run_id).get(TASK), "the task's step to start")
        pid = wait_for(lambda: run_worker_pid(instance, run_id), "the run worker's pid")
        assert pid != os.getpid() and is_alive(pid)
        blocked = tick()
        assert not blocked.run_requests and run_id in blocked.skip_message

        os.kill(pid, signal.SIGKILL)

        def run_failed() -> bool:
            list(execute_run_monitoring_iteration(daemon_context, logging.getLogger(__name__)))
            return location.status(run_id) == S.FAILURE

        wait_for(run_failed, "the killed run to be marked FAILURE")
    finally:
        if pid is not None and is_alive(pid):
            os.kill(pid, signal.SIGKILL)
        elif not instance.get_run_by_id(run_id).is_finished:
            instance.run_launcher.terminate(run_id)

    assert not is_alive(pid)
    messages = [entry.dagster_event.message or "" for entry in dagster_events(instance, run_id)]
    # Reported by the code server (DagsterApiServer), not by run monitoring.
    crash = f"[DagsterApiServer] Run execution process for {run_id} was terminated by signal 9"
    assert any(message.startswith(crash) for message in messages), messages[-4:]
    assert "RUN_SUCCESS" not in {
        entry.dagster_event.event_type_value for entry in dagster_events(instance, run_id)
    }

    next_tick = tick()
    assert len(next_tick.run_requests) == 1 and not next_tick.skip_message
