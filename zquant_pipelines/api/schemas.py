"""zquant v0.4's scheduler API as data: its request bodies (pydantic models, so /docs shows
them and a wrong field is refused naming it) and its response records (Task, Execution,
Stats), filled from what the operations layer reports.

How our things stand in for zquant's:
- ``task_id`` is the task's ``id`` in tasks.yaml (`zquant tasks list`'s id): stable for
  the task's life, as zquant's autoincrement id is (tasks/catalog.py, tasks/editor.py).
- ``execution_id`` is the Dagster run id (text, where zquant has a number).
- ``job_id`` is the task's Dagster job; the audit columns (created_by, created_time, ...)
  are null: tasks.yaml keeps no times or authors.
- Execution status: QUEUED/NOT_STARTED -> pending, STARTING/STARTED/CANCELING/... ->
  running, SUCCESS -> success, FAILURE -> failed (paused, with ``is_paused``, for a run that
  stopped at a day boundary for a pause request: history/pause.py), CANCELED -> terminated.
- The progress fields (progress_percent, current_item, total_items, processed_items,
  estimated_end_time, latest_execution_progress/current_item) are the run's progress record
  (history/progress.py: the days its multi-day steps wrote), null for a run without one.
"""

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from zquant_pipelines.constants import TASK_TYPES

TaskType = Literal[TASK_TYPES]
ScheduleStatus = Literal["disabled", "paused", "pending", "running", "success", "failed"]
ExecutionStatus = Literal[
    "pending", "running", "paused", "success", "failed", "completed", "terminated"
]
# Dagster run status -> zquant's execution status.
EXECUTION_STATUS = {
    "QUEUED": "pending",
    "NOT_STARTED": "pending",
    "STARTING": "running",
    "STARTED": "running",
    "MANAGED": "running",
    "SUSPENDED": "running",
    "CANCELING": "running",
    "SUCCESS": "success",
    "FAILURE": "failed",
    "CANCELED": "terminated",
}
TRIGGERED_MESSAGE = "任务已触发"  # zquant's reply to a trigger, kept for its web client


class Body(BaseModel):
    # zquant's bodies are refused with a 422 naming any field it does not know.
    model_config = ConfigDict(extra="forbid")


class Paging(Body):
    skip: int = Field(0, ge=0)
    limit: int = Field(100, ge=1, le=1000)
    order_by: str | None = None
    order: str | None = "desc"


class TaskCreate(Body):
    name: str
    task_type: TaskType
    cron_expression: str | None = None
    interval_seconds: int | None = None
    description: str | None = None
    config: dict[str, Any] | None = None
    max_retries: int = 3
    retry_interval: int = 60
    enabled: bool = True


class TaskQuery(Paging):
    task_type: TaskType | None = None
    enabled: bool | None = None


class TaskId(Body):
    task_id: int


class TaskChanges(Body):
    """The fields /tasks/update changes (null: kept); task_type and enabled are not among
    them, as in zquant."""

    name: str | None = None
    cron_expression: str | None = None
    interval_seconds: int | None = None
    description: str | None = None
    config: dict[str, Any] | None = None
    max_retries: int | None = None
    retry_interval: int | None = None


class TaskUpdate(TaskChanges):
    task_id: int


class ExecutionList(Paging):
    task_id: int


class ExecutionGet(Body):
    task_id: int
    execution_id: str


class ExecutionId(Body):
    execution_id: str


class WorkflowConfig(Body):
    config: dict[str, Any]


class WorkflowValidate(WorkflowConfig):
    task_id: int | None = None  # sent by zquant's client, unused (as in zquant)


class StatsQuery(Body):
    task_id: int | None = None


class Task(BaseModel):
    id: int
    name: str
    job_id: str
    task_type: TaskType
    cron_expression: str | None
    interval_seconds: int | None
    enabled: bool
    paused: bool
    description: str | None
    config: dict[str, Any]
    max_retries: int
    retry_interval: float
    created_by: str | None = None
    updated_by: str | None = None
    created_time: dt.datetime | None = None
    updated_time: dt.datetime | None = None
    latest_execution_time: dt.datetime | None
    latest_execution_status: ExecutionStatus | None
    latest_execution_current_item: str | None = None
    latest_execution_progress: float | None = None
    schedule_status: ScheduleStatus


class Execution(BaseModel):
    id: str
    task_id: int | None
    status: ExecutionStatus
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    duration_seconds: float | None
    result: dict[str, Any] | None
    error_message: str | None
    retry_count: int
    progress_percent: float | None = None
    current_item: str | None = None
    total_items: int | None = None
    processed_items: int | None = None
    estimated_end_time: dt.datetime | None = None
    is_paused: bool = False
    terminate_requested: bool
    created_by: str | None = None
    updated_by: str | None = None
    created_time: dt.datetime | None
    updated_time: dt.datetime | None = None


class TaskList(BaseModel):
    tasks: list[Task]
    total: int


class ExecutionListResponse(BaseModel):
    executions: list[Execution]
    total: int


class Stats(BaseModel):
    total_executions: int
    success_count: int
    failed_count: int
    running_count: int
    success_rate: float
    avg_duration_seconds: float | None
    latest_execution_time: dt.datetime | None


class Triggered(BaseModel):
    message: str


class Validation(BaseModel):
    valid: bool
    message: str


class Error(BaseModel):
    """zquant's error body (its HTTPException handler's)."""

    success: bool = False
    message: str
    data: None = None
    code: int
    error_code: str | None = None
    error_detail: Any = None
