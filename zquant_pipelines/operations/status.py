"""A task's schedule status and next tick, computed as zquant did for its task list.

Status, first that applies:
- ``disabled``: the task's schedule or sensor is stopped (the stored state, or when
  nothing is stored the definition's default, i.e. ``enabled`` in tasks.yaml); a task
  without a trigger is disabled when ``enabled: false``;
- ``paused``: the task's pool holds its runs (``zquant pause``);
- ``running``: a run of the task is queued or in flight;
- ``success`` / ``failed``: how the latest run ended (a canceled run counts as failed:
  it did not do its work);
- ``pending``: the task has never run.

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


def schedule_status(enabled: bool, paused: bool, in_flight: bool, latest_status: str | None) -> str:
    """The status by the rules in the module docstring; ``latest_status`` is a Dagster
    run status name."""
    if not enabled:
        return DISABLED
    if paused:
        return PAUSED
    if in_flight:
        return RUNNING
    if latest_status is None:
        return PENDING
    group = STATUS_GROUPS[STATUS_BY_VALUE[latest_status]]
    if group == SUCCESS:
        return SUCCESS
    # A latest run still marked running without being in flight cannot be told apart from
    # one that never ends; it is reported as running too.
    return RUNNING if group == RUNNING else FAILED


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
    return TaskRow(
        name=task.name,
        task_type=task.task_type,
        trigger=trigger_text(task),
        schedule=trigger.instigator_name if trigger is not None else None,
        enabled=enabled,
        next_tick=next_tick(task, trigger, now),
        status=schedule_status(enabled, paused, runs.in_flight, runs.latest_status),
        latest_run_id=runs.latest_run_id,
        latest_run_status=runs.latest_status,
        description=task.description,
    )
