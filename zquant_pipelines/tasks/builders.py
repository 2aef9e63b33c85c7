"""Catalog -> Dagster: a job per task, a schedule per cron task, a sensor per interval task,
and for a workflow one job whose graph is its members wired by their dependencies.

- Runs carry ``zquant/task`` and ``zquant/task_type``; dagster.yaml limits runs per
  ``zquant/task`` value to one, so a second run waits in the queue, and every trigger skips
  its tick (with the reason) while a run of the task is queued or in flight.
- Each task's ops sit in the pool ``zquant_task_<name>``; with run-granularity pools a
  pool limit of 0 holds every run of the task in the queue: that is pause (see control.py).
- max_retries / retry_interval become the op's RetryPolicy, so every attempt is a step
  attempt in the run's logs and the run fails after the last one. An error no retry can fix
  (tushare refused the token or the API, an invalid setting or run config) fails the step
  at once: a bad token would otherwise hold the task for hours of back-off.
"""

import dagster as dg

# Private module, but it is where Dagster names the tags it reads.
from dagster._core.storage.tags import PRIORITY_TAG

from zquant_pipelines.constants import TAG_TASK, TAG_TASK_TYPE
from zquant_pipelines.executors import default_executor_name, executor_definition
from zquant_pipelines.resources.tushare_client import (
    TusharePermissionError,
    TushareSettingsError,
    TushareTokenError,
)
from zquant_pipelines.tasks.action_params import ActionParamsError, parse_action_params
from zquant_pipelines.tasks.actions import ACTIONS
from zquant_pipelines.tasks.catalog import Catalog, TaskSpec

ACTION_RESOURCES = {"market_source", "warehouse"}
# Statuses of a run that is asked for or running: a trigger skips while one exists.
IN_FLIGHT_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# Errors the same attempt would meet again: the step fails without its RetryPolicy's retries.
NOT_RETRYABLE = (TushareTokenError, TusharePermissionError, TushareSettingsError)


def job_name(task_name: str) -> str:
    return f"{task_name}_job"


def schedule_name(task_name: str) -> str:
    return f"{task_name}_schedule"


def sensor_name(task_name: str) -> str:
    return f"{task_name}_sensor"


def pool_name(task_name: str) -> str:
    return f"zquant_task_{task_name}"


def task_tags(task: TaskSpec) -> dict[str, str]:
    return {**(task.tags or {}), TAG_TASK: task.name, TAG_TASK_TYPE: task.task_type}


def retry_policy(task: TaskSpec) -> dg.RetryPolicy | None:
    if not task.max_retries:
        return None
    backoff = dg.Backoff.EXPONENTIAL if task.retry_backoff == "exponential" else None
    jitter = dg.Jitter.PLUS_MINUS if task.retry_backoff == "exponential" else None
    return dg.RetryPolicy(
        max_retries=task.max_retries, delay=task.retry_interval, backoff=backoff, jitter=jitter
    )


def action_of(task: TaskSpec) -> tuple[str, dict]:
    params = dict(task.config)
    return params.pop("task_action"), params


def failed_steps(context: dg.OpExecutionContext) -> list[str]:
    """Steps of this run that failed for good (after their retries)."""
    records = context.instance.get_records_for_run(
        context.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
    ).records
    return sorted({record.event_log_entry.step_key for record in records})


def build_action_op(
    op_name: str,
    task: TaskSpec,
    pool: str,
    upstream: list[str] = (),
    stop_after_failure: bool = False,
    priority: int | None = None,
) -> dg.OpDefinition:
    """The op that runs ``task``'s action; its params are the op config (editable per run,
    checked again when the op runs)."""
    action_name, _ = action_of(task)
    action = ACTIONS[action_name]

    @dg.op(
        name=op_name,
        description=task.description or f"{action_name} ({task.name})",
        ins={f"after_{name}": dg.In(dg.Nothing) for name in upstream},
        out=dg.Out(dg.Nothing, is_required=False),
        config_schema=dg.Permissive(),
        required_resource_keys=ACTION_RESOURCES,
        retry_policy=retry_policy(task),
        pool=pool,
        tags={
            **({PRIORITY_TAG: str(priority)} if priority is not None else {}),
            TAG_TASK: task.name,
        },
    )
    def action_op(context: dg.OpExecutionContext):
        if stop_after_failure:
            failed = failed_steps(context)
            if failed:
                context.log.warning(
                    f"{task.name} skipped: member(s) {', '.join(failed)} failed and the workflow's"
                    " on_failure is 'stop'"
                )
                return
        try:
            params = parse_action_params(
                action_name, context.op_config, f"ops.{context.op_handle.name}.config"
            )
        except ActionParamsError as error:
            # Run config edited in the launchpad, which the catalog never checked; retrying
            # cannot fix it.
            raise dg.Failure(
                f"invalid run config for task {task.name}:\n{error}", allow_retries=False
            ) from None
        try:
            metadata = action(context, params)
        except NOT_RETRYABLE as error:
            raise dg.Failure(
                f"{task.name} failed, not retried ({type(error).__name__}): {error}",
                allow_retries=False,
            ) from error
        yield dg.Output(None, metadata={k: v for k, v in (metadata or {}).items() if v is not None})

    return action_op


