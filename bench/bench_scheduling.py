"""Benchmark: scheduling overhead, from a schedule tick to a run's first step, and a parallel
workflow of no-op tasks end to end on each executor (issue 7, case 4).

Everything runs as in production, on a throw-away instance (SQLite, the shipped
dagster.yaml: run queue, one run per task) and the production code location
(workspace.yaml -> ``zquant_pipelines.definitions``, served by a gRPC code server process)
reading a bench catalog of ``example_task`` tasks. The daemon's steps are driven one at a
time instead of by ``dagster-daemon``'s loops:

- tick -> first step: a cron task (``* * * * *``) ticks through Dagster's scheduler
  (``launch_scheduled_runs``, what the scheduler daemon runs) at a controlled "now" one
  minute further on each repeat, so each repeat is exactly one due tick; the queue
  coordinator's iteration dequeues the run, the DefaultRunLauncher hands it to the code
  server, which starts the run process. Measured: from the start of the scheduler
  iteration (wall clock) to the run's first STEP_START in the event log. The task runs
  ``in_process`` so the figure is scheduling alone; what an executor adds is the workflow
  case's business. ``dagster-daemon`` adds its polling on top: the scheduler wakes on the
  minute, so ticks are on time, but the queue is read every ``dequeue_interval_seconds``
  (in the result). Baseline: the same job by ``execute_in_process`` on the same instance
  (the task's job of the catalog in the bench's own process), from the call to its first
  STEP_START: a step with no scheduler, queue, launch or new process.
- parallel workflow: N no-op members without dependencies (default 10; ``max_parallel`` N
  where the executor takes it) submitted to the queue as ``zquant trigger`` does, from the
  submit to RUN_SUCCESS in the event log, on each executor of ``EXECUTOR_CASES``.
  Baseline: the one-member workflow on the same executor and path, so the ratio is what
  the other N-1 members cost on top of launching a run (1.0: parallel for free). The
  members' own work, ``example_task`` called N times, takes microseconds: a ratio against
  it would only restate the launch cost.

Celery runs on a ``zquant worker`` the bench starts in its own environment (the worker must
load the bench catalog); the case is skipped, with the reason printed and kept in the
result, when the broker (ZQUANT_CELERY_BROKER) is unreachable or other workers listen on
it (they would take the bench's steps).

Figures: ``scheduling.tick_vs_execute_in_process`` and
``scheduling.workflow_<N>_vs_1_<executor>`` (the default size runs in_process only).

Run: ``.venv/bin/python -m bench --only scheduling [--size quick|default|full]``
"""

import datetime as dt
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import celery
import dagster as dg

# Private modules, but they are the scheduler and run queue iterations that dagster-daemon
# runs, and the workspace it loads: driving them is the daemon minus its sleeps.
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from dagster._scheduler.scheduler import launch_scheduled_runs

from bench.harness import Figure, Sample, Wanted, every_figure
from zquant_pipelines.constants import (
    ENV_CELERY_BROKER,
    ENV_PG_URL,
    ENV_TASKS_FILE,
    ENV_TUSHARE_TOKEN,
    ENV_WAREHOUSE_URL,
    TAG_TASK,
)
from zquant_pipelines.executors import celery_broker_url
from zquant_pipelines.instance_home import prepare_home
from zquant_pipelines.operations.base import REPOSITORY_NAME, WORKSPACE_FILE, location_name
from zquant_pipelines.operations.local import QUIET_RUN_CONFIG, LocalOperations
from zquant_pipelines.resources.definitions import build_resource_definitions
from zquant_pipelines.tasks.builders import executor_for, job_name, schedule_name
from zquant_pipelines.tasks.catalog import Catalog, parse_catalog
from zquant_pipelines.tasks.definitions import build_catalog_definitions
from zquant_pipelines_tests.support import catalog_files

# Each of 10 multiprocess steps imports the code location, tens of seconds on 2 cores:
# five rounds of those would break the 10-minute budget of `make bench`, so the default
# size runs the in_process workflow only and `--size full` every executor (3 rounds each).
SIZES = {
    # The smoke test of `make test`: the tick alone.
    "quick": {"members": 2, "executors": (), "workflow_repeats": 5},
    "default": {"members": 10, "executors": ("in_process",), "workflow_repeats": 5},
    "full": {
        "members": 10,
        "executors": ("in_process", "multiprocess", "celery"),
        "workflow_repeats": 3,
    },
}
TICK_TASK = "tick_probe"
TICK_EXECUTOR = "in_process"
EVERY_MINUTE = "* * * * *"
SCHEDULE_TAG = "dagster/schedule_name"
RUN_TIMEOUT_SECONDS = 180.0
POLL_SECONDS = 0.05
CELERY_PING_SECONDS = 1.0
WORKER_START_TIMEOUT_SECONDS = 60.0
LOG = logging.getLogger(__name__)


