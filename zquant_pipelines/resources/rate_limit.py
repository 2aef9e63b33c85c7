"""Per-API calls-per-window budget shared by every process on the machine.

Dagster runs steps in parallel processes, and tushare counts calls per account, so the
budget must be one across processes: each API keeps a sliding-window log of call times in
a small JSON file under the limiter's directory, read and rewritten under a ``filelock``.
A rate-limit reply from the server starts a shared cool-down that every process honours.
Times are wall-clock (``time.time``) because they are compared across processes.
"""

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

_API_NAME = re.compile(r"^[A-Za-z0-9_]+$")
# Upper bound on one sleep while waiting, so a cool-down shortened or lifted by another
# process is noticed without spinning.
_MAX_SLEEP_SECONDS = 1.0


@dataclass
class _Budget:
    call_times: list[float]
    blocked_until: float


class RateLimiter:
    """A sliding-window limiter whose state lives in files under ``directory``."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)

    def acquire(self, api_name: str, calls_per_minute: int, window_seconds: float = 60.0) -> float:
        """Block until ``api_name`` has a free slot in the window, take it, return seconds waited.

        ``window_seconds`` is the "minute": tests and benchmarks scale it down.
        """
        _check_limits(calls_per_minute, window_seconds)
        started = time.monotonic()
        while True:
            wait = self._take_slot(api_name, calls_per_minute, window_seconds)
            if wait == 0.0:
                return time.monotonic() - started
            time.sleep(min(wait, _MAX_SLEEP_SECONDS))

    def seconds_until_free(
        self, api_name: str, calls_per_minute: int, window_seconds: float = 60.0
    ) -> float:
        """Seconds before ``acquire`` would return at once (0.0 when a slot is free now)."""
        _check_limits(calls_per_minute, window_seconds)
        with self._lock(api_name):
            budget = self._read(api_name)
            return _wait_needed(budget, calls_per_minute, window_seconds, time.time())

    def cool_down(self, api_name: str, seconds: float) -> None:
        """Hold every process's calls to ``api_name`` for ``seconds`` from now.

        Used after the server reported the budget exhausted: its window is not ours to see,
        so the only safe assumption is that it frees a whole window later.
        """
        if seconds < 0:
            raise ValueError(f"cool_down seconds must be >= 0, got {seconds!r}")
        with self._lock(api_name):
            budget = self._read(api_name)
            budget.blocked_until = max(budget.blocked_until, time.time() + seconds)
            self._write(api_name, budget)

    def recent_calls(self, api_name: str) -> list[float]:
        """Wall-clock times of the calls still in the log (the last window's)."""
        with self._lock(api_name):
            return list(self._read(api_name).call_times)

    def _take_slot(self, api_name: str, calls_per_minute: int, window_seconds: float) -> float:
        with self._lock(api_name):
            budget = self._read(api_name)
            now = time.time()
            budget.call_times = [t for t in budget.call_times if t > now - window_seconds]
            wait = _wait_needed(budget, calls_per_minute, window_seconds, now)
            if wait == 0.0:
                budget.call_times.append(now)
                self._write(api_name, budget)
            return wait

    def _path(self, api_name: str, suffix: str) -> Path:
        if not _API_NAME.match(api_name):
            raise ValueError(f"api_name must be letters, digits and '_', got {api_name!r}")
        return self.directory / f"{api_name}{suffix}"

    def _lock(self, api_name: str) -> FileLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        return FileLock(self._path(api_name, ".lock"))

    def _read(self, api_name: str) -> _Budget:
        try:
            state = json.loads(self._path(api_name, ".json").read_text())
        except FileNotFoundError:
            return _Budget(call_times=[], blocked_until=0.0)
        return _Budget(
            call_times=[float(t) for t in state["call_times"]],
            blocked_until=float(state["blocked_until"]),
        )

    def _write(self, api_name: str, budget: _Budget) -> None:
        # Write then rename, so a process killed mid-write never leaves a torn file.
        path = self._path(api_name, ".json")
        staging = path.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(
            json.dumps({"call_times": budget.call_times, "blocked_until": budget.blocked_until})
        )
        os.replace(staging, path)


def _wait_needed(
    budget: _Budget, calls_per_minute: int, window_seconds: float, now: float
) -> float:
    in_window = sorted(t for t in budget.call_times if t > now - window_seconds)
    wait = max(0.0, budget.blocked_until - now)
    if len(in_window) >= calls_per_minute:
        # The slot frees when the call that makes the window full drops out of it.
        wait = max(wait, in_window[len(in_window) - calls_per_minute] + window_seconds - now)
    return wait


def _check_limits(calls_per_minute: int, window_seconds: float) -> None:
    if calls_per_minute < 1:
        raise ValueError(f"calls_per_minute must be >= 1, got {calls_per_minute!r}")
    if window_seconds <= 0:
        raise ValueError(f"window_seconds must be > 0, got {window_seconds!r}")
