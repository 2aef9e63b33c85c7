"""The measures of task stats, defined once as plain Python: a run's duration, the success
rate, and the mean and nearest-rank p95 of durations.

``history.stats`` computes the mean and p95 in SQL over the run store (local mode), with the
same ``P95_PERCENT`` and the same nearest rank; the GraphQL back end, which sees runs only
through a webserver, computes them with these functions. The tests hold the two to agree.

- a duration is ``end - start`` in seconds, None unless both times are known (a run
  canceled while queued never started);
- ``success_rate`` = success / finished, finished = success + failed + canceled, as a
  fraction in [0, 1]; None when nothing finished (running runs are not counted);
- the mean duration is None when there are no durations;
- ``nearest_rank_p95`` is the ``ceil(0.95 * n)``-th smallest of the n durations, i.e. the
  smallest duration that at least 95% of durations do not exceed: always one of the
  observed durations, no interpolation; None when there are none.
"""

import math
from collections.abc import Sequence

P95_PERCENT = 95


def duration_seconds(start: float | None, end: float | None) -> float | None:
    """Seconds from ``start`` to ``end`` (timestamps), None when either is unknown."""
    return None if start is None or end is None else end - start


def success_rate(success: int, failed: int, canceled: int) -> float | None:
    """Successes among finished runs; None when none finished."""
    finished = success + failed + canceled
    return success / finished if finished else None


def mean_duration(durations: Sequence[float]) -> float | None:
    # fsum: exact up to the final rounding, whatever the order the durations come in.
    return math.fsum(durations) / len(durations) if durations else None


def nearest_rank_p95(durations: Sequence[float]) -> float | None:
    """The ``ceil(0.95 n)``-th smallest duration (integer arithmetic, no float rounding)."""
    if not durations:
        return None
    rank = -(-P95_PERCENT * len(durations) // 100)
    return sorted(durations)[rank - 1]
