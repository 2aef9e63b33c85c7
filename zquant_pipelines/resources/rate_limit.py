"""Per-API calls-per-window budget shared by every process that uses the same store.

Dagster runs steps in parallel processes, possibly on several machines (Celery workers),
and tushare counts calls per account, so the budget must be one across all of them. Two
stores keep the same state, a sliding-window log of call times per API plus the time until
which a cool-down holds every caller:

- ``FileRateLimiter``: small JSON files under a directory, read and rewritten under a
  ``filelock``; shared by the processes of one machine. Times are wall-clock
  (``time.time``) because they are compared across processes.
- ``RedisRateLimiter``: a sorted set and a key per API in Redis, changed by Lua scripts so
  every check-and-take is atomic; shared by every machine reaching the server. Times are
  the Redis server's (``TIME``), because machines' clocks disagree.

``RateLimiter`` holds what both share: argument checks, the waiting loop, and the wait a
budget implies (``_wait_needed``). ``rate_limiter_for`` picks the store.
"""

import contextlib
import json
import os
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
from filelock import FileLock

from zquant_pipelines.constants import ENV_RATE_LIMIT_URL

DEFAULT_KEY_PREFIX = "zquant:ratelimit:"

_API_NAME = re.compile(r"^[A-Za-z0-9_]+$")
# Upper bound on one sleep while waiting, so a cool-down shortened or lifted by another
# process is noticed without spinning.
_MAX_SLEEP_SECONDS = 1.0
# Redis keys outlive the last time they matter by this much, then expire.
_KEY_EXPIRY_MARGIN_MS = 1000
# Bounds every Redis round trip, so an unreachable server fails a step instead of hanging it.
_REDIS_TIMEOUT_SECONDS = 10.0


class RateLimitStoreError(RuntimeError):
    """The shared budget's store could not be used; the message never holds a password."""


@dataclass
class _Budget:
    call_times: list[float]
    blocked_until: float


class RateLimiter(ABC):
    """One calls-per-window budget per API, shared by every holder of the same store."""

    def acquire(self, api_name: str, calls_per_minute: int, window_seconds: float = 60.0) -> float:
        """Block until ``api_name`` has a free slot in the window, take it, return seconds waited.

        ``window_seconds`` is the "minute": tests and benchmarks scale it down.
        """
        _check_limits(api_name, calls_per_minute, window_seconds)
        started = time.monotonic()
        while True:
            wait = self._take_slot(api_name, calls_per_minute, window_seconds)
            if wait is None:
                return time.monotonic() - started
            time.sleep(min(wait, _MAX_SLEEP_SECONDS))

    def seconds_until_free(
        self, api_name: str, calls_per_minute: int, window_seconds: float = 60.0
    ) -> float:
        """Seconds before ``acquire`` would return at once (0.0 when a slot is free now)."""
        _check_limits(api_name, calls_per_minute, window_seconds)
        budget, now = self._read_budget(api_name)
        return _wait_needed(budget, calls_per_minute, window_seconds, now)

    def cool_down(self, api_name: str, seconds: float) -> None:
        """Hold every caller's calls to ``api_name`` for ``seconds`` from now.

        Used after the server reported the budget exhausted: its window is not ours to see,
        so the only safe assumption is that it frees a whole window later.
        """
        _check_api_name(api_name)
        if seconds < 0:
            raise ValueError(f"cool_down seconds must be >= 0, got {seconds!r}")
        self._block(api_name, seconds)

    def recent_calls(self, api_name: str) -> list[float]:
        """Times of the calls still in the log (the last window's), on the store's clock."""
        _check_api_name(api_name)
        return sorted(self._read_budget(api_name)[0].call_times)

    @abstractmethod
    def _take_slot(
        self, api_name: str, calls_per_minute: int, window_seconds: float
    ) -> float | None:
        """Atomically: take a slot and return None, or take nothing and return the wait."""

    @abstractmethod
    def _read_budget(self, api_name: str) -> tuple[_Budget, float]:
        """The budget as stored, and the store clock's "now"."""

    @abstractmethod
    def _block(self, api_name: str, seconds: float) -> None:
        """Atomically push the budget's ``blocked_until`` to at least now + ``seconds``."""


