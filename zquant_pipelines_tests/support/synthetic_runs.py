"""A known mix of synthetic task runs, how to write them, and throwaway stores to hold them.

Runs are written through the run storage's own API (``add_historical_run`` with the
creation time, then ``handle_run_event`` with each status event at its time): how Dagster
records runs, minus executing them, so it is fast and the times and statuses are exact.
Durations are whole or half seconds, exact in binary, so sums of them are exact too.
"""

import dataclasses
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.storage.tags import RETRY_NUMBER_TAG

from zquant_pipelines.constants import TAG_TASK, TAG_TASK_TYPE
from zquant_pipelines_tests.support.services import create_pg_database, drop_pg_database

S = dg.DagsterRunStatus
STORAGES = ("sqlite", "postgres")
FIRST_CREATED = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
QUEUE_WAIT = timedelta(seconds=10)

# Durations 1..20 s, all successful: nearest-rank p95 is the 19th smallest (ceil(0.95*20)).
KNOWN_ANSWER_TASK = "calculate_factor"
# Every status, durations in half seconds (exact in binary, so sums are exact too).
MIXED_TASK = "sync_daily_data"
# Nothing finished: rate, average and p95 are undefined.
UNFINISHED_TASK = "sync_stock_list"
# Real executions of the jobs below, with event logs.
REAL_TASK = "sync_trading_calendar"
# A run whose worker died, failed from outside by run monitoring: no step failed.
CRASHED_TASK = "run_script"
CRASH_MESSAGE = "Run worker for run_script exited unexpectedly.\nSee the run monitoring logs."
NEVER_RAN_TASK = "sync_daily_basic_data"
TASKS = (KNOWN_ANSWER_TASK, CRASHED_TASK, MIXED_TASK, REAL_TASK, UNFINISHED_TASK)

FAILING_STEP = "fetch_calendar"
FAILURE_MESSAGE = "tushare said no"
RETRIED_RUN_NUMBER = 2
MIXED_CYCLE = (
    S.SUCCESS,
    S.SUCCESS,
    S.FAILURE,
    S.SUCCESS,
    S.CANCELED,
    S.STARTED,
    S.SUCCESS,
    S.QUEUED,
    S.CANCELING,
    S.STARTING,
    S.NOT_STARTED,
    S.SUCCESS,
)


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """A run to write: status reached, times, and whether it ever started."""

    run_id: str
    job_name: str
    task: str | None
    status: dg.DagsterRunStatus
    created: datetime
    duration: float | None = None
    started: bool = True
    retry_number: int = 0


def planned_runs() -> list[PlannedRun]:
    """The synthetic runs, in creation order (one per hour, tasks interleaved)."""
    shapes: list[tuple[str | None, dg.DagsterRunStatus, float | None, bool, int]] = []
    for index in range(20):
        shapes.append((KNOWN_ANSWER_TASK, S.SUCCESS, float((index * 7) % 20 + 1), True, 0))
    for index in range(48):
        shapes.append((MIXED_TASK, MIXED_CYCLE[index % 12], (index * 37) % 90 + 0.5, True, 0))
    # Failed at launch and canceled while queued: finished, but without a duration.
    shapes.append((MIXED_TASK, S.FAILURE, None, False, 0))
    shapes.append((MIXED_TASK, S.CANCELED, None, False, 0))
    shapes.append((MIXED_TASK, S.SUCCESS, 12.0, True, RETRIED_RUN_NUMBER))
    for status in (S.QUEUED, S.STARTED, S.STARTING, S.QUEUED):
        shapes.append((UNFINISHED_TASK, status, None, True, 0))
    for status in (S.SUCCESS, S.FAILURE, S.SUCCESS):
        shapes.append((None, status, 3.0, True, 0))
    # Spread the tasks over the hours so that a `since` cut leaves some of each.
    shapes = shapes[0::3] + shapes[1::3] + shapes[2::3]
    planned = [
        PlannedRun(
            run_id=str(uuid.uuid4()),
            job_name=f"{task}_job" if task else "adhoc_job",
            task=task,
            status=status,
            created=FIRST_CREATED + timedelta(hours=hour),
            duration=duration,
            started=started,
            retry_number=retry_number,
        )
        for hour, (task, status, duration, started, retry_number) in enumerate(shapes)
    ]
    # The tag, not the job, makes a task run: a run of one task's job tagged with another
    # task counts for the other, and a run of a task's job without the tag for none.
    last = planned[-1].created
    planned.append(
        PlannedRun(
            run_id=str(uuid.uuid4()),
            job_name=f"{KNOWN_ANSWER_TASK}_job",
            task=MIXED_TASK,
            status=S.SUCCESS,
            created=last + timedelta(hours=1),
            duration=45.0,
        )
    )
    planned.append(
        PlannedRun(
            run_id=str(uuid.uuid4()),
            job_name=f"{KNOWN_ANSWER_TASK}_job",
            task=None,
            status=S.FAILURE,
            created=last + timedelta(hours=2),
            duration=2.0,
        )
    )
    return planned


