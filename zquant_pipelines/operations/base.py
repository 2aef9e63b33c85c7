"""The operations the `zquant` CLI offers, as one interface with two implementations.

``Operations`` declares the primitives each back end provides (against the instance in
DAGSTER_HOME in ``local.py``, through a webserver's GraphQL in ``graphql.py``) and builds
what the CLI shows from them, so both modes compute statuses, run configs and output the
same way. It also owns the errors that decide the CLI's exit code and the run configs of
task runs.

The task catalog is read from ZQUANT_TASKS_FILE (default tasks.yaml) in both modes: it
says which tasks exist and what they run; the instance or server says what happened.
"""

import abc
import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from zquant_pipelines.constants import REPO_ROOT, SYNC_DAILY_TASK
from zquant_pipelines.history.progress import RunProgress
from zquant_pipelines.history.runs import DEFAULT_PAGE_SIZE, HistoryPage, RunDetail
from zquant_pipelines.history.stats import StatsReport
from zquant_pipelines.history.store import JsonRecord
from zquant_pipelines.operations.status import (
    RunState,
    TaskRow,
    TriggerState,
    task_row,
)
from zquant_pipelines.tasks.action_params import (
    ActionParamsError,
    parse_action_params,
)
from zquant_pipelines.tasks.builders import action_of, job_name
from zquant_pipelines.tasks.catalog import Catalog, TaskSpec
from zquant_pipelines.tasks.definitions import load_task_catalog

if TYPE_CHECKING:  # the freshness module imports pandas: only `zquant status` loads it
    from zquant_pipelines.sync.freshness import Freshness

WORKSPACE_FILE = REPO_ROOT / "workspace.yaml"
# Definitions(...) loaded as a code location form one repository of this name.
REPOSITORY_NAME = "__repository__"
RECENT_RUNS = 5
# How long a command that waits for its run (`zquant sync-daily`) follows it at most.
DEFAULT_RUN_TIMEOUT_SECONDS = 3600.0
SYNC_DAILY_ACTION = "sync_daily_data"
# Dagster's run statuses, as both back ends read them: a run in one of these has ended (it
# cannot be terminated); retry from failure re-runs the steps of a run that ended in one of
# RETRYABLE_FROM_FAILURE (Dagster refuses the others).
FINISHED_RUN_STATUSES = ("SUCCESS", "FAILURE", "CANCELED")
RETRYABLE_FROM_FAILURE = ("FAILURE", "CANCELED")
# What a command that follows a run hears at each look at it (cli/follow.py shows it).
ProgressListener = Callable[[RunProgress], None]


class UsageProblem(Exception):
    """Bad input: an unknown task, invalid config or dates (the CLI exits 2)."""


class OperationFailed(Exception):
    """The operation ran and failed: a failed run, a missing run, an unreachable server or
    a code location that does not load (the CLI exits 1)."""


def location_name(workspace_file: Path = WORKSPACE_FILE) -> str:
    """The code location's name as workspace.yaml gives it (the webserver uses the same)."""
    workspace = yaml.safe_load(workspace_file.read_text())
    (entry,) = workspace["load_from"]
    (target,) = entry.values()
    return target["location_name"]


@dataclasses.dataclass(frozen=True)
class TaskDetail(JsonRecord):
    """`zquant tasks show`: the task's row, its config, workflow shape and recent runs."""

    row: TaskRow
    job_name: str
    max_retries: int
    retry_interval: float
    retry_backoff: str
    executor: str
    tags: dict[str, str]
    config: dict
    workflow: dict | None
    member_of: list[str]
    recent_runs: HistoryPage


@dataclasses.dataclass(frozen=True)
class RunOutcome(JsonRecord):
    """A run carried to its end: its id, final status, the op output metadata, the error."""

    run_id: str
    status: str
    metadata: dict
    error: str | None

    @property
    def rows_written(self) -> dict[str, int]:
        """Rows per table, from the ``<table>_rows`` metadata the sync actions report."""
        return {
            key.removesuffix("_rows"): int(value)
            for key, value in self.metadata.items()
            if key.endswith("_rows") and value is not None
        }


