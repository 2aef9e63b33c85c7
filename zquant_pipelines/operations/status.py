"""A task's schedule status and next tick, computed as zquant's task list computes them.

Status, first that applies (zquant v0.4's list route):
- ``disabled``: the task's schedule or sensor is stopped (the stored state, or when
  nothing is stored the definition's default, i.e. ``enabled`` in tasks.yaml); a task
  without a trigger is disabled when ``enabled: false``;
- ``paused``: the task's pool holds its runs (``zquant pause``);
- a task without a trigger (zquant: no scheduler job) shows how its latest run went:
  ``running`` (queued or in flight), ``success``, ``failed`` (a canceled run counts as
  failed: it did not do its work); never run: ``disabled``, nothing will start it;
- a trigger whose next tick is over ``OVERDUE_SECONDS`` late (the daemon is not ticking):
  ``disabled``;
- ``running`` while a run is queued or in flight, ``failed`` when the latest run failed;
- otherwise ``pending``: enabled and waiting for its next fire, also after a success (a
  running trigger always has a next fire, so zquant's "success with no next run" cannot
  arise for a task with a trigger).

Plain data in, plain data out: the back ends gather the facts, this module decides.
"""

import dataclasses
import datetime as dt

from zquant_pipelines.history.store import FAILED, RUNNING, STATUS_GROUPS, SUCCESS, JsonRecord
from zquant_pipelines.tasks.builders import schedule_name, sensor_name
from zquant_pipelines.tasks.catalog import TaskSpec
from zquant_pipelines.tasks.cron import next_fire_times

DISABLED = "disabled"
PAUSED = "paused"
PENDING = "pending"
# zquant's misfire grace: a job this late is reported disabled.
OVERDUE_SECONDS = 300
STATUS_BY_VALUE = {status.value: status for status in STATUS_GROUPS}


@dataclasses.dataclass(frozen=True)
class TriggerState:
    """A schedule's or sensor's current state; ``last_tick`` is a sensor's latest tick."""

    instigator_name: str
    running: bool
    last_tick: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class RunState:
    """A task's latest run (None when it never ran) and whether one is in flight."""

    latest_run_id: str | None = None
    latest_status: str | None = None
    in_flight: bool = False


@dataclasses.dataclass(frozen=True)
class TaskRow(JsonRecord):
    """One line of `zquant tasks list`."""

    name: str
    task_type: str
    trigger: str
    schedule: str | None
    enabled: bool
    next_tick: dt.datetime | None
    status: str
    latest_run_id: str | None
    latest_run_status: str | None
    description: str
    # zquant's sort keys: the task's id (tasks.yaml's ``id``, zquant's), paused, max_retries.
    id: int = 0
    paused: bool = False
    max_retries: int = 0


def instigator_name(task: TaskSpec) -> str | None:
    """The name of the task's schedule or sensor; None for a task without a trigger."""
    if task.trigger == "cron":
        return schedule_name(task.name)
    if task.trigger == "interval":
        return sensor_name(task.name)
    return None


def trigger_text(task: TaskSpec) -> str:
    if task.trigger == "cron":
        return f"{task.cron_expression} ({task.timezone})"
    if task.trigger == "interval":
        return f"every {task.interval_seconds} s"
    return "manual"


def schedule_status(
    enabled: bool,
    paused: bool,
    in_flight: bool,
    latest_status: str | None,
    has_trigger: bool = True,
    overdue: bool = False,
) -> str:
    """The status by the rules in the module docstring; ``latest_status`` is a Dagster
    run status name."""
    if not enabled:
        return DISABLED
    if paused:
        return PAUSED
    group = STATUS_GROUPS[STATUS_BY_VALUE[latest_status]] if latest_status else None
    # A latest run still marked running without being in flight cannot be told apart from
    # one that never ends; it is reported as running too.
    if in_flight or group == RUNNING:
        return RUNNING
    if not has_trigger:
        return {None: DISABLED, SUCCESS: SUCCESS}.get(group, FAILED)
    if overdue:
        return DISABLED
    return PENDING if group in (None, SUCCESS) else FAILED


def next_tick(task: TaskSpec, trigger: TriggerState | None, now: dt.datetime) -> dt.datetime | None:
    """When the trigger fires next: the cron's next fire time, or a running sensor's last
    tick plus its interval (None before its first tick: it fires on the daemon's next pass).
    None for a stopped trigger or a task without one."""
    if trigger is None or not trigger.running:
        return None
    if task.trigger == "cron":
        return next_fire_times(task.cron_expression, task.timezone, now)[0]
    if trigger.last_tick is None:
        return None
    return trigger.last_tick + dt.timedelta(seconds=task.interval_seconds)


def task_row(
    task: TaskSpec,
    trigger: TriggerState | None,
    paused: bool,
    runs: RunState,
    now: dt.datetime,
) -> TaskRow:
    enabled = trigger.running if trigger is not None else task.enabled
    tick = next_tick(task, trigger, now)
    overdue = tick is not None and (now - tick).total_seconds() > OVERDUE_SECONDS
    return TaskRow(
        name=task.name,
        task_type=task.task_type,
        trigger=trigger_text(task),
        schedule=trigger.instigator_name if trigger is not None else None,
        enabled=enabled,
        next_tick=tick,
        status=schedule_status(
            enabled, paused, runs.in_flight, runs.latest_status, trigger is not None, overdue
        ),
        latest_run_id=runs.latest_run_id,
        latest_run_status=runs.latest_status,
        description=task.description,
        id=task.id,
        paused=paused,
        max_retries=task.max_retries,
    )


# zquant's sort keys of its task list (created_time: tasks.yaml keeps no times, and an added
# task gets the next id after every id given, so it is id order) and ours: type, the next tick.
ROW_SORT_KEYS = {
    "id": lambda row: row.id,
    "name": lambda row: row.name,
    "task_type": lambda row: row.task_type,
    "enabled": lambda row: row.enabled,
    "paused": lambda row: row.paused,
    "max_retries": lambda row: row.max_retries,
    "created_time": lambda row: row.id,
    "type": lambda row: row.task_type,
}
NEXT_TICK_KEY = "next"


def sort_rows(rows: list[TaskRow], order_by: str | None, order: str | None) -> list[TaskRow]:
    """zquant's order: ``order_by`` one of constants.TASK_SORT_KEYS (anything else: id),
    descending unless ``order`` is "asc"; ties in id order. By next tick, tasks without one
    come last."""
    descending = order != "asc"
    if order_by == NEXT_TICK_KEY:
        timed = sorted(
            (row for row in rows if row.next_tick is not None),
            key=lambda row: (row.next_tick, row.id),
            reverse=descending,
        )
        return timed + [row for row in rows if row.next_tick is None]
    key = ROW_SORT_KEYS.get(order_by or "id", ROW_SORT_KEYS["id"])
    by_id = sorted(rows, key=lambda row: row.id)
    return sorted(by_id, key=key, reverse=descending)
