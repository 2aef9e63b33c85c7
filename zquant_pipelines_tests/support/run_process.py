"""A task run executing in a process of its own, for tests that kill that process mid-run.

``python -m zquant_pipelines_tests.support.run_process INSTANCE_REF RUN_ID TASK`` executes
``sleeping_job`` as run RUN_ID, tagged ``zquant/task=TASK``, against the instance that the
serialized ``InstanceRef`` names; its one op sleeps until the process is killed, so the run
stays STARTED, as a run does whose worker died. ``start_run_process`` starts it and waits
until the run has started.
"""

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import deserialize_value, serialize_value

from zquant_pipelines.constants import TAG_TASK
from zquant_pipelines_tests.support.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
# Long enough that only a kill ends the run within a test.
SLEEP_SECONDS = 600
# A fresh Python process importing Dagster takes seconds on a busy two-core machine.
START_DEADLINE_SECONDS = 120
POLL_SECONDS = 0.2


@dg.op
def sleep_until_killed() -> None:
    time.sleep(SLEEP_SECONDS)


@dg.job
def sleeping_job():
    sleep_until_killed()


def start_run_process(instance: dg.DagsterInstance, run_id: str, task: str) -> subprocess.Popen:
    """The process executing run ``run_id`` of ``task``, once the run is STARTED."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            __name__,
            serialize_value(instance.get_ref()),
            run_id,
            task,
        ],
        cwd=REPO_ROOT,
    )

    def started() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the run process exited with {process.returncode}")
        run = instance.get_run_by_id(run_id)
        return run is not None and run.status == dg.DagsterRunStatus.STARTED

    try:
        wait_until(started, START_DEADLINE_SECONDS, f"run {run_id} to start", POLL_SECONDS)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process


def main(instance_ref: str, run_id: str, task: str) -> None:
    with dg.DagsterInstance.from_ref(deserialize_value(instance_ref, InstanceRef)) as instance:
        sleeping_job.execute_in_process(instance=instance, run_id=run_id, tags={TAG_TASK: task})


if __name__ == "__main__":
    main(*sys.argv[1:])