def executor_for(task: TaskSpec, max_concurrent: int | None = None) -> dg.ExecutorDefinition:
    """The task's executor, else the deployment's default. A workflow that must run one member
    at a time (serial, or max_parallel 1) stays on multiprocess when the default is Celery,
    which has no such limit (the catalog refuses an explicit ``executor: celery`` there)."""
    name = task.executor or default_executor_name()
    if name == "celery" and max_concurrent == 1:
        name = "multiprocess"
    return executor_definition(name, max_concurrent)


def build_common_job(task: TaskSpec) -> dg.JobDefinition:
    _, params = action_of(task)
    op_def = build_action_op(task.name, task, pool_name(task.name))
    graph = dg.GraphDefinition(name=job_name(task.name), node_defs=[op_def])
    return graph.to_job(
        description=task.description,
        tags=task_tags(task),
        config={"ops": {task.name: {"config": params}}},
        executor_def=executor_for(task),
    )


def build_workflow_job(catalog: Catalog, task: TaskSpec) -> dg.JobDefinition:
    """Members in topological order (ties in catalog order). Serial runs one at a time in that
    order (step priorities); parallel runs every member whose dependencies are done.

    on_failure 'continue': Dagster skips what is downstream of a failure and runs the rest.
    on_failure 'stop': a member that has not started yet skips itself once any member failed.
    Either way the run fails when a member failed.
    """
    workflow = catalog.workflow(task.name)
    members = workflow.members
    serial = workflow.workflow_type == "serial"
    stop = workflow.on_failure == "stop"
    op_defs = {}
    for position, member in enumerate(members):
        # Op names are unique per code location: the workflow's op for a member gets the
        # workflow's name in front, and the graph node keeps the member's name (alias).
        op_defs[member.name] = build_action_op(
            f"{task.name}__{member.name}",
            catalog.tasks[member.name],
            pool_name(task.name),
            upstream=list(member.dependencies),
            stop_after_failure=stop,
            priority=len(members) - position if serial else None,
        )

    def compose():
        outputs = {}
        for member in members:
            inputs = {f"after_{dep}": outputs[dep] for dep in member.dependencies}
            outputs[member.name] = op_defs[member.name].alias(member.name)(**inputs)

    graph = dg.graph(name=job_name(task.name), description=task.description)(compose)
    config = {"ops": {m.name: {"config": action_of(catalog.tasks[m.name])[1]} for m in members}}
    return graph.to_job(
        description=task.description,
        tags=task_tags(task),
        config=config,
        executor_def=executor_for(task, 1 if serial else workflow.max_parallel),
    )


def in_flight_reason(instance: dg.DagsterInstance, task_name: str) -> str | None:
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={TAG_TASK: task_name}, statuses=IN_FLIGHT_STATUSES), limit=1
    )
    if not records:
        return None
    run = records[0].dagster_run
    return f"run {run.run_id} of task {task_name} is still {run.status.value}: one run at a time"


def request_unless_in_flight(
    instance: dg.DagsterInstance, task_name: str
) -> dg.RunRequest | dg.SkipReason:
    """A tick's answer: a run, or a skip naming the run of the task still queued/in flight."""
    reason = in_flight_reason(instance, task_name)
    return dg.SkipReason(reason) if reason else dg.RunRequest()


def build_schedule(task: TaskSpec, job: dg.JobDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=schedule_name(task.name),
        job=job,
        cron_schedule=task.cron_expression,
        execution_timezone=task.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING
        if task.enabled
        else dg.DefaultScheduleStatus.STOPPED,
        description=f"{task.cron_expression} ({task.timezone}): {task.description or task.name}",
    )
    def task_schedule(context: dg.ScheduleEvaluationContext):
        return request_unless_in_flight(context.instance, task.name)

    return task_schedule


def build_sensor(task: TaskSpec, job: dg.JobDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        name=sensor_name(task.name),
        job=job,
        minimum_interval_seconds=task.interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING
        if task.enabled
        else dg.DefaultSensorStatus.STOPPED,
        description=f"every {task.interval_seconds} s: {task.description or task.name}",
    )
    def task_sensor(context: dg.SensorEvaluationContext):
        return request_unless_in_flight(context.instance, task.name)

    return task_sensor


def build_task_definitions(catalog: Catalog) -> dg.Definitions:
    jobs, schedules, sensors = [], [], []
    for task in catalog.tasks.values():
        if task.task_type == "workflow":
            job = build_workflow_job(catalog, task)
        else:
            job = build_common_job(task)
        jobs.append(job)
        if task.cron_expression:
            schedules.append(build_schedule(task, job))
        elif task.interval_seconds:
            sensors.append(build_sensor(task, job))
    return dg.Definitions(jobs=jobs, schedules=schedules, sensors=sensors)