# -- executors: one entry per executor the catalog offers --------------------------------


@contextmanager
def nothing_to_start(concurrency: int, scratch: Path) -> Iterator[str | None]:
    yield None


@contextmanager
def celery_worker(concurrency: int, scratch: Path) -> Iterator[str | None]:
    """A ``zquant worker`` started in the bench's environment, so it loads the bench
    catalog; yields None once it answers a ping, else the reason the celery case is skipped.
    A worker already on the broker would take the bench's steps with its own catalog, so
    the case is skipped then too."""
    app = celery.Celery(broker=celery_broker_url())
    try:
        try:
            app.connection_for_write().ensure_connection(max_retries=1)
        except Exception as error:  # noqa: BLE001 - any broker failure means "skip, say why"
            # The URL may hold a password: name the variable, never its value.
            yield f"the broker ({ENV_CELERY_BROKER}) is unreachable: {type(error).__name__}"
            return
        others = app.control.ping(timeout=CELERY_PING_SECONDS)
        if others:
            names = ", ".join(name for reply in others for name in reply)
            yield f"other Celery workers on the broker would take the bench's steps: {names}"
            return
        name = f"zq-bench-{os.getpid()}"
        command = [sys.executable, "-m", "zquant_pipelines.cli", "worker", "--name", name]
        command += ["--concurrency", str(concurrency), "--loglevel", "WARNING"]
        log = scratch / f"{name}.log"
        with log.open("wb") as output:
            worker = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + WORKER_START_TIMEOUT_SECONDS
            while not app.control.ping(timeout=CELERY_PING_SECONDS):
                if worker.poll() is not None or time.monotonic() > deadline:
                    lines = log.read_text(errors="replace").strip().splitlines() or ["no output"]
                    yield f"the bench's Celery worker did not answer: {lines[-1]}"
                    return
            yield None
        finally:
            # SIGTERM: Celery's warm shutdown, which ends an idle worker within seconds.
            worker.terminate()
            worker.wait(timeout=WORKER_START_TIMEOUT_SECONDS)
    finally:
        app.close()


@dataclass(frozen=True)
class ExecutorCase:
    """An executor as the catalog names it: whether a workflow on it takes ``max_parallel``
    (Celery's worker slots bound it instead), and what must run for it (a context manager
    given the parallelism, yielding None when ready or why the case is skipped)."""

    name: str
    takes_max_parallel: bool = True
    prepared: Callable[[int, Path], AbstractContextManager[str | None]] = nothing_to_start


EXECUTOR_CASES = (
    ExecutorCase("in_process"),
    ExecutorCase("multiprocess"),
    ExecutorCase("celery", takes_max_parallel=False, prepared=celery_worker),
)


# -- the catalog and the instance ---------------------------------------------------------


def noop_name(index: int) -> str:
    return f"noop_{index}"


def workflow_name(executor: str, members: int) -> str:
    return f"parallel_{members}_{executor}"


