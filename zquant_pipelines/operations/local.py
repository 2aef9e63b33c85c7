"""The operations against the Dagster instance in DAGSTER_HOME, without a webserver.

Reads (trigger states, runs, history, stats, pause state) go straight to the instance's
storage and need no code. Writes that need the code location (queueing a run, starting or
stopping a schedule or sensor) load it from workspace.yaml the way the webserver and
`dagster job launch` / `dagster schedule start` do: a code server process, opened on first
use and kept until ``close()``. A queued run waits for the daemon (`make dev` runs one).
"""

import contextlib
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

# Private modules, but they are where Dagster's own CLI gets the workspace, the selectors
# and the stored-state statuses it uses for `dagster job launch` and `dagster schedule`.
from dagster._core.definitions.selector import InstigatorSelector, JobSubsetSelector
from dagster._core.scheduler.instigation import InstigatorStatus, SensorInstigatorData
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from zquant_pipelines.constants import TAG_TASK
from zquant_pipelines.demo import QUIET_RUN_CONFIG
from zquant_pipelines.history.runs import (
    DEFAULT_PAGE_SIZE,
    HistoryPage,
    RunDetail,
    RunNotFoundError,
    error_summary,
    run_detail,
    task_history,
)
from zquant_pipelines.history.stats import StatsReport, task_stats
from zquant_pipelines.history.store import NotSqlRunStorageError, utc_from_timestamp
from zquant_pipelines.operations.base import (
    REPOSITORY_NAME,
    WORKSPACE_FILE,
    OperationFailed,
    Operations,
    RunOutcome,
    UsageProblem,
    location_name,
)
from zquant_pipelines.operations.status import RunState, TriggerState, instigator_name
from zquant_pipelines.resources.definitions import build_resource_definitions
from zquant_pipelines.tasks import control
from zquant_pipelines.tasks.builders import in_flight_reason, job_name
from zquant_pipelines.tasks.catalog import TaskSpec
from zquant_pipelines.tasks.definitions import build_catalog_definitions


def stored_trigger_running(status: InstigatorStatus | None, enabled: bool) -> bool:
    """Whether a trigger runs, as Dagster decides it: a stored RUNNING or STOPPED wins;
    with nothing stored (or only a DECLARED_IN_CODE marker) the default from the
    definition holds, which is the task's ``enabled``."""
    if status is None or status == InstigatorStatus.DECLARED_IN_CODE:
        return enabled
    return status == InstigatorStatus.RUNNING


