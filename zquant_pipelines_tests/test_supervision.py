"""How run supervision tells a dead run worker from a live one: real processes, real pids."""

import subprocess
import sys
import time

import dagster as dg
import psutil
import pytest
from dagster._core.events import DagsterEventType, EngineEventData
from dagster._core.launcher import WorkerStatus

from zquant_pipelines.supervision import (
    RUN_WORKER_HOST_TAG,
    STARTED_PROCESS_PREFIX,
    fail_runs_with_dead_workers,
    process_is_gone,
    run_worker_health,
    this_host,
)

# Starts a sleeping child, prints its pid, sleeps.
CHILD_THEN_SLEEP = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as test_instance:
        yield test_instance


def started_run(instance, pid: int, host: str) -> dg.DagsterRun:
    """A STARTED run whose worker reported ``pid`` as Dagster's run worker does, on ``host``."""

    @dg.op
    def noop():
        pass

    @dg.job
    def supervised():
        noop()

    run = instance.create_run_for_job(
        supervised, status=dg.DagsterRunStatus.STARTED, tags={RUN_WORKER_HOST_TAG: host}
    )
    instance.report_engine_event(
        f"{STARTED_PROCESS_PREFIX}{pid}).", run, EngineEventData.in_process(pid)
    )
    return run


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def report_step_worker(instance, run: dg.DagsterRun, pid: int) -> None:
    """The STEP_WORKER_STARTED event a multiprocess step reports, with its pid."""
    instance.report_dagster_event(
        dg.DagsterEvent(
            event_type_value="STEP_WORKER_STARTED",
            job_name=run.job_name,
            step_key="noop",
            message='Executing step "noop" in subprocess.',
            event_specific_data=EngineEventData(metadata={"pid": dg.MetadataValue.text(str(pid))}),
        ),
        run_id=run.run_id,
    )


def test_a_process_is_gone_when_dead_or_when_its_pid_was_reused(sleeper):
    reported_at = time.time()
    assert not process_is_gone(sleeper.pid, reported_at)
    # The same pid reported before the process existed: another process held it then.
    assert process_is_gone(sleeper.pid, reported_at - 3600)
    sleeper.kill()
    sleeper.wait()
    assert process_is_gone(sleeper.pid, reported_at)


def test_a_run_whose_worker_lives_is_running(instance, sleeper):
    run = started_run(instance, sleeper.pid, this_host())

    assert run_worker_health(instance, run).status == WorkerStatus.RUNNING
    assert fail_runs_with_dead_workers(instance) == []


def test_a_run_whose_worker_died_is_failed(instance, sleeper):
    run = started_run(instance, sleeper.pid, this_host())
    sleeper.kill()
    sleeper.wait()

    health = run_worker_health(instance, run)
    assert health.status == WorkerStatus.FAILED
    assert f"run worker (pid {sleeper.pid}) is gone" in health.msg
    assert fail_runs_with_dead_workers(instance) == [run.run_id]
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_worker_on_another_host_is_not_judged_from_here(instance, sleeper):
    sleeper.kill()
    sleeper.wait()
    run = started_run(instance, sleeper.pid, "another-host")

    health = run_worker_health(instance, run)
    assert health.status == WorkerStatus.RUNNING
    assert "on host another-host: cannot be checked from" in health.msg
    assert fail_runs_with_dead_workers(instance) == []


def test_steps_left_by_a_dead_worker_are_killed_before_the_run_fails(instance):
    """A step process that outlived its run worker (one the step watchdog could not end),
    with a child of its own: both are gone once the run is failed."""
    worker = subprocess.Popen([sys.executable, "-c", "pass"])
    worker.wait()
    step = subprocess.Popen(
        [sys.executable, "-c", CHILD_THEN_SLEEP], stdout=subprocess.PIPE, text=True
    )
    try:
        child = int(step.stdout.readline())
        run = started_run(instance, worker.pid, this_host())
        report_step_worker(instance, run, step.pid)

        assert fail_runs_with_dead_workers(instance) == [run.run_id]

        # Killed and reaped by then (the step is this test's child: its exit code is lost).
        assert all(gone(pid) for pid in (step.pid, child))
        (failure,) = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)
        assert f"killed its step processes [{step.pid}, {child}]" in failure.message
    finally:
        step.kill()
        step.wait()
