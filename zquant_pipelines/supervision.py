"""Who notices that a run's worker process died, and fails the run.

A run's worker is a process the code server starts. Dagster's DefaultRunLauncher cannot tell
whether it still lives, so run monitoring ignored a dead worker and only the code server that
watched it failed the run: with both killed, the run stayed STARTED for the 6 h of
``max_runtime_seconds`` and held its task's one-run slot all that time.

``ZquantRunLauncher`` (dagster.yaml ``run_launcher``) is the DefaultRunLauncher that can check
a worker's health, so the daemon's run monitoring (every ``poll_interval_seconds``) fails a
run whose worker is gone. ``fail_runs_with_dead_workers`` does the same from any process, for
commands that cannot wait for the daemon.

How a dead worker is recognised: the worker reports its pid in its "Started process for run"
engine event, and the launcher tags the run with the host it started on (the code server's
host, when the launcher reaches the code server over loopback or a socket). On that host the
worker is gone when no process has that pid, the process is a zombie, or it was created after
the event (the pid was reused); its step processes still on this host are then killed before
the run is failed. From another host (a code server in another container) the
worker cannot be seen: it is reported running, and the code server that watches it, or
``max_runtime_seconds`` at the last, fails its run.
"""

import json
import socket

import dagster as dg
import psutil
from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

from zquant_pipelines.process_tree import descendants, end_processes

RUN_WORKER_HOST_TAG = "zquant/run_worker_host"
STARTED_PROCESS_PREFIX = "Started process for run (pid: "
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")
# Clock resolution of a process's create time (jiffies) against the event's time.time().
CREATE_TIME_SLACK_SECONDS = 1.0


def this_host() -> str:
    return socket.gethostname()


def launched_on_this_host(grpc_info: str | None) -> bool:
    """Whether the code server named by a run's grpc_info tag is on the launcher's host."""
    if not grpc_info:
        return False
    info = json.loads(grpc_info)
    return bool(info.get("socket")) or info.get("host") in LOOPBACK_HOSTS


def reported_processes(
    instance: dg.DagsterInstance, run_id: str, event_type: DagsterEventType, prefix: str = ""
) -> list[tuple[int, float]]:
    """The pids the run's processes reported in events of ``event_type`` (whose message starts
    with ``prefix``), each with when it was reported."""
    found = []
    for entry in instance.all_logs(run_id, of_type=event_type):
        event = entry.dagster_event
        if event and (event.message or "").startswith(prefix):
            metadata = event.event_specific_data.metadata
            if "pid" in metadata:
                found.append((int(metadata["pid"].value), entry.timestamp))
    return found


def run_worker_started(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid the run worker reported when it started, and when it reported it."""
    started = reported_processes(
        instance, run_id, DagsterEventType.ENGINE_EVENT, STARTED_PROCESS_PREFIX
    )
    return started[-1] if started else None


def process_is_gone(pid: int, started_by: float) -> bool:
    """No process ``pid`` that existed at ``started_by`` still runs (a zombie is gone)."""
    try:
        process = psutil.Process(pid)
        reused = process.create_time() > started_by + CREATE_TIME_SLACK_SECONDS
        return reused or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def end_step_processes(instance: dg.DagsterInstance, run_id: str) -> list[int]:
    """Kill the run's step processes still on this host, with every process they started;
    their pids. Each step ends itself when its run worker is gone
    (zquant_pipelines/step_watchdog.py): this is for one that could not."""
    leftovers = []
    for pid, reported_at in reported_processes(
        instance, run_id, DagsterEventType.STEP_WORKER_STARTED
    ):
        if not process_is_gone(pid, reported_at):
            step = psutil.Process(pid)
            leftovers += [step, *descendants(step)]
    end_processes(leftovers, grace_seconds=0)
    return [process.pid for process in leftovers]


def run_worker_health(instance: dg.DagsterInstance, run: dg.DagsterRun) -> CheckRunHealthResult:
    """FAILED when the run's worker was started on this host and is gone; RUNNING otherwise."""
    host = run.tags.get(RUN_WORKER_HOST_TAG)
    if host != this_host():
        where = f"on host {host}" if host else "on a host not recorded"
        return CheckRunHealthResult(
            WorkerStatus.RUNNING, f"run worker {where}: cannot be checked from {this_host()}"
        )
    started = run_worker_started(instance, run.run_id)
    if started is None:
        return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker has not reported its pid")
    pid, started_at = started
    if process_is_gone(pid, started_at):
        # Before the run is failed: once it is, nothing of it may still write.
        ended = end_step_processes(instance, run.run_id)
        steps = f"; killed its step processes {ended}" if ended else ""
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"run worker (pid {pid}) is gone{steps}", run_worker_id=str(pid)
        )
    return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))


def fail_runs_with_dead_workers(instance: dg.DagsterInstance) -> list[str]:
    """Mark FAILURE every STARTED run whose worker is gone from this host; their ids.

    What run monitoring does for these runs, for a process that cannot wait for the daemon
    (a local command about to start a task's run)."""
    failed = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        health = run_worker_health(instance, run)
        if health.status == WorkerStatus.FAILED:
            instance.report_run_failed(run, f"Detected run worker status {health}.")
            failed.append(run.run_id)
    return failed


class ZquantRunLauncher(dg.DefaultRunLauncher):
    """Dagster's DefaultRunLauncher (runs start in a process of the code server) that can
    check a run worker's health: run monitoring fails a run whose worker is gone."""

    def launch_run(self, context) -> None:
        super().launch_run(context)
        run = self._instance.get_run_by_id(context.dagster_run.run_id)
        if run and launched_on_this_host(run.tags.get(GRPC_INFO_TAG)):
            self._instance.add_run_tags(run.run_id, {RUN_WORKER_HOST_TAG: this_host()})

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        return run_worker_health(self._instance, run)