class LocalOperations(Operations):
    """Operations on ``instance``. ``workspace`` lets callers share one loaded workspace
    (it is then theirs to close); otherwise one is loaded from ``workspace_file`` when
    first needed."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        workspace_file: Path = WORKSPACE_FILE,
        workspace: WorkspaceProcessContext | None = None,
    ):
        self.instance = instance
        self.workspace_file = workspace_file
        self.location = location_name(workspace_file)
        self._workspace = workspace
        self._owned = contextlib.ExitStack()

    def close(self) -> None:
        self._owned.close()

    # --- reads -------------------------------------------------------------------------

    def trigger_states(self, tasks: Sequence[TaskSpec]) -> dict[str, TriggerState]:
        stored = {state.selector_id: state for state in self.instance.all_instigator_state()}
        states = {}
        for task in tasks:
            name = instigator_name(task)
            if name is None:
                continue
            selector = InstigatorSelector(
                location_name=self.location, repository_name=REPOSITORY_NAME, name=name
            )
            state = stored.get(selector.get_id())
            data = state.instigator_data if state is not None else None
            last_tick = data.last_tick_timestamp if isinstance(data, SensorInstigatorData) else None
            states[task.name] = TriggerState(
                instigator_name=name,
                running=stored_trigger_running(state.status if state else None, task.enabled),
                last_tick=utc_from_timestamp(last_tick),
            )
        return states

    def paused_tasks(self) -> set[str]:
        return control.paused_tasks(self.instance)

    def run_states(self, task_names: Sequence[str]) -> dict[str, RunState]:
        states = {}
        for name in task_names:
            latest = self.instance.get_run_records(
                filters=dg.RunsFilter(tags={TAG_TASK: name}), limit=1
            )
            run = latest[0].dagster_run if latest else None
            states[name] = RunState(
                latest_run_id=run.run_id if run else None,
                latest_status=run.status.value if run else None,
                in_flight=run is not None and in_flight_reason(self.instance, name) is not None,
            )
        return states

    def history(
        self,
        task: str,
        statuses: Sequence[str] | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> HistoryPage:
        try:
            return task_history(self.instance, task, statuses, limit, cursor)
        except NotSqlRunStorageError as error:
            raise OperationFailed(str(error)) from None
        except ValueError as error:
            raise UsageProblem(str(error)) from None

    def run_detail(self, run_id: str) -> RunDetail:
        try:
            return run_detail(self.instance, run_id)
        except RunNotFoundError as error:
            raise OperationFailed(
                f"{error}; list a task's runs with `zquant history NAME`"
            ) from None

    def stats(self, task: str | None = None, since: dt.datetime | None = None) -> StatsReport:
        try:
            return task_stats(self.instance, task, since)
        except NotSqlRunStorageError as error:
            raise OperationFailed(str(error)) from None
        except ValueError as error:
            raise UsageProblem(str(error)) from None

    # --- writes ------------------------------------------------------------------------

    def submit_run(self, task: TaskSpec, config: dict) -> str:
        context, location, repository = self._repository()
        remote_job = location.get_job(
            JobSubsetSelector(
                location_name=location.name,
                repository_name=repository.name,
                job_name=job_name(task.name),
                op_selection=None,
            )
        )
        plan = location.get_execution_plan(
            remote_job, config, step_keys_to_execute=None, known_state=None, instance=self.instance
        ).execution_plan_snapshot
        # create_run stores the tags it is given: the job's own (zquant/task and
        # zquant/task_type) are passed, as Dagster's launch paths do.
        run = self.instance.create_run(
            job_name=remote_job.name,
            run_id=None,
            run_config=config,
            resolved_op_selection=None,
            step_keys_to_execute=plan.step_keys_to_execute,
            status=None,
            op_selection=None,
            root_run_id=None,
            parent_run_id=None,
            tags=dict(remote_job.tags),
            job_snapshot=remote_job.job_snapshot,
            execution_plan_snapshot=plan,
            parent_job_snapshot=remote_job.parent_job_snapshot,
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
            asset_selection=None,
            asset_check_selection=None,
            asset_graph=repository.asset_graph,
        )
        return self.instance.submit_run(run.run_id, context).run_id

    def execute_run(self, task: TaskSpec, config: dict) -> RunOutcome:
        # Built fresh from the environment of this call (tasks file, warehouse URL), with
        # only what a task job needs: the catalog's jobs and the resources.
        definitions = dg.Definitions.merge(
            build_resource_definitions(), build_catalog_definitions()
        )
        job = definitions.resolve_job_def(job_name(task.name))
        result = job.execute_in_process(
            run_config={**config, **QUIET_RUN_CONFIG}, instance=self.instance, raise_on_error=False
        )
        return self.outcome(result.run_id)

    def outcome(self, run_id: str) -> RunOutcome:
        run = self.instance.get_run_by_id(run_id)
        if run is None:
            raise OperationFailed(f"run_id: no run {run_id!r} in the run store")
        outputs = self.instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_OUTPUT
        ).records
        metadata = {}
        for record in outputs:
            output = record.event_log_entry.dagster_event.event_specific_data
            metadata |= {key: value.value for key, value in output.metadata.items()}
        failed = run.status == dg.DagsterRunStatus.FAILURE
        return RunOutcome(
            run_id=run_id,
            status=run.status.value,
            metadata=metadata,
            error=error_summary(self.instance, run_id) if failed else None,
        )

    def set_trigger_running(self, task: TaskSpec, running: bool) -> None:
        _, _, repository = self._repository()
        name = instigator_name(task)
        if task.trigger == "cron":
            remote = repository.get_schedule(name)
            start, stop = self.instance.start_schedule, self.instance.stop_schedule
        else:
            remote = repository.get_sensor(name)
            start, stop = self.instance.start_sensor, self.instance.stop_sensor
        origin_id, selector_id = remote.get_remote_origin_id(), remote.selector_id
        current = remote.get_current_instigator_state(
            self.instance.get_instigator_state(origin_id, selector_id)
        )
        # Starting a running trigger is refused by Dagster; the command is idempotent.
        if running and not current.is_running:
            start(remote)
        elif not running and current.is_running:
            stop(origin_id, selector_id, remote)

    def pause(self, task_name: str) -> None:
        control.pause_task(self.instance, task_name)

    def resume(self, task_name: str) -> None:
        control.resume_task(self.instance, task_name)

    def reload(self) -> str:
        _, _, repository = self._repository()
        return (
            f"code location {self.location} loads from {self.workspace_file}:"
            f" {len(repository.get_all_jobs())} jobs, {len(repository.get_schedules())}"
            f" schedules, {len(repository.get_sensors())} sensors (local mode loads the code"
            " on every command; a running webserver reloads with `zquant --url URL reload`)"
        )

    def _repository(self):
        """The request context, code location and repository; a load error is reported."""
        context = self._request_context()
        error = context.get_code_location_error(self.location)
        if error is not None:
            raise OperationFailed(
                f"code location {self.location} does not load: {error.message.strip()}"
                " (check the catalog with `zquant tasks validate`)"
            )
        if self.location not in context.code_location_names:
            raise OperationFailed(
                f"{self.workspace_file} has no code location {self.location!r}"
                f" (found: {', '.join(context.code_location_names) or 'none'})"
            )
        location = context.get_code_location(self.location)
        return context, location, location.get_repository(REPOSITORY_NAME)

    def _request_context(self) -> WorkspaceRequestContext:
        if self._workspace is None:
            self._workspace = self._owned.enter_context(
                WorkspaceProcessContext(
                    self.instance,
                    WorkspaceFileTarget(paths=[str(self.workspace_file)]),
                    code_server_log_level="WARNING",
                )
            )
        return self._workspace.create_request_context()
