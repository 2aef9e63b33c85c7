"""The limiters: one budget per API, shared by every handle on the same store.

Semantics are checked on both stores (files under a directory, and the real Redis under a
key prefix of the test's own); what only one store has is checked on that one.
"""

import functools
import multiprocessing
import socket
import time

import pytest
import redis

from zquant_pipelines.constants import ENV_RATE_LIMIT_URL
from zquant_pipelines.resources.rate_limit import (
    DEFAULT_KEY_PREFIX,
    FileRateLimiter,
    RateLimitStoreError,
    RedisRateLimiter,
    rate_limiter_for,
)

LONG_WINDOW = 60.0
# Room for a slow machine between taking slots and checking them: far below LONG_WINDOW.
SLACK_SECONDS = 10.0
PASSWORD = "s3cret-redis-password"


@pytest.fixture(params=["file", "redis"])
def open_limiter(request, tmp_path):
    """Opens handles on one store (each call a new handle, as another process would).

    A ``functools.partial`` of the class, so spawned processes can receive it.
    """
    if request.param == "file":
        return functools.partial(FileRateLimiter, tmp_path)
    url = request.getfixturevalue("redis_url")
    return functools.partial(
        RedisRateLimiter, url, key_prefix=request.getfixturevalue("redis_key_prefix")
    )


def test_budget_full_after_calls_per_window(open_limiter):
    limiter = open_limiter()
    for _ in range(3):
        limiter.acquire("daily", 3, LONG_WINDOW)

    assert len(limiter.recent_calls("daily")) == 3
    assert limiter.seconds_until_free("daily", 3, LONG_WINDOW) > LONG_WINDOW - SLACK_SECONDS
    assert limiter.seconds_until_free("daily", 4, LONG_WINDOW) == 0.0
    assert limiter.seconds_until_free("adj_factor", 3, LONG_WINDOW) == 0.0


def test_call_past_budget_waits_until_oldest_leaves_window(open_limiter):
    limiter = open_limiter()
    window = 0.3
    limiter.acquire("daily", 2, window)
    [first_taken] = limiter.recent_calls("daily")
    limiter.acquire("daily", 2, window)
    waited = limiter.acquire("daily", 2, window)

    third_taken = max(limiter.recent_calls("daily"))
    assert waited > 0.0
    assert third_taken - first_taken >= window
    assert first_taken not in limiter.recent_calls("daily")


def test_cool_down_holds_every_caller(open_limiter):
    open_limiter().cool_down("daily", LONG_WINDOW)

    other_handle = open_limiter()
    assert other_handle.seconds_until_free("daily", 100, 1.0) > LONG_WINDOW - SLACK_SECONDS
    assert other_handle.seconds_until_free("trade_cal", 100, 1.0) == 0.0


def test_cool_down_never_shortens_a_longer_one(open_limiter):
    limiter = open_limiter()
    limiter.cool_down("daily", LONG_WINDOW)
    limiter.cool_down("daily", 0.0)

    assert limiter.seconds_until_free("daily", 100, 1.0) > LONG_WINDOW - SLACK_SECONDS


@pytest.mark.parametrize(
    ("api_name", "calls", "window", "named"),
    [
        ("daily", 0, 1.0, "calls_per_minute"),
        ("daily", 5, 0.0, "window_seconds"),
        ("../daily", 5, 1.0, "api_name"),
        ("daily:calls", 5, 1.0, "api_name"),
    ],
)
def test_bad_arguments_are_named(open_limiter, api_name, calls, window, named):
    with pytest.raises(ValueError, match=named):
        open_limiter().acquire(api_name, calls, window)


def _take_slots(open_limiter, count: int, calls: int, window: float, taken_at) -> None:
    limiter = open_limiter()
    for _ in range(count):
        limiter.acquire("daily", calls, window)
        taken_at.put(time.time())


