"""The operations against the Dagster instance in DAGSTER_HOME, without a webserver.

Reads (trigger states, runs, history, stats, pause state) go straight to the instance's
storage and need no code. Writes that need the code location (queueing a run, starting or
stopping a schedule or sensor) load it from workspace.yaml the way the webserver and
`dagster job launch` / `dagster schedule start` do: a code server process, opened on first
use and kept until ``close()``. A queued run waits for the daemon (`make dev` runs one).

Commands that wait for their run (`zquant sync-daily`, `zquant demo`) queue it like every
other run, so pause and one run per task hold it too; with no daemon alive they take their
own run from the queue when the daemon would (one pass of its logic, for that run only),
then follow it to its end.
"""

import contextlib
import datetime as dt
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import dagster as dg

# Private modules, but they are where Dagster's own CLI gets the workspace, the selectors
# and the stored-state statuses it uses for `dagster job launch` and `dagster schedule`.
from dagster._core.definitions.selector import InstigatorSelector, JobSubsetSelector
from dagster._core.execution.plan.resume_retry import ReexecutionStrategy
from dagster._core.scheduler.instigation import InstigatorStatus, SensorInstigatorData
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

# The run queue daemon itself: a waiting command with no daemon alive runs its pass.
from dagster._daemon.controller import get_daemon_statuses
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from zquant_pipelines.constants import TAG_TASK
from zquant_pipelines.history.pause import pause_requests, request_pause, withdraw_pause
from zquant_pipelines.history.progress import RunProgress, run_progress
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
from zquant_pipelines.history.summary import rebuild_task_run_summary
from zquant_pipelines.operations.base import (
    DEFAULT_RUN_TIMEOUT_SECONDS,
    REPOSITORY_NAME,
    WORKSPACE_FILE,
    OperationFailed,
    Operations,
    ProgressListener,
    RunOutcome,
    UsageProblem,
    location_name,
    no_such_run,
)
from zquant_pipelines.operations.status import RunState, TriggerState, instigator_name
from zquant_pipelines.supervision import fail_runs_with_dead_workers
from zquant_pipelines.tasks import control
from zquant_pipelines.tasks.builders import in_flight_reason, job_name
from zquant_pipelines.tasks.catalog import TaskSpec

# The runs a command waits for print nothing per event: the command prints its result
# (the events are in the UI and `zquant history --run`).
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# How often a waiting command reads its run's status (a read of the run store).
RUN_POLL_SECONDS = 0.25
# How often a command with no daemon alive looks for runs whose worker died.
DEAD_WORKER_SWEEP_SECONDS = 5.0
# A live daemon beats every 30 s (Dagster's default interval); one beat late and it counts as
# gone. Dagster's own tolerance (30 min) is for the UI's warning, far too long to wait on.
DAEMON_HEARTBEAT_TOLERANCE_SECONDS = 30
# A run of a task in one of these (out of the queue, not ended) holds the task's next run in
# the queue: the zquant/task tag limit of dagster.yaml.
LAUNCHED_STATUSES = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def note_on_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def queue_daemon_alive(instance: dg.DagsterInstance) -> bool:
    """Whether a daemon takes runs from this instance's queue (a recent heartbeat)."""
    daemon_type = QueuedRunCoordinatorDaemon.daemon_type()
    status = get_daemon_statuses(
        instance,
        [daemon_type],
        ignore_errors=True,
        heartbeat_tolerance_seconds=DAEMON_HEARTBEAT_TOLERANCE_SECONDS,
    )[daemon_type]
    return bool(status.healthy)


