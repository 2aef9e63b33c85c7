"""A task run whose processes are killed ends FAILURE, leaves no process behind and stops
blocking its task.

Everything is real: the instance is the shipped dagster.yaml with its run launcher, the code
location is served by a gRPC code server process (as under `dagster dev` or the daemon), the
run leaves the queue through the queue daemon and runs in its own run worker process, which
the test kills with SIGKILL, together with the code server that launched it (the one process
that watched the worker). The test then drives run monitoring as the daemon would.
"""

import logging
import os
import signal
import textwrap
from contextlib import contextmanager

import dagster as dg
import psutil
import pytest
import yaml
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from zquant_pipelines.constants import ENV_SCRIPTS_DIR
from zquant_pipelines.supervision import fail_runs_with_dead_workers
from zquant_pipelines.tasks.builders import schedule_name
from zquant_pipelines_tests.support.waiting import wait_until
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
DEADLINE_SECONDS = 60
POLL_SECONDS = 0.2
STARTED_PROCESS_MESSAGE = "Started process for run (pid: "
S = dg.DagsterRunStatus

pytestmark = pytest.mark.slow

# Appends the time to a marker file every 50 ms until killed, and so does a child of it that
# left the script's session (setsid).
WRITER = """
    import os, subprocess, sys, time

    if sys.argv[2:] != ["child"]:
        subprocess.Popen([sys.executable, sys.argv[0], sys.argv[1], "child"])
    else:
        os.setsid()
    with open(sys.argv[1], "a", buffering=1) as marker:
        while True:
            marker.write(f"{time.time()}\\n")
            time.sleep(0.05)
"""


def wait_for(condition, what: str):
    """``condition``'s first truthy value, polled until the deadline."""
    return wait_until(condition, DEADLINE_SECONDS, what, POLL_SECONDS)


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid the run worker reported in its "Started process for run" engine event."""
    for entry in dagster_events(instance, run_id):
        if (entry.dagster_event.message or "").startswith(STARTED_PROCESS_MESSAGE):
            return int(entry.dagster_event.engine_event_data.metadata["pid"].value)
    return None


def step_pids(instance: dg.DagsterInstance, run_id: str) -> list[int]:
    """The pids of the run's step processes (their STEP_WORKER_STARTED events)."""
    return [
        int(entry.dagster_event.event_specific_data.metadata["pid"].value)
        for entry in dagster_events(instance, run_id)
        if entry.dagster_event.event_type_value == "STEP_WORKER_STARTED"
    ]


def is_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def monitor_until_failed(context, location: CatalogLocation, run_id: str) -> None:
    """Run monitoring iterations, as the daemon does every poll interval, until the run fails."""

    def run_failed() -> bool:
        list(execute_run_monitoring_iteration(context, logging.getLogger(__name__)))
        return location.status(run_id) == S.FAILURE

    wait_for(run_failed, "run monitoring to mark the run FAILURE")


@pytest.fixture
def grpc_instance(tmp_path):
    """The shipped dagster.yaml as it is: run queue, tag limit, its run launcher."""
    overrides = yaml.safe_load(DAGSTER_YAML.read_text())
    with dg.instance_for_test(temp_dir=dagster_home(tmp_path), overrides=overrides) as instance:
        yield instance


@contextmanager
def code_server_context(instance: dg.DagsterInstance):
    """A workspace whose code location runs in its own gRPC code server process."""
    target = ModuleTarget(
        module_name=LOCATION_MODULE,
        attribute="defs",
        working_directory=str(REPO_ROOT),
        location_name="crash_test",
    )
    with create_test_daemon_workspace_context(target, instance) as context:
        yield context


@pytest.fixture
def sleeping_task(use_catalog):
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


def start_run(context, location: CatalogLocation) -> tuple[str, int]:
    """Submit a run of the task, let the queue daemon launch it; its id and run worker pid."""
    run_id = location.submit_run(TASK)
    list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(context))
    instance = context.instance
    wait_for(lambda: location.status(run_id) == S.STARTED, "the run to start")
    wait_for(lambda: step_event_types(instance, run_id).get(TASK), "the task's step to start")
    pid = wait_for(lambda: run_worker_pid(instance, run_id), "the run worker's pid")
    assert pid != os.getpid() and is_alive(pid)
    return run_id, pid