def bench_tasks(members: int) -> list[dict]:
    """The tick task, N no-op members, and per executor the N-member and one-member
    parallel workflows."""
    noop = {"task_type": "manual_task", "max_retries": 0, "config": {"task_action": "example_task"}}
    tasks = [
        {
            **noop,
            "name": TICK_TASK,
            "task_type": "common_task",
            "cron_expression": EVERY_MINUTE,
            "timezone": "UTC",
            "executor": TICK_EXECUTOR,
        },
        *({**noop, "name": noop_name(index)} for index in range(members)),
    ]
    for case in EXECUTOR_CASES:
        for size in dict.fromkeys((members, 1)):
            settings = {
                "workflow_type": "parallel",
                "on_failure": "continue",
                **({"max_parallel": members} if case.takes_max_parallel else {}),
                "tasks": [{"name": noop_name(index)} for index in range(size)],
            }
            tasks.append(
                {
                    "name": workflow_name(case.name, size),
                    "task_type": "workflow",
                    "executor": case.name,
                    "config": settings,
                }
            )
    return tasks


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables; the code server and the run workers
    it starts inherit them. The previous values come back afterwards."""
    saved = {name: os.environ.get(name) for name in values}

    def apply(settings: Mapping[str, str | None]) -> None:
        for name, value in settings.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    apply(values)
    try:
        yield
    finally:
        apply(saved)


class Bench:
    """The instance, the workspace (code server) and the daemon's steps on them."""

    def __init__(
        self, instance: dg.DagsterInstance, workspace: WorkspaceProcessContext, scratch: Path
    ):
        self.instance = instance
        self.scratch = scratch
        self.workspace = workspace
        self.operations = LocalOperations(instance, workspace=workspace)
        self.queue = QueuedRunCoordinatorDaemon(interval_seconds=0)

    def repository(self):
        context = self.workspace.create_request_context()
        return context.get_code_location(location_name(WORKSPACE_FILE)).get_repository(
            REPOSITORY_NAME
        )

    def only_tick_schedule(self) -> None:
        """Stop every other schedule of the location (the asset schedules run by default):
        each scheduler iteration then ticks the bench task alone."""
        for schedule in self.repository().get_schedules():
            if schedule.name != schedule_name(TICK_TASK):
                self.instance.stop_schedule(
                    schedule.get_remote_origin_id(), schedule.selector_id, schedule
                )

    def scheduler_iteration(self, now: dt.datetime) -> None:
        list(launch_scheduled_runs(self.workspace, LOG, end_datetime_utc=now, iteration_times={}))

    def task_run_ids(self, task: str) -> set[str]:
        return {run.run_id for run in self.instance.get_runs(dg.RunsFilter(tags={TAG_TASK: task}))}

    def run_to_end(self, run_id: str, steps: list[str]) -> list[str]:
        """Dequeue the run (a queue iteration whenever it is still queued) and poll the run
        store until it ends; a timing only counts when the run and every step succeeded."""
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        run = self.instance.get_run_by_id(run_id)
        while not run.is_finished:
            if run.status == dg.DagsterRunStatus.QUEUED:
                list(self.queue.run_iteration(self.workspace))
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run.status.value} after the timeout")
            time.sleep(POLL_SECONDS)
            run = self.instance.get_run_by_id(run_id)
        succeeded = self.succeeded_steps(run_id)
        if run.status != dg.DagsterRunStatus.SUCCESS or succeeded != sorted(steps):
            raise RuntimeError(
                f"run {run_id} of {run.job_name}: {run.status.value}, steps succeeded"
                f" {succeeded}, expected {sorted(steps)}"
            )
        return succeeded

    def timeline(self, run_id: str) -> dict[dg.DagsterEventType, float]:
        """When each event type first appears in the run's event log (epoch seconds)."""
        first: dict[dg.DagsterEventType, float] = {}
        for entry in self.instance.all_logs(run_id):
            if entry.dagster_event is not None:
                first.setdefault(entry.dagster_event.event_type, entry.timestamp)
        return first

    def succeeded_steps(self, run_id: str) -> list[str]:
        records = self.instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_SUCCESS
        ).records
        return sorted(record.event_log_entry.step_key for record in records)


@contextmanager
def open_bench(tasks: list[dict]) -> Iterator[tuple[Bench, Catalog]]:
    """A fresh instance and the production code location serving ``tasks``."""
    catalog = parse_catalog({"tasks": tasks}, "bench catalog")
    with tempfile.TemporaryDirectory(prefix="zq_bench_sched_") as scratch:
        catalog_file = Path(scratch) / "tasks.yaml"
        catalog_file.write_text(catalog_files.catalog_text(tasks))
        home = Path(scratch) / "dagster_home"
        settings = {
            "DAGSTER_HOME": str(home),
            ENV_PG_URL: None,
            ENV_TASKS_FILE: str(catalog_file),
            ENV_WAREHOUSE_URL: f"sqlite:///{Path(scratch) / 'warehouse.db'}",
            ENV_TUSHARE_TOKEN: None,
        }
        with environment(settings):
            instance = dg.DagsterInstance.from_config(str(prepare_home(home)))
            target = WorkspaceFileTarget(paths=[str(WORKSPACE_FILE)])
            with instance, WorkspaceProcessContext(instance, target) as workspace:
                bench = Bench(instance, workspace, Path(scratch))
                try:
                    yield bench, catalog
                finally:
                    bench.operations.close()


# -- the cases ----------------------------------------------------------------------------