def _run_in_two_processes(open_limiter, count, calls, window) -> list[float]:
    context = multiprocessing.get_context("spawn")
    taken_at = context.Queue()
    workers = [
        context.Process(target=_take_slots, args=(open_limiter, count, calls, window, taken_at))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    times = [taken_at.get(timeout=30) for _ in range(2 * count)]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    return sorted(times)


def test_two_processes_share_one_budget(open_limiter):
    _run_in_two_processes(open_limiter, count=3, calls=6, window=LONG_WINDOW)

    limiter = open_limiter()
    assert len(limiter.recent_calls("daily")) == 6
    # Each process took 3 of 6: only a shared budget is full now.
    assert limiter.seconds_until_free("daily", 6, LONG_WINDOW) > LONG_WINDOW - SLACK_SECONDS


def test_two_processes_never_exceed_budget_in_a_window(open_limiter):
    calls, window = 3, 0.4
    times = _run_in_two_processes(open_limiter, count=5, calls=calls, window=window)

    # Any calls+1 slots span at least a window; the times were read after acquire returned,
    # so allow half a window for a process descheduled in between.
    spans = [times[i + calls] - times[i] for i in range(len(times) - calls)]
    assert min(spans) >= window / 2


# --- Redis only ---------------------------------------------------------------------------


def test_redis_keys_stay_under_the_prefix_and_expire(redis_url, redis_key_prefix):
    limiter = RedisRateLimiter(redis_url, key_prefix=redis_key_prefix)
    limiter.acquire("daily", 5, 2.0)
    limiter.cool_down("daily", 3.0)

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = sorted(client.scan_iter(match=f"{redis_key_prefix}*"))
    ttls = [client.pttl(key) for key in keys]
    client.close()
    assert keys == [f"{redis_key_prefix}daily:blocked_until", f"{redis_key_prefix}daily:calls"]
    # Each key outlives what it records (3 s cool-down, 2 s window) by a margin, no longer.
    assert 0 < ttls[0] <= 3000 + 1000
    assert 0 < ttls[1] <= 2000 + 1000


def test_redis_call_log_keeps_the_longest_window_alive(redis_url, redis_key_prefix):
    # A caller counting over a long window must not lose calls logged by a short-window one.
    limiter = RedisRateLimiter(redis_url, key_prefix=redis_key_prefix)
    limiter.acquire("daily", 5, 30.0)
    limiter.acquire("daily", 5, 0.5)

    client = redis.Redis.from_url(redis_url)
    ttl = client.pttl(f"{redis_key_prefix}daily:calls")
    client.close()
    assert ttl > 0.5 * 1000 + 1000
    assert len(limiter.recent_calls("daily")) == 2


def test_redis_handles_on_other_prefixes_have_their_own_budget(redis_url, redis_key_prefix):
    RedisRateLimiter(redis_url, key_prefix=redis_key_prefix + "a:").cool_down("daily", 60.0)

    other = RedisRateLimiter(redis_url, key_prefix=redis_key_prefix + "b:")
    assert other.seconds_until_free("daily", 1, 1.0) == 0.0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_redis_names_the_setting_never_the_password():
    port = closed_port()
    limiter = RedisRateLimiter(f"redis://:{PASSWORD}@127.0.0.1:{port}/0")

    with pytest.raises(RateLimitStoreError) as raised:
        limiter.acquire("daily", 5, 1.0)

    message = str(raised.value)
    assert ENV_RATE_LIMIT_URL in message and f"127.0.0.1:{port}" in message
    assert PASSWORD not in message and PASSWORD not in repr(limiter)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_url_that_is_not_redis_names_the_setting_never_the_password():
    with pytest.raises(RateLimitStoreError, match=ENV_RATE_LIMIT_URL) as raised:
        RedisRateLimiter(f"http://user:{PASSWORD}@127.0.0.1:6379/0")

    assert PASSWORD not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "store"),
    [
        ("redis://127.0.0.1:6379/0", RedisRateLimiter),
        (None, FileRateLimiter),
        ("", FileRateLimiter),
    ],
)
def test_rate_limiter_for_picks_redis_only_with_a_url(tmp_path, url, store):
    limiter = rate_limiter_for(url, tmp_path)

    assert type(limiter) is store
    if store is RedisRateLimiter:
        assert limiter.key_prefix == DEFAULT_KEY_PREFIX
