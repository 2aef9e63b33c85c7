"""How run supervision tells a dead run worker from a live one: real processes, real pids."""

import subprocess
import sys
import time

import dagster as dg
import pytest
from dagster._core.events import EngineEventData
from dagster._core.launcher import WorkerStatus

from zquant_pipelines.supervision import (
    RUN_WORKER_HOST_TAG,
    STARTED_PROCESS_PREFIX,
    fail_runs_with_dead_workers,
    process_is_gone,
    run_worker_health,
    this_host,
)


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
