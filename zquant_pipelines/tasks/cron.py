"""Standard 5-field cron: parsing with one clear error per field, and the next fire times.

Fields: minute hour day-of-month month day-of-week, each a list of `*`, `n`, `a-b`, `*/n`,
`a-b/n` or `a/n` (from a to the field's last value, Saturday for day-of-week). Months may
be written JAN-DEC and weekdays SUN-SAT (any case). Day-of-week runs 0-7 with both 0 and 7
meaning Sunday, as in every standard cron and in Dagster's schedules (zquant's APScheduler
counted 0 = Monday, so its "1-5" meant Tuesday-Saturday). When both day-of-month and
day-of-week are restricted (neither is a bare `*`), a day matches if either matches, as in
Dagster.

Beyond syntax we reject what can only be a mistake, or what Dagster's cron library would
read differently from the text: a range that runs backwards; a range of one value (`5-5`,
which Dagster reads as `*`); a step larger than its range (`*/90` in the minute field fires
hourly, not every 90 minutes); a day-of-month that no selected month has (`0 0 31 4 *`);
a day field that lists every day without being `*` (`*/1`, `0-6`).

``next_fire_times`` asks Dagster's own schedule iterator, the one its scheduler daemon
ticks with, so `zquant tasks list` shows the instant Dagster will fire, daylight-saving
changes included.
"""

import calendar
import datetime as dt
import itertools
import re
from dataclasses import dataclass

from dagster._utils.schedules import schedule_execution_time_iterator

MONTH_NAMES = {name.upper(): number for number, name in enumerate(calendar.month_abbr) if name}
DAY_NAMES = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
FIELD_ORDER = "minute hour day-of-month month day-of-week"


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]
    name_hint: str = ""
    # Where `a/n` ends: the last value, except that day-of-week 7 only repeats Sunday (0).
    open_end: int | None = None


FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day-of-month", 1, 31, {}),
    _Field("month", 1, 12, MONTH_NAMES, " or a name JAN-DEC"),
    _Field("day-of-week", 0, 7, DAY_NAMES, " or a name SUN-SAT (0 and 7 are Sunday)", 6),
)

_NUMBER = re.compile(r"[0-9]+")


class CronError(ValueError):
    """An invalid cron expression; ``problems`` holds one message per faulty field."""

    def __init__(self, expression: str, problems: list[str]):
        self.expression = expression
        self.problems = problems
        super().__init__(f"cron expression {expression!r}: " + "; ".join(problems))


@dataclass(frozen=True)
class CronSchedule:
    """A parsed expression: the set of values each field allows (weekdays 0-6, Sunday 0)."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]


def parse_cron(expression: str) -> CronSchedule:
    """Parse a 5-field expression; raise ``CronError`` listing every faulty field."""
    if not isinstance(expression, str):
        raise CronError(str(expression), [f"must be a string, got {type(expression).__name__}"])
    texts = expression.split()
    if len(texts) != len(FIELDS):
        raise CronError(expression, [f"expected 5 fields ({FIELD_ORDER}), got {len(texts)}"])
    problems: list[str] = []
    values = [
        _parse_field(field, text, problems) for field, text in zip(FIELDS, texts, strict=True)
    ]
    minutes, hours, days_of_month, months, days_of_week = values
    days_of_week = {day % 7 for day in days_of_week}
    # Written as a list, every day still counts as "restricted" and would turn the other
    # day field's AND into an OR; Dagster's cron library is inconsistent about it too.
    for name, text, days, every in (
        ("day-of-month", texts[2], days_of_month, 31),
        ("day-of-week", texts[4], days_of_week, 7),
    ):
        if text != "*" and len(days) == every:
            problems.append(f"{name} {text!r} covers every day: write *")
    if not problems and not any(
        day <= _longest_month(month) for month in months for day in days_of_month
    ):
        problems.append(f"day-of-month {texts[2]} never occurs in month {texts[3]}")
    if problems:
        raise CronError(expression, problems)
    return CronSchedule(
        expression=expression,
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days_of_month=frozenset(days_of_month),
        months=frozenset(months),
        days_of_week=frozenset(days_of_week),
    )


def cron_problems(expression: str) -> list[str]:
    """Every problem of an expression, empty when it is valid."""
    try:
        parse_cron(expression)
    except CronError as error:
        return error.problems
    return []


def next_fire_times(
    expression: str, timezone: str, after: dt.datetime, n: int = 1
) -> list[dt.datetime]:
    """The next ``n`` instants strictly after ``after`` at which Dagster fires a schedule of
    ``expression`` with ``execution_timezone=timezone``, as datetimes in that zone."""
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError(f"after {after.isoformat()} must be timezone-aware")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    # Dagster's iterator reads some expressions we refuse differently from their text.
    parse_cron(expression)
    start = after.timestamp()
    ticks = schedule_execution_time_iterator(start, expression, timezone)
    return list(itertools.islice((tick for tick in ticks if tick.timestamp() > start), n))


def _parse_field(field: _Field, text: str, problems: list[str]) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            problems.append(f"{field.name} {text!r} has an empty list item")
            continue
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not _NUMBER.fullmatch(step_text) or int(step_text) == 0:
                problems.append(f"{field.name} step {step_text!r} is not a positive whole number")
                continue
            step = int(step_text)
        if base == "*":
            low, high = field.low, field.high
        elif "-" in base:
            start, _, end = base.partition("-")
            low, high = _value(field, start, problems), _value(field, end, problems)
            if low is None or high is None:
                continue
            if low > high:
                problems.append(f"{field.name} range {base} runs backwards ({low} > {high})")
                continue
            if low == high:
                # Dagster's cron library reads a one-value range as `*`: refuse it.
                problems.append(f"{field.name} range {base} has a single value: write {start}")
                continue
        else:
            low = _value(field, base, problems)
            if low is None:
                continue
            high = (field.high if field.open_end is None else field.open_end) if slash else low
        if slash and step > high - low:
            problems.append(
                f"{field.name} step {step} in {item!r} is larger than its range {low}-{high}"
                f" (it would only match {low})"
            )
            continue
        values.update(range(low, high + 1, step))
    return values


def _value(field: _Field, token: str, problems: list[str]) -> int | None:
    if _NUMBER.fullmatch(token):
        number = int(token)
        if field.low <= number <= field.high:
            return number
        problems.append(f"{field.name} {number} is out of range {field.low}-{field.high}")
        return None
    if token.upper() in field.names:
        return field.names[token.upper()]
    problems.append(
        f"{field.name} {token!r} is not a number {field.low}-{field.high}{field.name_hint}"
    )
    return None


def _longest_month(month: int) -> int:
    return calendar.monthrange(2000, month)[1]  # 2000 is a leap year: February has 29 days
