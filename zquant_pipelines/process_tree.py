"""Process trees that end together: a script with every process it started, including those
that left its process group or session, and everything a step process started when the step
has to end at once. Plain psutil and Linux's prctl, no Dagster.

A script's descendant can escape a kill of its process group with ``setsid``, and once its
parent exits it is re-parented away from the script's tree. Two things keep it in reach:

- the process that starts scripts becomes a *child subreaper* (Linux ``PR_SET_CHILD_SUBREAPER``):
  an orphaned descendant is re-parented to it instead of to init, so it stays among its
  descendants (any child of it born after the script is taken for one: that process starts
  nothing else meanwhile);
- ``ProcessTree`` samples the tree while the script runs and remembers every process it saw
  (psutil.Process objects, which refuse to signal a pid that was reused), plus every process
  of the script's session.

Should the process that started the script die at once (kill -9), a guard process it started
beside the script (``python -m zquant_pipelines.process_tree PID``, ``start_guard``) sees its
parent go and ends the script's tree.
"""

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable

import psutil

# <linux/prctl.h>
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# How long a tree gets to exit after SIGTERM before SIGKILL.
DEFAULT_GRACE_SECONDS = 10.0
# How often a guard samples its tree and checks its parent.
GUARD_POLL_SECONDS = 0.1

# The trees alive in this process, ended by end_everything when the process must go at once.
_live_trees: set["ProcessTree"] = set()
_live_trees_lock = threading.Lock()


def _prctl(option: int, value: int) -> bool:
    """Call prctl(2); False where there is none (not Linux) or it refused."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(option, value, 0, 0, 0) == 0


def become_subreaper() -> bool:
    """Orphaned descendants of this process are re-parented to it, not to init (Linux)."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(signal_number: int = signal.SIGKILL) -> bool:
    """The kernel sends ``signal_number`` to this process when its parent exits (Linux)."""
    return _prctl(PR_SET_PDEATHSIG, signal_number)


def descendants(process: psutil.Process) -> list[psutil.Process]:
    try:
        # is_running compares create times: a reused pid has other children.
        return process.children(recursive=True) if process.is_running() else []
    except psutil.NoSuchProcess:
        return []


def session_members(session_id: int, not_before: float) -> list[psutil.Process]:
    """The processes of a session created at or after ``not_before`` (a session id is a pid,
    which the system may reuse once the session is gone)."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session_id and process.create_time() >= not_before:
                members.append(process)
        except (psutil.NoSuchProcess, ProcessLookupError, PermissionError):
            continue
    return members


def end_processes(processes: Iterable[psutil.Process], grace_seconds: float) -> None:
    """SIGTERM every process that still runs, wait up to ``grace_seconds``, SIGKILL the rest,
    and reap those that are our children."""
    alive = []
    for process in processes:
        try:
            if grace_seconds:
                process.terminate()
            else:
                process.kill()
            alive.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    _, alive = psutil.wait_procs(alive, timeout=grace_seconds or 0)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=1)


class ProcessTree:
    """A process and every descendant seen while it ran, ended together by ``end``."""

    def __init__(self, pid: int):
        self.owner = psutil.Process()
        self.root = psutil.Process(pid)
        self.session_id = os.getsid(pid)
        self.created = self.root.create_time()
        self.seen: dict[int, psutil.Process] = {pid: self.root}
        with _live_trees_lock:
            _live_trees.add(self)

    def sample(self) -> None:
        """Remember the descendants of the root and of every process seen so far."""
        for process in list(self.seen.values()):
            for child in descendants(process):
                self.seen.setdefault(child.pid, child)

    def adopted(self) -> list[psutil.Process]:
        """Orphans re-parented to this process (a subreaper) since the root started, with
        their descendants: a descendant whose parent exited before any sample saw it."""
        found = []
        for child in self.owner.children():
            try:
                if child.create_time() >= self.created:
                    found += [child, *descendants(child)]
            except psutil.NoSuchProcess:
                continue
        return found

    def members(self) -> dict[int, psutil.Process]:
        """Every process seen, adopted, or now in the root's session."""
        self.sample()
        self.seen |= {process.pid: process for process in self.adopted()}
        session = session_members(self.session_id, not_before=self.created)
        return {**{process.pid: process for process in session}, **self.seen}

    def end(self, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        """End the root, every process seen and every process of the root's session."""
        end_processes(self.members().values(), grace_seconds)
        with _live_trees_lock:
            _live_trees.discard(self)


def end_everything() -> None:
    """Kill every live tree of this process and every descendant of it, at once (the process
    is about to die and must leave nothing behind). What is known is killed first, before
    the slower search for the rest: every moment a script still writes counts."""
    with _live_trees_lock:
        trees = list(_live_trees)
    end_processes([process for tree in trees for process in tree.seen.values()], 0)
    processes = {}
    for tree in trees:
        processes |= tree.members()
    processes |= {child.pid: child for child in descendants(psutil.Process())}
    end_processes(processes.values(), grace_seconds=0)


class ParentGone(Exception):
    """The guard's parent exited (the kernel's parent-death signal)."""


def _parent_gone(signal_number, frame) -> None:
    raise ParentGone


def guard(pid: int) -> None:
    """Sample the tree of ``pid`` until this guard's parent is gone, then end the tree at once.
    The kernel tells the guard the moment its parent dies (a check every GUARD_POLL_SECONDS
    covers a death before the guard asked); the parent kills the guard when it ends the
    tree itself."""
    parent = os.getppid()
    try:
        tree = ProcessTree(pid)
    except psutil.NoSuchProcess:
        return  # the script is done; its parent ends what it left
    signal.signal(signal.SIGTERM, _parent_gone)
    die_with_parent(signal.SIGTERM)
    try:
        while os.getppid() == parent:
            tree.sample()
            time.sleep(GUARD_POLL_SECONDS)
    except ParentGone:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # nothing may cut the clean-up short
    end_everything()


def start_guard(pid: int) -> subprocess.Popen:
    """A guard process of the tree of ``pid``: ends it if this process dies first."""
    return subprocess.Popen([sys.executable, "-m", __name__, str(pid)])


if __name__ == "__main__":
    guard(int(sys.argv[1]))
