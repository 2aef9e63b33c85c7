"""The file-backed limiter: one budget per API, shared by every process using the directory."""

import multiprocessing
import time

import pytest

from zquant_pipelines.resources.rate_limit import RateLimiter

LONG_WINDOW = 60.0
# Room for a slow machine between taking slots and checking them: far below LONG_WINDOW.
SLACK_SECONDS = 10.0


def test_budget_full_after_calls_per_window(tmp_path):
    limiter = RateLimiter(tmp_path)
    for _ in range(3):
        limiter.acquire("daily", 3, LONG_WINDOW)

    assert len(limiter.recent_calls("daily")) == 3
    assert limiter.seconds_until_free("daily", 3, LONG_WINDOW) > LONG_WINDOW - SLACK_SECONDS
    assert limiter.seconds_until_free("daily", 4, LONG_WINDOW) == 0.0
    assert limiter.seconds_until_free("adj_factor", 3, LONG_WINDOW) == 0.0


def test_call_past_budget_waits_until_oldest_leaves_window(tmp_path):
    limiter = RateLimiter(tmp_path)
    window = 0.3
    limiter.acquire("daily", 2, window)
    [first_taken] = limiter.recent_calls("daily")
    limiter.acquire("daily", 2, window)
    waited = limiter.acquire("daily", 2, window)

    third_taken = max(limiter.recent_calls("daily"))
    assert waited > 0.0
    assert third_taken - first_taken >= window
    assert first_taken not in limiter.recent_calls("daily")


def test_cool_down_holds_every_caller(tmp_path):
    RateLimiter(tmp_path).cool_down("daily", LONG_WINDOW)

    other_handle = RateLimiter(tmp_path)
    assert other_handle.seconds_until_free("daily", 100, 1.0) > LONG_WINDOW - SLACK_SECONDS
    assert other_handle.seconds_until_free("trade_cal", 100, 1.0) == 0.0


@pytest.mark.parametrize(
    ("api_name", "calls", "window", "named"),
    [
        ("daily", 0, 1.0, "calls_per_minute"),
        ("daily", 5, 0.0, "window_seconds"),
        ("../daily", 5, 1.0, "api_name"),
    ],
)
def test_bad_arguments_are_named(tmp_path, api_name, calls, window, named):
    with pytest.raises(ValueError, match=named):
        RateLimiter(tmp_path).acquire(api_name, calls, window)


def _take_slots(directory: str, count: int, calls: int, window: float, taken_at) -> None:
    limiter = RateLimiter(directory)
    for _ in range(count):
        limiter.acquire("daily", calls, window)
        taken_at.put(time.time())


def _run_in_two_processes(directory, count, calls, window) -> list[float]:
    context = multiprocessing.get_context("spawn")
    taken_at = context.Queue()
    workers = [
        context.Process(target=_take_slots, args=(str(directory), count, calls, window, taken_at))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    times = [taken_at.get(timeout=30) for _ in range(2 * count)]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    return sorted(times)


def test_two_processes_share_one_budget(tmp_path):
    _run_in_two_processes(tmp_path, count=3, calls=6, window=LONG_WINDOW)

    limiter = RateLimiter(tmp_path)
    assert len(limiter.recent_calls("daily")) == 6
    # Each process took 3 of 6: only a shared budget is full now.
    assert limiter.seconds_until_free("daily", 6, LONG_WINDOW) > LONG_WINDOW - SLACK_SECONDS


def test_two_processes_never_exceed_budget_in_a_window(tmp_path):
    calls, window = 3, 0.4
    times = _run_in_two_processes(tmp_path, count=5, calls=calls, window=window)

    # Any calls+1 slots span at least a window; the times were read after acquire returned,
    # so allow half a window for a process descheduled in between.
    spans = [times[i + calls] - times[i] for i in range(len(times) - calls)]
    assert min(spans) >= window / 2