class FileRateLimiter(RateLimiter):
    """The budget in files under ``directory``: shared by the processes of one machine."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)

    def _take_slot(
        self, api_name: str, calls_per_minute: int, window_seconds: float
    ) -> float | None:
        with self._lock(api_name):
            budget = self._read(api_name)
            now = time.time()
            budget.call_times = [t for t in budget.call_times if t > now - window_seconds]
            wait = _wait_needed(budget, calls_per_minute, window_seconds, now)
            if wait > 0.0:
                return wait
            budget.call_times.append(now)
            self._write(api_name, budget)
            return None

    def _read_budget(self, api_name: str) -> tuple[_Budget, float]:
        with self._lock(api_name):
            return self._read(api_name), time.time()

    def _block(self, api_name: str, seconds: float) -> None:
        with self._lock(api_name):
            budget = self._read(api_name)
            budget.blocked_until = max(budget.blocked_until, time.time() + seconds)
            self._write(api_name, budget)

    def _path(self, api_name: str, suffix: str) -> Path:
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


# Both scripts read the clock with TIME: the server's clock is the one every machine shares.
# Times travel as "%.6f" strings: Lua numbers would be truncated to integers in replies.
_NOW_LUA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
"""

# KEYS: the API's call log (sorted set, score = call time), its blocked-until.
# ARGV: calls per window, window seconds, a member unique to this call, expiry margin in ms.
# Takes a slot when the budget is neither blocked nor full (``_wait_needed`` would say 0)
# and returns {1}; otherwise returns {0, now, blocked_until, call times...} for
# ``_wait_needed`` to price. A calls-per-window of 0 only reads, without trimming the log.
_TAKE_SLOT_LUA = (
    _NOW_LUA
    + """
local calls = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local blocked_until = redis.call('GET', KEYS[2]) or '0'
if calls > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.6f', now - window))
    if tonumber(blocked_until) <= now and redis.call('ZCARD', KEYS[1]) < calls then
        redis.call('ZADD', KEYS[1], string.format('%.6f', now), ARGV[3])
        -- Every entry is out of every caller's window once the longest window has passed.
        local ttl = math.ceil(window * 1000) + tonumber(ARGV[4])
        if redis.call('PTTL', KEYS[1]) < ttl then
            redis.call('PEXPIRE', KEYS[1], ttl)
        end
        return {1}
    end
end
local reply = {0, string.format('%.6f', now), blocked_until}
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 2, #entries, 2 do
    reply[#reply + 1] = entries[i]
end
return reply
"""
)

# KEYS[1]: blocked-until. ARGV: seconds to block, expiry margin in ms.
_BLOCK_LUA = (
    _NOW_LUA
    + """
local seconds = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if now + seconds > current then
    redis.call('SET', KEYS[1], string.format('%.6f', now + seconds),
               'PX', math.ceil(seconds * 1000) + tonumber(ARGV[2]))
end
return 1
"""
)


