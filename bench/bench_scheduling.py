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

Run: ``.venv/bin/python -m bench.bench_scheduling [--tick-repeats R] [--workflow-repeats W]
[--members N]``
"""

import argparse
import datetime as dt
import logging
import os
import statistics
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

DEFAULT_TICK_REPEATS = 3
# One round of the workflows: each of 10 multiprocess steps imports the code location, tens
# of seconds on 2 cores; more rounds would break the 10-minute budget of `make bench`.
DEFAULT_WORKFLOW_REPEATS = 1
DEFAULT_MEMBERS = 10
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


def tick_case(bench: Bench, catalog: Catalog, repeats: int) -> dict:
    """Each repeat: one scheduler iteration a minute after the last, then the queue and the
    launcher until the run ends; times from the event log."""
    bench.only_tick_schedule()
    # The first iteration records when the schedule started; no tick is due yet.
    start = dt.datetime.now(dt.UTC)
    bench.scheduler_iteration(start)
    if bench.task_run_ids(TICK_TASK):
        raise AssertionError("the first scheduler iteration already started a run")
    ticks = []
    for repeat in range(1, repeats + 1):
        before = bench.task_run_ids(TICK_TASK)
        ticked_at = time.time()
        bench.scheduler_iteration(start + dt.timedelta(minutes=repeat))
        new = bench.task_run_ids(TICK_TASK) - before
        if len(new) != 1:
            raise AssertionError(f"tick {repeat} started {len(new)} runs, expected one")
        (run_id,) = new
        succeeded = bench.run_to_end(run_id, [TICK_TASK])
        ticks.append(
            {
                "run_id": run_id,
                "succeeded_steps": succeeded,
                "schedule": bench.instance.get_run_by_id(run_id).tags.get(SCHEDULE_TAG),
                "ticked_at": ticked_at,
                **phases(bench.timeline(run_id), ticked_at),
            }
        )
    direct = []
    task = catalog.tasks[TICK_TASK]
    for _ in range(repeats):
        called_at = time.time()
        result = catalog_job(task).execute_in_process(
            run_config=QUIET_RUN_CONFIG, instance=bench.instance, raise_on_error=False
        )
        if not result.success:
            raise RuntimeError(f"execute_in_process run {result.run_id} failed")
        first_step = bench.timeline(result.run_id)[dg.DagsterEventType.STEP_START]
        direct.append({"run_id": result.run_id, "to_first_step": first_step - called_at})
    return {
        "executor": executor_for(task).name,
        "dequeue_interval_seconds": bench.instance.run_coordinator.dequeue_interval_seconds,
        "ticks": ticks,
        "direct": direct,
        "seconds": statistics.median(tick["to_first_step"] for tick in ticks),
        "direct_seconds": statistics.median(run["to_first_step"] for run in direct),
    }


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


def workflow_case(bench: Bench, catalog: Catalog, executor: str, members: int, repeats: int):
    """The N-member and one-member workflows on ``executor``, alternating, each submitted to
    the queue and run to its end; seconds from submit to RUN_SUCCESS."""
    runs: dict[int, list[dict]] = {members: [], 1: []}
    for _ in range(repeats):
        for size in runs:
            name = workflow_name(executor, size)
            submitted_at = time.time()
            run_id = bench.operations.trigger(catalog, name, {})
            succeeded = bench.run_to_end(run_id, [noop_name(index) for index in range(size)])
            timeline = phases(bench.timeline(run_id), submitted_at)
            runs[size].append({"run_id": run_id, "succeeded_steps": succeeded, **timeline})

    def median(size: int) -> float:
        return statistics.median(run["to_success"] for run in runs[size])

    return {
        "members": members,
        "runs": runs[members],
        "one_member_runs": runs[1],
        "seconds": median(members),
        "one_member_seconds": median(1),
    }


def run(
    tick_repeats: int = DEFAULT_TICK_REPEATS,
    workflow_repeats: int = DEFAULT_WORKFLOW_REPEATS,
    members: int = DEFAULT_MEMBERS,
) -> dict:
    """Both cases on one instance and code location; print a table and return the figures."""
    counts = {"tick_repeats": tick_repeats, "workflow_repeats": workflow_repeats}
    for name, value in {**counts, "members": members}.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")
    workflows, skipped = {}, {}
    with open_bench(bench_tasks(members)) as (bench, catalog):
        tick = tick_case(bench, catalog, tick_repeats)
        for case in EXECUTOR_CASES:
            with case.prepared(members, bench.scratch) as reason:
                if reason:
                    print(f"scheduling: executor {case.name} skipped: {reason}", flush=True)
                    skipped[case.name] = reason
                    continue
                workflows[case.name] = workflow_case(
                    bench, catalog, case.name, members, workflow_repeats
                )
    result = {
        **counts,
        "members": members,
        "tick": tick,
        "workflows": workflows,
        "skipped_executors": skipped,
    }
    print_table(result)
    return result


def print_table(result: dict) -> None:
    tick = result["tick"]
    print(
        f"scheduling: median of {result['tick_repeats']} ticks and"
        f" {result['workflow_repeats']} workflow round(s); tick task on {tick['executor']};"
        f" dagster-daemon adds up to {tick['dequeue_interval_seconds']} s of queue polling"
    )
    print(
        "  {:<44}{:>10}{:>10}{:>10}{:>10}{:>10}".format(
            "case", "enqueued", "launched", "run start", "1st step", "success"
        )
    )
    rows = [("tick -> run", run) for run in tick["ticks"]]
    for executor, case in result["workflows"].items():
        rows += [(f"{case['members']} members, {executor}", run) for run in case["runs"]]
        rows += [(f"1 member, {executor}", run) for run in case["one_member_runs"]]
    for name, run in rows:
        cells = "".join(
            f"{run[key]:>9.2f}s" if run[key] is not None else f"{'-':>10}" for key, _ in PHASES
        )
        print(f"  {name:<44}{cells}")
    print(f"  execute_in_process to first step: {tick['direct_seconds']:.3f} s")
    for name, reason in result["skipped_executors"].items():
        print(f"  {name}: skipped ({reason})")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tick-repeats", type=int, default=DEFAULT_TICK_REPEATS)
    parser.add_argument("--workflow-repeats", type=int, default=DEFAULT_WORKFLOW_REPEATS)
    parser.add_argument("--members", type=int, default=DEFAULT_MEMBERS)
    args = parser.parse_args(argv)
    return run(args.tick_repeats, args.workflow_repeats, args.members)


if __name__ == "__main__":
    main()
