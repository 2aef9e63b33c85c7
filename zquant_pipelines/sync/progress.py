"""Progress of a multi-day sync or factor computation, as the plain functions report it.

A function that writes several trading days calls ``progress(DayProgress)`` after each day
it wrote: day k of n, the day, its rows, the time since it started and an estimate of the
time left (the mean time of the days written so far, times the days left). Days an earlier
attempt already wrote (``written_through``: every open day up to it) are counted done and
not fetched again: the days of a range are written in order, each in its own transaction,
so an attempt that failed on day k wrote exactly the days before k.
"""

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DayProgress:
    """One day written: the ``done``-th of the ``total`` open days of ``table``'s range."""

    table: str
    day: dt.date
    done: int
    total: int
    rows: int
    elapsed_seconds: float
    remaining_seconds: float | None

    def describe(self) -> str:
        left = (
            "time left unknown"
            if self.remaining_seconds is None
            else f"about {self.remaining_seconds:.1f} s left"
        )
        return (
            f"{self.table}: day {self.done} of {self.total} ({self.day:%Y-%m-%d}),"
            f" {self.rows:,} rows, {self.elapsed_seconds:.1f} s elapsed, {left}"
        )


ProgressCallback = Callable[[DayProgress], None]


def remaining_seconds(elapsed: float, processed: int, left: int) -> float | None:
    """The time ``left`` more items take at the pace of the ``processed`` ones so far."""
    if processed <= 0:
        return None
    return elapsed / processed * left


class DayCounter:
    """Counts the days of one table's range as they are written and reports each one.

    ``pending`` are the days still to write (those after ``written_through``), ``resumed``
    the ones an earlier attempt wrote.
    """

    def __init__(
        self,
        table: str,
        days: Sequence[dt.date],
        progress: ProgressCallback | None = None,
        written_through: dt.date | None = None,
    ):
        self.table = table
        self.progress = progress
        self.resumed = [day for day in days if written_through and day <= written_through]
        self.pending = [day for day in days if not written_through or day > written_through]
        self.total = len(days)
        self.done = len(self.resumed)
        self.processed = 0
        self.started = time.monotonic()

    def written(self, day: dt.date, rows: int) -> None:
        self.done += 1
        self.processed += 1
        if self.progress is None:
            return
        elapsed = time.monotonic() - self.started
        self.progress(
            DayProgress(
                table=self.table,
                day=day,
                done=self.done,
                total=self.total,
                rows=rows,
                elapsed_seconds=elapsed,
                remaining_seconds=remaining_seconds(
                    elapsed, self.processed, self.total - self.done
                ),
            )
        )