class RedisRateLimiter(RateLimiter):
    """The budget in Redis at ``url``, under ``key_prefix``: shared by every machine.

    ``url`` may hold a password: it is kept out of repr and errors, which name the server
    by host and port only.
    """

    def __init__(self, url: str, key_prefix: str = DEFAULT_KEY_PREFIX):
        try:
            self._client = redis.Redis.from_url(
                url,
                socket_timeout=_REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
            )
        except ValueError as error:  # redis-py's message quotes the scheme rules, not the URL
            raise RateLimitStoreError(f"{ENV_RATE_LIMIT_URL} is not a Redis URL: {error}") from None
        self.key_prefix = key_prefix
        self._take_script = self._client.register_script(_TAKE_SLOT_LUA)
        self._block_script = self._client.register_script(_BLOCK_LUA)

    def __repr__(self) -> str:
        return f"RedisRateLimiter({self._server_name()!r}, key_prefix={self.key_prefix!r})"

    def _take_slot(
        self, api_name: str, calls_per_minute: int, window_seconds: float
    ) -> float | None:
        reply = self._run_take(api_name, calls_per_minute, window_seconds)
        if reply[0] == 1:
            return None
        budget, now = _budget_from_reply(reply)
        return _wait_needed(budget, calls_per_minute, window_seconds, now)

    def _read_budget(self, api_name: str) -> tuple[_Budget, float]:
        return _budget_from_reply(self._run_take(api_name, 0, 0.0))

    def _run_take(self, api_name: str, calls_per_minute: int, window_seconds: float) -> list:
        keys = [self._key(api_name, "calls"), self._key(api_name, "blocked_until")]
        args = [calls_per_minute, repr(window_seconds), uuid.uuid4().hex, _KEY_EXPIRY_MARGIN_MS]
        with self._store_errors():
            return self._take_script(keys=keys, args=args)

    def _block(self, api_name: str, seconds: float) -> None:
        with self._store_errors():
            self._block_script(
                keys=[self._key(api_name, "blocked_until")],
                args=[repr(float(seconds)), _KEY_EXPIRY_MARGIN_MS],
            )

    def _key(self, api_name: str, part: str) -> str:
        return f"{self.key_prefix}{api_name}:{part}"

    def _server_name(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        if "path" in kwargs:
            return f"unix:{kwargs['path']}"
        return f"{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db', 0)}"

    @contextlib.contextmanager
    def _store_errors(self) -> Iterator[None]:
        """Turn a Redis failure into a ``RateLimitStoreError`` that names the setting.

        The foreign exception is not chained: its text or arguments could carry the password.
        """
        try:
            yield
        except redis.RedisError as error:
            text = str(error)
            password = self._client.connection_pool.connection_kwargs.get("password")
            if password:
                text = text.replace(password, "***")
            raise RateLimitStoreError(
                f"rate-limit store Redis at {self._server_name()} ({ENV_RATE_LIMIT_URL}) "
                f"failed: {type(error).__name__}: {text}"
            ) from None


def _budget_from_reply(reply: list) -> tuple[_Budget, float]:
    now, blocked_until, *call_times = (float(value) for value in reply[1:])
    return _Budget(call_times=call_times, blocked_until=blocked_until), now


def rate_limiter_for(
    url: str | None, directory: str | os.PathLike[str], key_prefix: str = DEFAULT_KEY_PREFIX
) -> RateLimiter:
    """The Redis budget at ``url`` when one is given, else the file budget under ``directory``."""
    if url:
        return RedisRateLimiter(url, key_prefix=key_prefix)
    return FileRateLimiter(directory)


def _wait_needed(
    budget: _Budget, calls_per_minute: int, window_seconds: float, now: float
) -> float:
    in_window = sorted(t for t in budget.call_times if t > now - window_seconds)
    wait = max(0.0, budget.blocked_until - now)
    if len(in_window) >= calls_per_minute:
        # The slot frees when the call that makes the window full drops out of it.
        wait = max(wait, in_window[len(in_window) - calls_per_minute] + window_seconds - now)
    return wait


def _check_api_name(api_name: str) -> None:
    # Names become file names and Redis keys: keep them to one plain path/key segment.
    if not _API_NAME.match(api_name):
        raise ValueError(f"api_name must be letters, digits and '_', got {api_name!r}")


def _check_limits(api_name: str, calls_per_minute: int, window_seconds: float) -> None:
    _check_api_name(api_name)
    if calls_per_minute < 1:
        raise ValueError(f"calls_per_minute must be >= 1, got {calls_per_minute!r}")
    if window_seconds <= 0:
        raise ValueError(f"window_seconds must be > 0, got {window_seconds!r}")
