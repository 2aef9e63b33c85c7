"""Freshness that knows the calendar: is each open day's data stored by its deadline?

Plain functions (no Dagster), shared by the freshness sensor (assets/freshness.py) and
`zquant status`. The calendar is the synced ``trade_cal`` in the warehouse (SSE, as every
sync reads it), so the verdict follows the same open days the syncs follow, for tushare and
for the sample market alike. At a moment ``now``, the day *expected* is the latest open day
whose deadline (that day at ZQUANT_FRESHNESS_DEADLINE, Asia/Shanghai) has passed; a dataset
is on time when that day is complete in its table (the row-count check's rule: at least
MIN_LISTED_SHARE of the stocks listed that day). A closed day is never expected, so it never
alarms, and the first open day after a holiday is judged on its own deadline.
"""

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from zquant_pipelines.constants import (
    DEFAULT_FRESHNESS_DEADLINE,
    ENV_FRESHNESS_DEADLINE,
    FRESHNESS_DATASETS,
    MARKET_TIMEZONE,
)
from zquant_pipelines.dates import MARKET_ZONE
from zquant_pipelines.sync.market import (
    day_is_complete,
    open_days,
    recent_open_days,
    stored_day_counts,
)

# How many open days back the latest complete day is looked for (a month of trading):
# the verdict reads only these days of each table, whatever the history's length.
LOOKBACK_OPEN_DAYS = 20


@dataclass(frozen=True)
class Freshness:
    """One dataset's verdict at ``checked_at``."""

    dataset: str
    expected_day: dt.date
    deadline: dt.datetime
    latest_complete_day: dt.date | None
    on_time: bool
    # The open days up to the expected one after the latest complete day (oldest first).
    missing_days: list[dt.date] = field(default_factory=list)
    checked_at: dt.datetime | None = None

    def to_metadata(self) -> dict[str, str | bool | list[str] | None]:
        """The verdict as its check evaluation's metadata (ISO dates and times)."""
        latest = self.latest_complete_day
        return {
            "expected_day": self.expected_day.isoformat(),
            "deadline": self.deadline.isoformat(),
            "latest_complete_day": latest.isoformat() if latest else None,
            "on_time": self.on_time,
            "missing_days": [day.isoformat() for day in self.missing_days],
        }

    @classmethod
    def from_metadata(
        cls, dataset: str, metadata: Mapping, checked_at: dt.datetime | None
    ) -> "Freshness":
        """The verdict a check evaluation recorded (``to_metadata``'s values)."""
        latest = metadata.get("latest_complete_day")
        return cls(
            dataset=dataset,
            expected_day=dt.date.fromisoformat(metadata["expected_day"]),
            deadline=dt.datetime.fromisoformat(metadata["deadline"]),
            latest_complete_day=dt.date.fromisoformat(latest) if latest else None,
            on_time=bool(metadata["on_time"]),
            missing_days=[dt.date.fromisoformat(day) for day in metadata["missing_days"]],
            checked_at=checked_at,
        )

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            **self.to_metadata(),
            "checked_at": self.checked_at and self.checked_at.isoformat(),
        }


def freshness_deadline(text: str | None = None) -> dt.time:
    """The deadline's time of day: ``text`` or ZQUANT_FRESHNESS_DEADLINE ("HH:MM")."""
    if text is None:
        text = os.environ.get(ENV_FRESHNESS_DEADLINE) or DEFAULT_FRESHNESS_DEADLINE
    try:
        hours, minutes = text.strip().split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError
        return dt.time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(
            f"{ENV_FRESHNESS_DEADLINE} {text!r} is not a time of day in HH:MM form"
            f" ({MARKET_TIMEZONE}), e.g. {DEFAULT_FRESHNESS_DEADLINE}"
        ) from None


def deadline_of(day: dt.date, deadline: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, deadline, tzinfo=MARKET_ZONE)


def expected_day(warehouse, now: dt.datetime, deadline: dt.time) -> dt.date:
    """The latest open day whose deadline is at or before ``now``. The calendar must cover
    today (a stale calendar is an error naming the day, not an old verdict)."""
    local = now.astimezone(MARKET_ZONE)
    open_days(warehouse, local.date(), local.date())
    last = local.date() if local.time() >= deadline else local.date() - dt.timedelta(days=1)
    days = recent_open_days(warehouse, last, 1)
    if not days:
        raise ValueError(f"trade_cal has no open day on or before {last:%Y-%m-%d}")
    return days[-1]


def freshness(warehouse, now: dt.datetime, deadline: dt.time | None = None) -> list[Freshness]:
    """Each dataset's verdict at ``now`` (an aware datetime); the deadline defaults to
    ZQUANT_FRESHNESS_DEADLINE's. A calendar that does not reach today is a ValueError."""
    if deadline is None:
        deadline = freshness_deadline()
    expected = expected_day(warehouse, now, deadline)
    local_today = now.astimezone(MARKET_ZONE).date()
    # Up to today: a day stored before its deadline is already the latest complete one.
    window = recent_open_days(warehouse, local_today, LOOKBACK_OPEN_DAYS)
    verdicts = []
    for dataset in FRESHNESS_DATASETS:
        counts = stored_day_counts(warehouse, dataset, window[0], window[-1])
        complete = [day for day in window if day_is_complete(dataset, *counts.get(day, (0, None)))]
        latest = complete[-1] if complete else None
        settled = max((day for day in complete if day <= expected), default=None)
        verdicts.append(
            Freshness(
                dataset=dataset,
                expected_day=expected,
                deadline=deadline_of(expected, deadline),
                latest_complete_day=latest,
                on_time=expected in complete,
                missing_days=[
                    day for day in window if day <= expected and (settled is None or day > settled)
                ],
                checked_at=now,
            )
        )
    return verdicts