class TickSides:
    """The tick figure's two sides, one run each call: a due tick through the scheduler,
    the queue and the launcher, and the same job by ``execute_in_process``."""

    def __init__(self, bench: Bench, catalog: Catalog):
        self.bench, self.task = bench, catalog.tasks[TICK_TASK]
        self.job = catalog_job(self.task)
        bench.only_tick_schedule()
        # The first iteration records when the schedule started; no tick is due yet.
        self.start = dt.datetime.now(dt.UTC)
        self.ticks = 0
        bench.scheduler_iteration(self.start)
        if bench.task_run_ids(TICK_TASK):
            raise AssertionError("the first scheduler iteration already started a run")

    def tick(self) -> Sample:
        """Seconds from a due tick to the run's first STEP_START."""
        self.ticks += 1
        before = self.bench.task_run_ids(TICK_TASK)
        ticked_at = time.time()
        self.bench.scheduler_iteration(self.start + dt.timedelta(minutes=self.ticks))
        new = self.bench.task_run_ids(TICK_TASK) - before
        if len(new) != 1:
            raise AssertionError(f"tick {self.ticks} started {len(new)} runs, expected one")
        (run_id,) = new
        self.bench.run_to_end(run_id, [TICK_TASK])
        return Sample(phases(self.bench.timeline(run_id), ticked_at)["to_first_step"])

    def direct(self) -> Sample:
        """Seconds from ``execute_in_process`` to the run's first STEP_START."""
        called_at = time.time()
        result = self.job.execute_in_process(
            run_config=QUIET_RUN_CONFIG, instance=self.bench.instance, raise_on_error=False
        )
        if not result.success:
            raise RuntimeError(f"execute_in_process run {result.run_id} failed")
        return Sample(
            self.bench.timeline(result.run_id)[dg.DagsterEventType.STEP_START] - called_at
        )


def catalog_job(task) -> dg.JobDefinition:
    """The task's job built in this process from the catalog and resources of the
    environment, for the baseline that runs it with no queue or run process."""
    definitions = dg.Definitions.merge(build_resource_definitions(), build_catalog_definitions())
    return definitions.resolve_job_def(job_name(task.name))


PHASES = (
    ("to_enqueued", dg.DagsterEventType.RUN_ENQUEUED),
    ("to_launched", dg.DagsterEventType.RUN_STARTING),
    ("to_run_start", dg.DagsterEventType.RUN_START),
    ("to_first_step", dg.DagsterEventType.STEP_START),
    ("to_success", dg.DagsterEventType.RUN_SUCCESS),
)


def phases(timeline: Mapping[dg.DagsterEventType, float], since: float) -> dict[str, float | None]:
    """Seconds from ``since`` to each milestone of the run (None: it never came)."""
    return {key: timeline[event] - since if event in timeline else None for key, event in PHASES}


def workflow_seconds(bench: Bench, catalog: Catalog, executor: str, members: int) -> Sample:
    """Seconds from submitting the workflow to the queue to its RUN_SUCCESS."""
    submitted_at = time.time()
    run_id = bench.operations.trigger(catalog, workflow_name(executor, members), {})
    bench.run_to_end(run_id, [noop_name(index) for index in range(members)])
    return Sample(phases(bench.timeline(run_id), submitted_at)["to_success"])


TICK_ID = "scheduling.tick_vs_execute_in_process"


def workflow_figure_id(members: int, executor: str) -> str:
    return f"scheduling.workflow_{members}_vs_1_{executor}"


def figures(size: str = "default", wanted: Wanted = every_figure) -> Iterator[Figure]:
    """The tick figure and one workflow figure per executor of ``size``; the instance and
    the code server, the tick's schedule and each executor's workers only when wanted."""
    members = SIZES[size]["members"]
    tick_wanted = wanted(TICK_ID)
    cases = [
        case
        for case in EXECUTOR_CASES
        if case.name in SIZES[size]["executors"] and wanted(workflow_figure_id(members, case.name))
    ]
    if not (tick_wanted or cases):
        return
    with open_bench(bench_tasks(members)) as (bench, catalog):
        if tick_wanted:
            sides = TickSides(bench, catalog)
            yield Figure(
                id=TICK_ID,
                title="schedule tick -> first step (queue, launch, run process)",
                ours=sides.tick,
                baseline=sides.direct,
                baseline_name="execute_in_process, same job",
                note=f"tick task on {executor_for(sides.task).name}; dagster-daemon adds up to"
                f" {bench.instance.run_coordinator.dequeue_interval_seconds} s of queue polling",
            )
        for case in cases:
            with case.prepared(members, bench.scratch) as reason:
                if reason:
                    print(f"scheduling: executor {case.name} skipped: {reason}", flush=True)
                    continue
                yield Figure(
                    id=workflow_figure_id(members, case.name),
                    title=f"{members}-member parallel no-op workflow, submit -> success,"
                    f" {case.name}",
                    ours=lambda name=case.name: workflow_seconds(bench, catalog, name, members),
                    baseline=lambda name=case.name: workflow_seconds(bench, catalog, name, 1),
                    baseline_name="one-member workflow, same executor",
                    repeats=SIZES[size]["workflow_repeats"],
                    long=case.name != "in_process",
                    note="ratio 1 = the extra members cost nothing",
                )