def no_such_run(run_id: str) -> OperationFailed:
    return OperationFailed(
        f"run_id: no run {run_id!r} in the run store; list a task's runs with"
        " `zquant history NAME`"
    )


def find_task(catalog: Catalog, name: str) -> TaskSpec:
    if name not in catalog.tasks:
        raise UsageProblem(
            f"task {name!r} is not in {catalog.source}; known tasks: {', '.join(catalog.tasks)}"
            " (see `zquant tasks list`)"
        )
    return catalog.tasks[name]


def op_configs(catalog: Catalog, task: TaskSpec, overrides: Mapping) -> dict[str, dict]:
    """Each op's config for a run of ``task``: the catalog's params with ``overrides`` merged.

    A common or manual task has one op: ``overrides`` are its params. A workflow has one op
    per member: ``overrides`` map member names to that member's params. Every op's merged
    params are validated as the op will validate them, so a mistake fails here, not in the
    run.
    """
    if task.task_type == "workflow":
        members = catalog.workflow(task.name).member_names
        unknown = [name for name in overrides if name not in members]
        if unknown:
            raise UsageProblem(
                f"--config: {', '.join(map(repr, unknown))} not a member of workflow {task.name!r}"
                f" (members: {', '.join(members)}); give params per member, e.g."
                f" '{{\"{members[0]}\": {{...}}}}'"
            )
        not_objects = [name for name, value in overrides.items() if not isinstance(value, dict)]
        if not_objects:
            raise UsageProblem(f"--config: params of {', '.join(not_objects)} must be objects")
        targets = {name: (catalog.tasks[name], overrides.get(name, {})) for name in members}
    else:
        targets = {task.name: (task, overrides)}
    configs, problems = {}, []
    for op_name, (member, extra) in targets.items():
        action, params = action_of(member)
        merged = {**params, **extra}
        try:
            parse_action_params(action, merged, where=f"--config {op_name}")
        except ActionParamsError as error:
            problems += error.problems
        configs[op_name] = merged
    if problems:
        raise UsageProblem("\n".join(problems))
    return configs


def run_config(configs: Mapping[str, Mapping]) -> dict:
    return {"ops": {op_name: {"config": dict(config)} for op_name, config in configs.items()}}


def task_run(catalog: Catalog, name: str, overrides: Mapping) -> tuple[TaskSpec, dict]:
    """The task ``name`` and the run config of a run of it with ``overrides``."""
    task = find_task(catalog, name)
    return task, run_config(op_configs(catalog, task, overrides))


