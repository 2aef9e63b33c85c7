"""A multi-day step's progress as it goes, and where a retry of it goes on from.

``StepProgressReporter`` is the progress callback the asset and task-action steps hand to
the sync and factor functions: each day written becomes a log line (day k of n, the day,
rows, elapsed, time left) and the step's progress tag (history/progress.py), so the UI,
GraphQL and `zquant history --run` show the step's progress while the run runs. The tag
also records the last day written per table; ``written_through`` reads it back from an
earlier attempt of the same step over the same days (a step retry in this run, or the
parent of a re-execution from failure), so days already written are not fetched again.

After each day the reporter also looks for a pause request of the run (history/pause.py):
with one, and days still to write, it records the run paused and ends the step with
``RunPaused`` once the day is written (each day is its own transaction), so a resume, a
re-execution from failure, goes on after that day.
"""

import datetime as dt
import time
from collections.abc import Sequence

import dagster as dg

# Private module, but it is where Dagster names the tags of a re-execution (from failure).
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, RESUME_RETRY_TAG
from sqlalchemy.exc import SQLAlchemyError

from zquant_pipelines.history.pause import pause_requested, record_paused
from zquant_pipelines.history.progress import StepProgress, progress_tag
from zquant_pipelines.sync.progress import DayProgress, remaining_seconds


class RunPaused(dg.Failure):
    """The step stopped at a day boundary because its run was asked to pause; not a step
    failure to retry (``allow_retries=False``: the task's RetryPolicy leaves it)."""

    def __init__(self, step_key: str, table: str, day: dt.date):
        super().__init__(
            description=(
                f"paused on request after {table} {day:%Y-%m-%d} was written; resume with"
                " `zquant retry RUN --from-failure` (the days written are not fetched again)"
            ),
            metadata={"step": step_key, "table": table, "last_day_written": f"{day:%Y-%m-%d}"},
            allow_retries=False,
        )


def day_range(days: Sequence[dt.date]) -> str:
    return f"{min(days):%Y-%m-%d}..{max(days):%Y-%m-%d}" if days else ""


class StepProgressReporter:
    """Reports a step that writes ``tables`` one after the other over the same ``days``
    (so each table has the same open days): the step's items are those days per table."""

    def __init__(
        self,
        context: dg.OpExecutionContext | dg.AssetExecutionContext,
        tables: Sequence[str],
        days: Sequence[dt.date],
    ):
        self.context = context
        self.run_id = context.run.run_id
        self.step_key = context.get_step_execution_context().step.key
        self.tag = progress_tag(self.step_key)
        self.tables = list(tables)
        self.days = day_range(days)
        self.written = self.earlier_writes()
        self.processed = 0
        self.started = time.monotonic()

    def earlier_writes(self) -> dict[str, str]:
        """The last day per table that earlier attempts of this step wrote over these days."""
        instance = self.context.instance
        run = instance.get_run_by_id(self.run_id)
        records = []
        parent_run_id = run.tags.get(PARENT_RUN_ID_TAG)
        if run.tags.get(RESUME_RETRY_TAG) == "true" and parent_run_id:
            parent = instance.get_run_by_id(parent_run_id)
            if parent is not None and self.tag in parent.tags:
                records.append(StepProgress.from_tag(self.step_key, parent.tags[self.tag]))
        own = StepProgress.from_tag(self.step_key, run.tags.get(self.tag, ""))
        # A re-execution starts with a copy of its parent's tags: only this run's own record
        # is an earlier attempt of the step (a step retry); a copy counts only as above.
        if own is not None and own.run_id == self.run_id:
            records.append(own)
        written: dict[str, str] = {}
        for record in records:
            if record is not None and record.days == self.days:
                written |= record.written_through
        return written

    def written_through(self, table: str) -> dt.date | None:
        """The last day of ``table`` an earlier attempt wrote, for the sync to go on after."""
        if table not in self.written:
            return None
        day = dt.date.fromisoformat(self.written[table])
        self.context.log.info(
            f"{table}: the open days through {day:%Y-%m-%d} were written by an earlier attempt"
            " of this step; they are not fetched again"
        )
        return day

    def __call__(self, progress: DayProgress) -> None:
        self.context.log.info(progress.describe())
        self.processed += 1
        self.written[progress.table] = f"{progress.day:%Y-%m-%d}"
        total = progress.total * len(self.tables)
        done = self.tables.index(progress.table) * progress.total + progress.done
        elapsed = time.monotonic() - self.started
        left = remaining_seconds(elapsed, self.processed, total - done)
        now = dt.datetime.now(dt.UTC)
        record = StepProgress(
            step_key=self.step_key,
            run_id=self.run_id,
            table=progress.table,
            day=f"{progress.day:%Y-%m-%d}",
            done=done,
            total=total,
            rows=progress.rows,
            elapsed_seconds=round(elapsed, 3),
            estimated_end_time=None if left is None else now + dt.timedelta(seconds=left),
            updated=now,
            days=self.days,
            written_through=dict(self.written),
        )
        try:
            self.context.instance.add_run_tags(self.run_id, {self.tag: record.tag_value()})
        except SQLAlchemyError as error:
            # The run store busy past its timeout: the figures wait for the next day's update
            # (a retry refetches at most the days since); the data step goes on.
            self.context.log.warning(f"progress tag {self.tag} not updated: {error}")
        if done < total and pause_requested(self.context.instance, self.run_id):
            record_paused(self.context.instance, self.run_id)
            raise RunPaused(self.step_key, progress.table, progress.day)
