"""Run stores holding the known mix of ``synthetic.py``, one on SQLite, one on PostgreSQL.

Three runs with real event logs join them: two executions of real jobs (one failing, one
with a step retry) and a started run that is then failed from outside, as run monitoring
fails a run whose worker died.
"""

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from zquant_pipelines.constants import TAG_TASK
from zquant_pipelines_tests.support.synthetic_runs import (
    CRASH_MESSAGE,
    CRASHED_TASK,
    REAL_TASK,
    STORAGES,
    PlannedRun,
    failing_calendar_job,
    fresh_instance,
    planned_runs,
    retried_calendar_job,
    write_planned_run,
)


@dataclasses.dataclass(frozen=True)
class PopulatedStore:
    instance: dg.DagsterInstance
    planned: list[PlannedRun]
    failed_run_id: str
    retried_step_run_id: str
    crashed_run_id: str

    @property
    def unplanned_run_ids(self) -> tuple[str, ...]:
        return (self.failed_run_id, self.retried_step_run_id, self.crashed_run_id)


def populate(instance: dg.DagsterInstance) -> PopulatedStore:
    planned = planned_runs()
    for run in planned:
        write_planned_run(instance, run)
    tags = {TAG_TASK: REAL_TASK}
    failed = failing_calendar_job.execute_in_process(
        instance=instance, tags=tags, raise_on_error=False
    )
    retried = retried_calendar_job.execute_in_process(instance=instance, tags=tags)
    crashed = PlannedRun(
        run_id=str(uuid.uuid4()),
        job_name=f"{CRASHED_TASK}_job",
        task=CRASHED_TASK,
        status=dg.DagsterRunStatus.STARTED,
        created=datetime.now(UTC) - timedelta(hours=1),
    )
    write_planned_run(instance, crashed)
    instance.report_run_failed(instance.get_run_by_id(crashed.run_id), message=CRASH_MESSAGE)
    return PopulatedStore(
        instance=instance,
        planned=planned,
        failed_run_id=failed.run_id,
        retried_step_run_id=retried.run_id,
        crashed_run_id=crashed.run_id,
    )


@pytest.fixture(scope="session", params=STORAGES)
def store(request) -> PopulatedStore:
    """The populated store of each storage kind; tests only read it."""
    admin_url = request.getfixturevalue("pg_server_url") if request.param == "postgres" else ""
    with fresh_instance(request.param, admin_url) as instance:
        yield populate(instance)