class Operations(abc.ABC):
    """One back end for every `zquant` command; use as a context manager."""

    location: str

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self) -> None:  # noqa: B027 - a back end without resources keeps the default
        """Release what the back end holds (workspace, HTTP session)."""

    def catalog(self) -> Catalog:
        return load_task_catalog()

    # --- primitives each back end implements -------------------------------------------

    @abc.abstractmethod
    def trigger_states(self, tasks: Sequence[TaskSpec]) -> dict[str, TriggerState]:
        """The current state of each task's schedule or sensor (tasks with a trigger)."""

    @abc.abstractmethod
    def paused_tasks(self) -> set[str]:
        """Names of the paused tasks."""

    @abc.abstractmethod
    def run_states(self, task_names: Sequence[str]) -> dict[str, RunState]:
        """Each task's latest run and whether a run of it is in flight."""

    @abc.abstractmethod
    def history(
        self,
        task: str,
        statuses: Sequence[str] | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> HistoryPage: ...

    @abc.abstractmethod
    def run_detail(self, run_id: str) -> RunDetail: ...

    @abc.abstractmethod
    def stats(self, task: str | None = None, since: dt.datetime | None = None) -> StatsReport: ...

    @abc.abstractmethod
    def rebuild_stats(self) -> int:
        """Rebuild the stats' task run summary from the run store; the runs it then holds."""

    @abc.abstractmethod
    def submit_run(self, task: TaskSpec, config: dict) -> str:
        """Queue a run of the task's job with ``config``; return the run id."""

    @abc.abstractmethod
    def execute_run(
        self, task: TaskSpec, config: dict, on_progress: ProgressListener | None = None
    ) -> RunOutcome:
        """Run the task's job with ``config`` to its end (``run_to_end``)."""

    @abc.abstractmethod
    def run_to_end(self, run_id: str, on_progress: ProgressListener | None = None) -> RunOutcome:
        """Follow a queued run to its end; ``on_progress`` hears its progress at every look."""

    @abc.abstractmethod
    def run_status(self, run_id: str) -> str | None:
        """The run's Dagster status (``STARTED``, ``FAILURE``, ...), None for an unknown id."""

    @abc.abstractmethod
    def run_progress(self, run_id: str) -> RunProgress:
        """The run's status and how far its multi-day steps have come (history/progress.py);
        OperationFailed for an unknown id."""

    @abc.abstractmethod
    def request_termination(self, run_id: str) -> None:
        """Cancel a queued run or interrupt a started one (OperationFailed if refused)."""

    @abc.abstractmethod
    def request_run_pause(self, run_id: str) -> None:
        """Ask a run to stop at its next day boundary (history/pause.py)."""

    @abc.abstractmethod
    def run_pause_requests(self) -> list[str]:
        """The ids of the runs with a pause request standing."""

    @abc.abstractmethod
    def withdraw_run_pause(self, run_id: str) -> None: ...

    @abc.abstractmethod
    def submit_reexecution(self, run_id: str, from_failure: bool) -> str:
        """Queue a re-execution of the run, as Dagster's Re-execute does (all steps, or from
        failure: the steps that failed or did not run); return the new run id."""

    @abc.abstractmethod
    def set_trigger_running(self, task: TaskSpec, running: bool) -> None:
        """Start or stop the task's schedule or sensor."""

    @abc.abstractmethod
    def pause(self, task_name: str) -> None: ...

    @abc.abstractmethod
    def resume(self, task_name: str) -> None: ...

    @abc.abstractmethod
    def reload(self) -> str:
        """Reload (or, locally, load and check) the code location; say what was found."""

    @abc.abstractmethod
    def freshness(self, now: dt.datetime) -> list["Freshness"]:
        """Each dataset's freshness verdict at ``now`` (`zquant status`)."""

    # --- what the commands show, built from the primitives ------------------------------

    def task_rows(
        self, catalog: Catalog, now: dt.datetime, names: list[str] | None = None
    ) -> list[TaskRow]:
        """The rows of the catalog's tasks, or of the tasks ``names`` (facts gathered for
        those only)."""
        tasks = (
            list(catalog.tasks.values())
            if names is None
            else [catalog.tasks[name] for name in names]
        )
        triggers = self.trigger_states(tasks)
        paused = self.paused_tasks()
        runs = self.run_states([task.name for task in tasks])
        return [
            task_row(task, triggers.get(task.name), task.name in paused, runs[task.name], now)
            for task in tasks
        ]

    def task_detail(self, catalog: Catalog, name: str, now: dt.datetime) -> TaskDetail:
        task = find_task(catalog, name)
        (row,) = self.task_rows(catalog, now, [name])
        workflow = None
        if task.workflow is not None:
            workflow = {
                "workflow_type": task.workflow.workflow_type,
                "on_failure": task.workflow.on_failure,
                "max_parallel": task.workflow.max_parallel,
                "members": [
                    {"name": member.name, "dependencies": list(member.dependencies)}
                    for member in task.workflow.members
                ],
            }
        member_of = [
            other.name
            for other in catalog.tasks.values()
            if other.workflow is not None and name in other.workflow.member_names
        ]
        return TaskDetail(
            row=row,
            job_name=job_name(name),
            max_retries=task.max_retries,
            retry_interval=task.retry_interval,
            retry_backoff=task.retry_backoff,
            executor=task.executor or "default",
            tags=dict(task.tags),
            config=dict(task.config),
            workflow=workflow,
            member_of=member_of,
            recent_runs=self.history(name, limit=RECENT_RUNS),
        )

    def trigger(self, catalog: Catalog, name: str, overrides: Mapping) -> str:
        return self.submit_run(*task_run(catalog, name, overrides))

    def trigger_to_end(
        self,
        catalog: Catalog,
        name: str,
        overrides: Mapping,
        on_progress: ProgressListener | None = None,
    ) -> RunOutcome:
        """`zquant trigger --wait`: a run of the task, queued and followed to its end."""
        return self.execute_run(*task_run(catalog, name, overrides), on_progress)

    def sync_daily(
        self, catalog: Catalog, params: Mapping, on_progress: ProgressListener | None = None
    ) -> RunOutcome:
        """Run the sync-daily task to its end with ``params`` (cli/arguments.py checks them)."""
        task = find_task(catalog, SYNC_DAILY_TASK)
        if action_of(task)[0] != SYNC_DAILY_ACTION:
            raise UsageProblem(
                f"task {SYNC_DAILY_TASK!r} in {catalog.source} runs {action_of(task)[0]!r}:"
                f" sync-daily needs it to run {SYNC_DAILY_ACTION!r}"
            )
        return self.execute_run(task, run_config({task.name: params}), on_progress)

    def terminate(self, run_id: str) -> str:
        """Terminate a run that has not ended; its status read back afterwards."""
        status = self.existing_run_status(run_id)
        if status in FINISHED_RUN_STATUSES:
            raise UsageProblem(
                f"run {run_id} already ended {status}: there is nothing to terminate"
                f" (run it again with `zquant retry {run_id}`)"
            )
        self.request_termination(run_id)
        return self.existing_run_status(run_id)

    def pause_run(self, run_id: str) -> str:
        """Ask a run that has not ended to stop at its next day boundary (a multi-day step
        looks for the request after each day); its status read back afterwards."""
        status = self.existing_run_status(run_id)
        if status in FINISHED_RUN_STATUSES:
            go_on = (
                f" (go on from where it stopped with `zquant retry {run_id} --from-failure`)"
                if status in RETRYABLE_FROM_FAILURE
                else ""
            )
            raise UsageProblem(
                f"run {run_id} already ended {status}: there is nothing to pause{go_on}"
            )
        # Requests of runs that ended without stopping for them (no day boundary came).
        for requested in self.run_pause_requests():
            if self.run_status(requested) in (*FINISHED_RUN_STATUSES, None):
                self.withdraw_run_pause(requested)
        self.request_run_pause(run_id)
        return self.existing_run_status(run_id)

    def retry(self, run_id: str, from_failure: bool) -> str:
        """Queue a re-execution of a run; the new run's id."""
        status = self.existing_run_status(run_id)
        if from_failure and status not in RETRYABLE_FROM_FAILURE:
            raise UsageProblem(
                f"run {run_id} is {status}: --from-failure re-runs the failed steps of a run"
                f" that ended {' or '.join(RETRYABLE_FROM_FAILURE)}; re-run all its steps with"
                f" `zquant retry {run_id}`"
            )
        return self.submit_reexecution(run_id, from_failure)

    def existing_run_status(self, run_id: str) -> str:
        status = self.run_status(run_id)
        if status is None:
            raise no_such_run(run_id)
        return status

    def set_enabled(self, catalog: Catalog, name: str, enabled: bool) -> TriggerState:
        """Start or stop the task's trigger; the state read back afterwards."""
        task = find_task(catalog, name)
        if task.trigger is None:
            verb = "enable" if enabled else "disable"
            raise UsageProblem(
                f"task {name!r} ({task.task_type}) has no schedule or sensor to {verb}: it runs"
                f" only by hand (`zquant trigger {name}`); to hold its runs use"
                f" `zquant pause {name}`"
            )
        self.set_trigger_running(task, enabled)
        return self.trigger_states([task])[name]