def synthetic_dagster_run(
    job_name: str,
    run_id: str,
    task: str | None,
    status: dg.DagsterRunStatus,
    retry_number: int = 0,
) -> dg.DagsterRun:
    """A run as the daemon would launch it: tagged, and with the job origin a queued run needs."""
    tags = {TAG_TASK_TYPE: "common_task"}
    if task:
        tags[TAG_TASK] = task
    if retry_number:
        tags[RETRY_NUMBER_TAG] = str(retry_number)
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=RegisteredCodeLocationOrigin("zquant_pipelines"),
            repository_name="__repository__",
        ),
        job_name=job_name,
    )
    return dg.DagsterRun(
        job_name=job_name, run_id=run_id, tags=tags, status=status, remote_job_origin=origin
    )


def write_planned_run(instance: dg.DagsterInstance, planned: PlannedRun) -> None:
    """Add the run at its creation time, then move it through its status events."""
    storage = instance.run_storage
    waiting = planned.status in (S.QUEUED, S.NOT_STARTED, S.STARTING)
    run = synthetic_dagster_run(
        planned.job_name,
        planned.run_id,
        planned.task,
        planned.status if waiting else S.QUEUED,
        planned.retry_number,
    )
    storage.add_historical_run(run, planned.created)
    if waiting:
        return

    def record(event_type: dg.DagsterEventType, at: datetime) -> None:
        event = dg.DagsterEvent(event_type_value=event_type.value, job_name=planned.job_name)
        storage.handle_run_event(planned.run_id, event, update_timestamp=at)

    start = planned.created + QUEUE_WAIT
    if planned.started:
        record(dg.DagsterEventType.RUN_START, start)
    end = start + timedelta(seconds=planned.duration or 0)
    terminal_events = {
        S.SUCCESS: dg.DagsterEventType.RUN_SUCCESS,
        S.FAILURE: dg.DagsterEventType.RUN_FAILURE,
        S.CANCELED: dg.DagsterEventType.RUN_CANCELED,
        S.CANCELING: dg.DagsterEventType.RUN_CANCELING,
    }
    if planned.status in terminal_events:
        record(terminal_events[planned.status], end)


@dg.op
def fetch_calendar():
    raise ValueError(FAILURE_MESSAGE)


@dg.op(retry_policy=dg.RetryPolicy(max_retries=1))
def fetch_calendar_after_a_retry(context: dg.OpExecutionContext):
    if context.retry_number == 0:
        raise ValueError("transient")


@dg.job
def failing_calendar_job():
    fetch_calendar()


@dg.job
def retried_calendar_job():
    fetch_calendar_after_a_retry()


@contextmanager
def fresh_instance(storage: str, pg_admin_url: str) -> Iterator[dg.DagsterInstance]:
    """An empty instance on SQLite, or on a new PostgreSQL database dropped afterwards."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as temp_dir:
        if storage == "sqlite":
            with dg.instance_for_test(temp_dir=temp_dir, set_dagster_home=False) as instance:
                yield instance
            return
        url = create_pg_database(pg_admin_url, f"zq_{storage}")
        try:
            overrides = {"storage": {"postgres": {"postgres_url": url}}}
            with dg.instance_for_test(
                overrides=overrides, temp_dir=temp_dir, set_dagster_home=False
            ) as instance:
                yield instance
        finally:
            drop_pg_database(pg_admin_url, url)
