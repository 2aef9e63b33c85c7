"""Step processes that end when their run worker is gone.

The multiprocess executor (zquant_pipelines/executors.py) forks every step process from a
forkserver, a child of the run worker, and names this module first among the forkserver's
preloads: importing it there notes the run worker (the forkserver's parent) and registers a
hook that runs in each step process right after the fork.

When the run worker dies (kill -9, out of memory), nothing else stops its steps: the
forkserver lives on as long as any step holds its pipe, and the steps would keep writing to
the warehouse after their run was marked FAILURE and overlap the task's next run. The hook
starts a thread that checks every POLL_SECONDS that the step's forkserver still lives and is
still the run worker's child (an exiting parent's children are re-parented at once, before
anyone reaps it). Once not, the step kills every script it runs with every process those
started, and every other process it started, then itself. The kernel's parent-death signal
would only tell the step that its forkserver died, and would leave it no time for clean-up.

Import this module in the forkserver only: anywhere else it would watch the wrong processes.
"""

import os
import signal
import threading
import time

import psutil

from zquant_pipelines.process_tree import end_everything

POLL_SECONDS = 0.1
# The forkserver imports this module: it is this process, its parent the run worker.
FORKSERVER_PID = os.getpid()
RUN_WORKER_PID = os.getppid()


def forkserver_serves_run_worker(forkserver: psutil.Process) -> bool:
    try:
        return forkserver.ppid() == RUN_WORKER_PID
    except psutil.NoSuchProcess:
        return False


def _watch(forkserver: psutil.Process) -> None:
    while os.getppid() == forkserver.pid and forkserver_serves_run_worker(forkserver):
        time.sleep(POLL_SECONDS)
    try:
        end_everything()
    finally:
        os.kill(os.getpid(), signal.SIGKILL)


def _start_watchdog() -> None:
    if os.getppid() != FORKSERVER_PID:
        return  # a fork inside a step: the step ends its own children
    forkserver = psutil.Process(FORKSERVER_PID)
    threading.Thread(
        target=_watch, args=(forkserver,), name="zquant-step-watchdog", daemon=True
    ).start()


os.register_at_fork(after_in_child=_start_watchdog)
