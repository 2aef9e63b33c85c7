"""The progress of a running run, as its steps record it in the run's tags.

A multi-day step (a ranged sync or factor computation) keeps one run tag,
``zquant/progress/<step key>``, rewritten after each day it writes (assets/progress.py
writes it). The run store holds tags, so the progress is read like any run field: the UI
shows it among the run's tags, GraphQL in ``runOrError``/``runsOrError { tags }``, and
``run_progress`` sums a run's steps into zquant's ExecutionResponse progress fields
(progress_percent, current_item, total_items, processed_items, estimated_end_time).

The tag also says what the step has written (``written_through``, per table), for a retry
of the step to go on from there. A re-execution copies its parent's tags, so each record
names the run that wrote it and a run's progress counts only its own records.
"""

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime

from zquant_pipelines.constants import TAG_PROGRESS_PREFIX
from zquant_pipelines.history.store import JsonRecord


def progress_tag(step_key: str) -> str:
    return f"{TAG_PROGRESS_PREFIX}{step_key}"


@dataclasses.dataclass(frozen=True)
class StepProgress(JsonRecord):
    """How far one step has come: ``done`` of its ``total`` items (open days of each table
    it writes) after writing ``table`` for ``day``; ``days`` is the step's range
    (``first..last``) and ``written_through`` the last day written per table."""

    step_key: str
    run_id: str
    table: str
    day: str
    done: int
    total: int
    rows: int
    elapsed_seconds: float
    estimated_end_time: datetime | None
    updated: datetime
    days: str
    written_through: dict[str, str]

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    def tag_value(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_tag(cls, step_key: str, value: str) -> "StepProgress | None":
        """The record in a progress tag's value; None for a value that is not one (a tag
        set by hand), which is then left out rather than failing the reader."""
        try:
            fields = json.loads(value)
            end = fields["estimated_end_time"]
            return cls(
                step_key=step_key,
                run_id=str(fields["run_id"]),
                table=str(fields["table"]),
                day=str(fields["day"]),
                done=int(fields["done"]),
                total=int(fields["total"]),
                rows=int(fields["rows"]),
                elapsed_seconds=float(fields["elapsed_seconds"]),
                estimated_end_time=datetime.fromisoformat(end) if end else None,
                updated=datetime.fromisoformat(fields["updated"]),
                days=str(fields["days"]),
                written_through={str(k): str(v) for k, v in fields["written_through"].items()},
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def step_progress(tags: Mapping[str, str]) -> dict[str, StepProgress]:
    """Every step's progress record in ``tags``, by step key (whichever run wrote it)."""
    records = {}
    for key, value in tags.items():
        if key.startswith(TAG_PROGRESS_PREFIX):
            step_key = key.removeprefix(TAG_PROGRESS_PREFIX)
            if (record := StepProgress.from_tag(step_key, value)) is not None:
                records[step_key] = record
    return records


@dataclasses.dataclass(frozen=True)
class RunProgress(JsonRecord):
    """A run's progress in zquant's ExecutionResponse fields, summed over the steps that
    have reported so far (a step that has not started yet adds nothing), and each step's
    record. ``current_item`` is the table and day most recently written."""

    run_id: str
    status: str
    progress_percent: float | None
    current_item: str | None
    total_items: int | None
    processed_items: int | None
    estimated_end_time: datetime | None
    steps: list[StepProgress]


def run_progress(run_id: str, status: str, tags: Mapping[str, str]) -> RunProgress:
    steps = sorted(
        (record for record in step_progress(tags).values() if record.run_id == run_id),
        key=lambda record: record.step_key,
    )
    if not steps:
        return RunProgress(run_id, status, None, None, None, None, None, [])
    total = sum(step.total for step in steps)
    done = sum(step.done for step in steps)
    latest = max(steps, key=lambda step: step.updated)
    ends = [
        step.estimated_end_time
        for step in steps
        if not step.finished and step.estimated_end_time is not None
    ]
    return RunProgress(
        run_id=run_id,
        status=status,
        progress_percent=round(100 * done / total, 1) if total else None,
        current_item=f"{latest.table} {latest.day}",
        total_items=total,
        processed_items=done,
        estimated_end_time=max(ends) if ends else None,
        steps=steps,
    )