class OwnRunDequeuer(QueuedRunCoordinatorDaemon):
    """The run queue daemon's pass, launching ``run_id`` only, and only when the daemon would
    launch it now: the same order, max_concurrent_runs, tag limits (one run per task) and
    pools (a paused task). Other queued runs stay for the daemon: a command that ends when
    its run ends must not start runs it will not follow."""

    def __init__(self, run_id: str):
        super().__init__(interval_seconds=RUN_POLL_SECONDS)
        self.run_id = run_id

    # Dagster's private hook for the list of runs a pass launches; the rules stay Dagster's.
    def _get_runs_to_dequeue(self, instance, concurrency_config, fixed_iteration_time):
        launchable = super()._get_runs_to_dequeue(
            instance, concurrency_config, fixed_iteration_time
        )
        return [run for run in launchable if run.run_id == self.run_id]


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
        notify: Callable[[str], None] = note_on_stderr,
        run_timeout_seconds: float = DEFAULT_RUN_TIMEOUT_SECONDS,
    ):
        self.instance = instance
        self.workspace_file = workspace_file
        self.location = location_name(workspace_file)
        self._workspace = workspace
        self._owned = contextlib.ExitStack()
        self.notify = notify
        self.run_timeout_seconds = run_timeout_seconds

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

    def rebuild_stats(self) -> int:
        try:
            return rebuild_task_run_summary(self.instance)
        except NotSqlRunStorageError as error:
            raise OperationFailed(str(error)) from None

    # --- writes ------------------------------------------------------------------------

    def submit_run(self, task: TaskSpec, config: dict) -> str:
        return self.submit_job_run(job_name(task.name), config)

    def submit_job_run(
        self,
        job: str,
        config: dict,
        tags: dict[str, str] | None = None,
        asset_selection: Sequence[dg.AssetKey] | None = None,
    ) -> str:
        """Queue a run of ``job`` of the code location, as the webserver's launchRun does:
        the run carries the job's origin, so the UI lists it under the job and can re-execute
        it. ``asset_selection`` runs those assets of an asset job only."""
        context, location, repository = self._repository()
        remote_job = location.get_job(
            JobSubsetSelector(
                location_name=location.name,
                repository_name=repository.name,
                job_name=job,
                op_selection=None,
                asset_selection=asset_selection,
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
            tags={**remote_job.tags, **(tags or {})},
            job_snapshot=remote_job.job_snapshot,
            execution_plan_snapshot=plan,
            parent_job_snapshot=remote_job.parent_job_snapshot,
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
            asset_selection=frozenset(asset_selection) if asset_selection else None,
            asset_check_selection=None,
            asset_graph=repository.asset_graph,
        )
        return self.instance.submit_run(run.run_id, context).run_id

    def execute_run(
        self, task: TaskSpec, config: dict, on_progress: ProgressListener | None = None
    ) -> RunOutcome:
        return self.run_to_end(self.submit_run(task, {**config, **QUIET_RUN_CONFIG}), on_progress)

    def run_to_end(self, run_id: str, on_progress: ProgressListener | None = None) -> RunOutcome:
        """Follow a queued run to its end: the daemon takes it from the queue or, with none
        alive, this command does when the queue's rules let it. A run of a paused task is
        left held in the queue (OperationFailed says so): a pause lasts until someone
        resumes, which a command must not wait for. ``on_progress`` hears the run's
        progress at every look, the last one after the run ended."""
        deadline = time.monotonic() + self.run_timeout_seconds
        told = None
        next_sweep = time.monotonic()
        with OwnRunDequeuer(run_id) as dequeuer:
            while True:
                daemon_alive = queue_daemon_alive(self.instance)
                if not daemon_alive and time.monotonic() >= next_sweep:
                    # Run monitoring lives in the daemon: without one, this command fails
                    # the runs whose worker died (its own, or a killed command's run that
                    # holds the task's one-run slot).
                    fail_runs_with_dead_workers(self.instance)
                    next_sweep = time.monotonic() + DEAD_WORKER_SWEEP_SECONDS
                run = self.instance.get_run_by_id(run_id)
                if run is None:
                    raise OperationFailed(f"run_id: no run {run_id!r} in the run store")
                if on_progress is not None:
                    on_progress(run_progress(run_id, run.status.value, run.tags))
                if run.is_finished:
                    return self.outcome(run_id)
                if run.status == dg.DagsterRunStatus.QUEUED:
                    if not daemon_alive:
                        list(dequeuer.run_iteration(self._workspace_context()))
                        run = self.instance.get_run_by_id(run_id)
                    if run.status == dg.DagsterRunStatus.QUEUED:
                        why = self.queued_reason(run, daemon_alive)
                        if why != told:
                            self.notify(f"Run {run_id} waits in the queue: {why}")
                            told = why
                if time.monotonic() > deadline:
                    raise OperationFailed(
                        f"run {run_id} is still {run.status.value} after"
                        f" {self.run_timeout_seconds:.0f} s; follow it with"
                        f" `zquant history --run {run_id}`"
                    )
                time.sleep(RUN_POLL_SECONDS)

    def queued_reason(self, run: dg.DagsterRun, daemon_alive: bool) -> str:
        """Why ``run`` is still queued; a held run of a paused task raises OperationFailed."""
        task = run.tags.get(TAG_TASK)
        if task is not None and control.is_paused(self.instance, task):
            raise OperationFailed(
                f"task {task} is paused: run {run.run_id} is held in the queue and starts"
                f" after `zquant resume {task}`, when the Dagster daemon takes it (`make dev`"
                f" runs one); follow it with `zquant history --run {run.run_id}`"
            )
        if task is not None:
            ahead = self.instance.get_runs(
                dg.RunsFilter(tags={TAG_TASK: task}, statuses=LAUNCHED_STATUSES), limit=1
            )
            if ahead:
                return (
                    f"run {ahead[0].run_id} of task {task} is {ahead[0].status.value}"
                    " (one run of a task at a time); it starts when that one ends"
                )
        if daemon_alive:
            return "the Dagster daemon starts it"
        return "the run queue is full (max_concurrent_runs in dagster.yaml)"

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

    def run_status(self, run_id: str) -> str | None:
        run = self.instance.get_run_by_id(run_id)
        return run.status.value if run is not None else None

    def run_progress(self, run_id: str) -> RunProgress:
        run = self.instance.get_run_by_id(run_id)
        if run is None:
            raise no_such_run(run_id)
        return run_progress(run_id, run.status.value, run.tags)

    def request_termination(self, run_id: str) -> None:
        # What the webserver's terminateRun does: the coordinator cancels a queued run and
        # asks the run launcher to interrupt a started one.
        if not self.instance.run_coordinator.cancel_run(run_id):
            raise OperationFailed(
                f"run {run_id} could not be terminated (status"
                f" {self.run_status(run_id)}); see `zquant history --run {run_id}`"
            )

    def submit_reexecution(self, run_id: str, from_failure: bool) -> str:
        """As the webserver's launchRunReexecution: the parent's job from the code location,
        Dagster's re-execution plan and tags (parent and root run ids, the parent's tags),
        then the queue, so pause and one run per task hold the new run too."""
        parent = self.instance.get_run_by_id(run_id)
        context, location, repository = self._repository()
        if not repository.has_job(parent.job_name):
            raise OperationFailed(
                f"run {run_id} ran {parent.job_name}, which code location {self.location} no"
                " longer has (or never had: a run outside the code location); trigger its"
                " task again instead"
            )
        remote_job = location.get_job(
            JobSubsetSelector(
                location_name=location.name,
                repository_name=repository.name,
                job_name=parent.job_name,
                op_selection=None,
                asset_selection=parent.asset_selection,
                asset_check_selection=parent.asset_check_selection,
            )
        )
        strategy = (
            ReexecutionStrategy.FROM_FAILURE if from_failure else ReexecutionStrategy.ALL_STEPS
        )
        run = self.instance.create_reexecuted_run(
            request_context=context,
            parent_run=parent,
            code_location=location,
            remote_job=remote_job,
            strategy=strategy,
            use_parent_run_tags=True,
        )
        return self.instance.submit_run(run.run_id, context).run_id

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

    def request_run_pause(self, run_id: str) -> None:
        request_pause(self.instance, run_id)

    def run_pause_requests(self) -> list[str]:
        return pause_requests(self.instance)

    def withdraw_run_pause(self, run_id: str) -> None:
        withdraw_pause(self.instance, run_id)

    def reload(self) -> str:
        if self._workspace is not None:
            # A workspace kept open (a long-lived caller's) serves what it loaded: reload it.
            self._workspace.reload_code_location(self.location)
        _, _, repository = self._repository()
        return (
            f"code location {self.location} loads from {self.workspace_file}:"
            f" {len(repository.get_all_jobs())} jobs, {len(repository.get_schedules())}"
            f" schedules, {len(repository.get_sensors())} sensors (local mode loads the code"
            " on every command; a running webserver reloads with `zquant --url URL reload`)"
        )

    def freshness(self, now: dt.datetime) -> list:
        # Loaded here: SQLAlchemy and pandas would slow every other command's start.
        from zquant_pipelines.resources.warehouse import Warehouse, default_warehouse_url
        from zquant_pipelines.sync.freshness import freshness, freshness_deadline

        # The warehouse of this environment (ZQUANT_WAREHOUSE_URL), as the code location's.
        try:
            deadline = freshness_deadline()
        except ValueError as error:
            raise UsageProblem(str(error)) from None
        try:
            return freshness(Warehouse(url=default_warehouse_url()), now, deadline)
        except ValueError as error:  # a calendar that does not reach today
            raise OperationFailed(str(error)) from None

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

    def _workspace_context(self) -> WorkspaceProcessContext:
        if self._workspace is None:
            self._workspace = self._owned.enter_context(
                WorkspaceProcessContext(
                    self.instance,
                    WorkspaceFileTarget(paths=[str(self.workspace_file)]),
                    code_server_log_level="WARNING",
                )
            )
        return self._workspace

    def _request_context(self) -> WorkspaceRequestContext:
        return self._workspace_context().create_request_context()