def test_killing_the_run_worker_and_its_code_server_fails_the_run(sleeping_task, grpc_instance):
    instance = grpc_instance
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_max_resume_run_attempts == 0
    assert instance.run_launcher.supports_check_run_worker_health
    pids = []
    try:
        with code_server_context(instance) as context:
            location = CatalogLocation(instance, context.create_request_context())
            schedule = location.repository.get_definition().get_schedule_def(schedule_name(TASK))
            run_id, worker = start_run(context, location)
            code_server = psutil.Process(worker).ppid()
            pids = [worker, code_server]
            assert "grpc" in " ".join(psutil.Process(code_server).cmdline())
            blocked = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
            assert not blocked.run_requests and run_id in blocked.skip_message

            # The code server first, so that it cannot report its worker's death.
            kill(code_server)
            wait_for(lambda: not is_alive(code_server), "the code server to die")
            kill(worker)
            wait_for(lambda: not is_alive(worker), "the run worker to die")

            monitor_until_failed(context, location, run_id)
    finally:
        for pid in pids:
            kill(pid)

    messages = [entry.dagster_event.message or "" for entry in dagster_events(instance, run_id)]
    assert any(f"run worker (pid {worker}) is gone" in message for message in messages), messages
    assert "RUN_SUCCESS" not in {
        entry.dagster_event.event_type_value for entry in dagster_events(instance, run_id)
    }
    next_tick = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
    assert len(next_tick.run_requests) == 1 and not next_tick.skip_message

    # A new run of the task leaves the queue and starts, served by a new code server.
    with code_server_context(instance) as context:
        location = CatalogLocation(instance, context.create_request_context())
        next_run, next_worker = start_run(context, location)
        assert fail_runs_with_dead_workers(instance) == []
        for pid in [psutil.Process(next_worker).ppid(), next_worker]:
            kill(pid)
            wait_for(lambda pid=pid: not is_alive(pid), f"process {pid} to die")
        # What a local command can do before it starts a run, without waiting for the daemon.
        assert fail_runs_with_dead_workers(instance) == [next_run]
        assert location.status(next_run) == S.FAILURE


@pytest.fixture
def writer_task(use_catalog, tmp_path, monkeypatch):
    """A multiprocess task whose step runs a script appending to a marker file forever."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "writer.py").write_text(textwrap.dedent(WRITER))
    monkeypatch.setenv(ENV_SCRIPTS_DIR, str(scripts))
    marker = tmp_path / "marker"
    use_catalog(
        [
            {
                "name": TASK,
                "task_type": "manual_task",
                "max_retries": 0,
                "executor": "multiprocess",
                "config": {
                    "task_action": "run_script",
                    "script": "writer.py",
                    "args": [str(marker)],
                },
            }
        ]
    )
    return marker


def writer_processes(step_pid: int, marker) -> list[int]:
    """The script and its setsid child, once both write (the step has other children:
    Dagster's compute log capture)."""
    found = [
        child.pid
        for child in psutil.Process(step_pid).children(recursive=True)
        if "writer.py" in " ".join(child.cmdline())
    ]
    return found if len(found) == 2 and marker.read_text().count("\n") > 4 else []


def run_event_time(instance: dg.DagsterInstance, run_id: str, event_type: str) -> float:
    return next(
        entry.timestamp
        for entry in dagster_events(instance, run_id)
        if entry.dagster_event.event_type_value == event_type
    )


def last_write(marker) -> float:
    written = [float(line) for line in marker.read_text().split()]
    assert written
    return max(written)


@contextmanager
def writing_run(context, location: CatalogLocation, marker):
    """A run of the writer task whose script and its child write: its id and the pids of its
    run worker, step, script and script's child (all killed on the way out)."""
    run_id, worker = start_run(context, location)
    pids = [worker]
    try:
        pids += wait_for(lambda: step_pids(context.instance, run_id), "the step process")
        pids += wait_for(lambda: writer_processes(pids[1], marker), "the scripts to write")
        yield run_id, pids
    finally:
        for pid in pids:
            kill(pid)


def test_killing_the_run_worker_ends_its_step_and_script_processes(writer_task, grpc_instance):
    instance = grpc_instance
    with code_server_context(instance) as context:
        location = CatalogLocation(instance, context.create_request_context())
        with writing_run(context, location, writer_task) as (run_id, pids):
            worker = pids[0]
            code_server = psutil.Process(worker).ppid()
            pids.append(code_server)
            kill(code_server)
            kill(worker)

            # Nothing but the steps themselves can end them here: no run monitoring yet.
            wait_for(
                lambda: not any(is_alive(pid) for pid in pids),
                "the run's step and script processes to end",
            )
            monitor_until_failed(context, location, run_id)

    failed_at = run_event_time(instance, run_id, "PIPELINE_FAILURE")
    assert last_write(writer_task) <= failed_at, "a script wrote after its run had failed"


def test_killing_a_step_process_ends_its_scripts(writer_task, grpc_instance):
    instance = grpc_instance
    with code_server_context(instance) as context:
        location = CatalogLocation(instance, context.create_request_context())
        with writing_run(context, location, writer_task) as (run_id, pids):
            _, step, *scripts = pids
            kill(step)

            wait_for(lambda: not any(is_alive(pid) for pid in scripts), "the scripts to end")
            # The run worker sees its step die and fails the run.
            wait_for(lambda: location.status(run_id) == S.FAILURE, "the run to fail")

    failed_at = run_event_time(instance, run_id, "PIPELINE_FAILURE")
    assert last_write(writer_task) <= failed_at, "a script wrote after its run had failed"


def test_terminating_a_run_ends_its_scripts(writer_task, grpc_instance):
    instance = grpc_instance
    with code_server_context(instance) as context:
        location = CatalogLocation(instance, context.create_request_context())
        with writing_run(context, location, writer_task) as (run_id, pids):
            assert instance.run_launcher.terminate(run_id)

            wait_for(lambda: location.status(run_id) == S.CANCELED, "the run to be canceled")
            scripts = pids[2:]
            assert not any(is_alive(pid) for pid in scripts), "a script outlived its run"

    canceled_at = run_event_time(instance, run_id, "PIPELINE_CANCELED")
    assert last_write(writer_task) <= canceled_at, "a script wrote after its run was canceled"
