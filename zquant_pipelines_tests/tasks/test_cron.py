"""The cron parser's field semantics and errors, and the next fire times Dagster ticks at."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from zquant_pipelines.tasks.cron import CronError, cron_problems, next_fire_times, parse_cron

UTC = dt.UTC
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
BERLIN_NAME = "Europe/Berlin"
# Monday 2024-06-03 00:00 UTC: a plain week far from any DST change.
MONDAY = dt.datetime(2024, 6, 3, tzinfo=UTC)


def test_fields_expand_ranges_steps_lists_and_names():
    schedule = parse_cron("*/15 9-17/4 1,15 jan,JUL-AUG mon-FRI")

    assert schedule.minutes == (0, 15, 30, 45)
    assert schedule.hours == (9, 13, 17)
    assert schedule.days_of_month == {1, 15}
    assert schedule.months == {1, 7, 8}
    assert schedule.days_of_week == {1, 2, 3, 4, 5}


def test_a_start_with_a_step_runs_to_the_end_of_the_field():
    assert parse_cron("50/5 * * * *").minutes == (50, 55)


@pytest.mark.parametrize("sunday", ["0", "7", "SUN", "sun"])
def test_sunday_is_0_and_7(sunday):
    fires = next_fire_times(f"0 8 * * {sunday}", "UTC", MONDAY, 3)

    assert [t.date() for t in fires] == [dt.date(2024, 6, d) for d in (9, 16, 23)]
    assert {t.strftime("%A %H:%M") for t in fires} == {"Sunday 08:00"}


def test_weekday_range_1_5_is_monday_to_friday():
    fires = next_fire_times("0 18 * * 1-5", "UTC", MONDAY, 10)

    assert [t.strftime("%a %d") for t in fires] == [
        "Mon 03", "Tue 04", "Wed 05", "Thu 06", "Fri 07",
        "Mon 10", "Tue 11", "Wed 12", "Thu 13", "Fri 14",
    ]  # fmt: skip


def test_a_weekday_range_may_end_on_7():
    fires = next_fire_times("0 12 * * 5-7", "UTC", MONDAY, 3)

    assert [t.strftime("%A") for t in fires] == ["Friday", "Saturday", "Sunday"]


def test_the_same_expression_fires_at_different_instants_in_shanghai_and_utc():
    shanghai = next_fire_times("0 18 * * 1-5", "Asia/Shanghai", MONDAY, 1)[0]
    utc = next_fire_times("0 18 * * 1-5", "UTC", MONDAY, 1)[0]

    assert shanghai == dt.datetime(2024, 6, 3, 10, 0, tzinfo=UTC)
    assert shanghai.tzinfo == SHANGHAI and shanghai.hour == 18
    assert utc == dt.datetime(2024, 6, 3, 18, 0, tzinfo=UTC)


def test_restricted_day_of_month_and_day_of_week_fire_on_either():
    fires = next_fire_times("0 0 13 * 5", "UTC", MONDAY, 4)

    assert [t.date() for t in fires] == [
        dt.date(2024, 6, 7),  # Friday
        dt.date(2024, 6, 13),  # the 13th, a Thursday
        dt.date(2024, 6, 14),
        dt.date(2024, 6, 21),
    ]


def test_a_star_day_of_month_leaves_only_the_weekday_rule():
    fires = next_fire_times("0 0 * * 5", "UTC", MONDAY, 2)

    assert [t.date() for t in fires] == [dt.date(2024, 6, 7), dt.date(2024, 6, 14)]


def test_fire_times_are_strictly_after_the_given_instant():
    on_a_fire = dt.datetime(2024, 6, 3, 18, 0, tzinfo=UTC)

    assert next_fire_times("0 18 * * *", "UTC", on_a_fire, 1)[0].day == 4


def test_leap_day_fires_only_in_leap_years():
    fires = next_fire_times("0 0 29 2 *", "UTC", MONDAY, 2)

    assert [t.date() for t in fires] == [dt.date(2028, 2, 29), dt.date(2032, 2, 29)]


def test_berlin_spring_forward_moves_a_missing_daily_time_to_the_end_of_the_gap():
    before = dt.datetime(2024, 3, 30, 12, 0, tzinfo=UTC)

    fires = next_fire_times("30 2 * * *", BERLIN_NAME, before, 3)

    assert [t.isoformat() for t in fires] == [
        "2024-03-31T03:00:00+02:00",
        "2024-04-01T02:30:00+02:00",
        "2024-04-02T02:30:00+02:00",
    ]


def test_berlin_fall_back_fires_a_repeated_daily_time_once_at_the_later_instant():
    before = dt.datetime(2024, 10, 26, 12, 0, tzinfo=UTC)

    fires = next_fire_times("30 2 * * *", BERLIN_NAME, before, 2)

    assert [t.isoformat() for t in fires] == [
        "2024-10-27T02:30:00+01:00",
        "2024-10-28T02:30:00+01:00",
    ]


def test_berlin_change_days_keep_an_hourly_expression_on_every_real_hour():
    spring = next_fire_times(
        "30 * * * *", BERLIN_NAME, dt.datetime(2024, 3, 31, 0, 0, tzinfo=UTC), 2
    )
    autumn = next_fire_times(
        "30 * * * *", BERLIN_NAME, dt.datetime(2024, 10, 27, 0, 0, tzinfo=UTC), 2
    )

    assert [t.isoformat() for t in spring] == [
        "2024-03-31T01:30:00+01:00",
        "2024-03-31T03:30:00+02:00",  # 02:30 did not happen
    ]
    assert [t.isoformat() for t in autumn] == [
        "2024-10-27T02:30:00+02:00",
        "2024-10-27T02:30:00+01:00",  # the hour happened twice
    ]


def test_after_the_first_reading_of_a_repeated_hour_comes_the_second():
    first_half_past_two = dt.datetime(2024, 10, 27, 2, 30, fold=0, tzinfo=BERLIN)

    fires = next_fire_times("30 * * * *", BERLIN_NAME, first_half_past_two, 2)

    assert [t.isoformat() for t in fires] == [
        "2024-10-27T02:30:00+01:00",
        "2024-10-27T03:30:00+01:00",
    ]


@pytest.mark.parametrize("change_day", [dt.date(2024, 3, 31), dt.date(2024, 10, 27)])
def test_a_daily_schedule_fires_once_a_day_through_a_change_day(change_day):
    week_before = dt.datetime.combine(change_day - dt.timedelta(days=3), dt.time(), BERLIN)

    fires = next_fire_times("30 2 * * *", BERLIN_NAME, week_before, 7)

    assert [t.date() for t in fires] == [
        week_before.date() + dt.timedelta(days=k) for k in range(7)
    ]


def test_a_repeated_time_in_a_zone_that_changes_at_midnight_fires_as_dagster_does():
    # Santiago's clocks went back from 24:00 to 23:00 on 2023-04-01: Dagster fires the
    # first 23:00 there, though it fires the second reading of a repeated 02:30 in Berlin.
    after = dt.datetime(2023, 4, 1, 12, tzinfo=UTC)

    fires = next_fire_times("0 23 * * *", "America/Santiago", after, 2)

    assert [t.isoformat() for t in fires] == [
        "2023-04-01T23:00:00-03:00",  # the earlier reading
        "2023-04-02T23:00:00-04:00",
    ]


def test_naive_after_is_refused():
    with pytest.raises(ValueError, match="must be timezone-aware"):
        next_fire_times("0 0 * * *", "UTC", dt.datetime(2024, 1, 1), 1)


def test_n_below_one_is_refused():
    with pytest.raises(ValueError, match="n must be at least 1, got 0"):
        next_fire_times("0 0 * * *", "UTC", MONDAY, 0)


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 18 * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
        ("0 0 18 * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 6"),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 0 32 * *", "day-of-month 32 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-7"),
        ("0 0 * FOO *", "month 'FOO' is not a number 1-12 or a name JAN-DEC"),
        (
            "0 0 * * MONDAY",
            "day-of-week 'MONDAY' is not a number 0-7 or a name SUN-SAT (0 and 7 are Sunday)",
        ),
        ("x * * * *", "minute 'x' is not a number 0-59"),
        ("0 0 L * *", "day-of-month 'L' is not a number 1-31"),
        ("-5 * * * *", "minute '' is not a number 0-59"),
        ("*/0 * * * *", "minute step '0' is not a positive whole number"),
        ("*/x * * * *", "minute step 'x' is not a positive whole number"),
        (
            "*/90 * * * *",
            "minute step 90 in '*/90' is larger than its range 0-59 (it would only match 0)",
        ),
        (
            "0 10-20/15 * * *",
            "hour step 15 in '10-20/15' is larger than its range 10-20 (it would only match 10)",
        ),
        ("0 17-9 * * *", "hour range 17-9 runs backwards (17 > 9)"),
        ("0 0 * * FRI-SUN", "day-of-week range FRI-SUN runs backwards (5 > 0)"),
        ("1,,2 * * * *", "minute '1,,2' has an empty list item"),
        ("0 5-5 * * *", "hour range 5-5 has a single value: write 5"),
        ("0 0 * * mon-MON", "day-of-week range mon-MON has a single value: write mon"),
        ("0 0 31 4,6 *", "day-of-month 31 never occurs in month 4,6"),
        ("0 0 30 2 *", "day-of-month 30 never occurs in month 2"),
        ("0 0 30 2 1", "day-of-month 30 never occurs in month 2"),
        ("0 0 */1 * 1", "day-of-month '*/1' covers every day: write *"),
        ("0 0 1 * SUN-SAT", "day-of-week 'SUN-SAT' covers every day: write *"),
        ("0 0 1 * 1-7", "day-of-week '1-7' covers every day: write *"),
    ],
)  # fmt: skip
def test_invalid_expressions_name_the_field_and_value(expression, problem):
    with pytest.raises(CronError) as caught:
        parse_cron(expression)

    assert caught.value.problems == [problem]
    assert str(caught.value) == f"cron expression {expression!r}: {problem}"


def test_every_faulty_field_is_reported():
    assert cron_problems("61 25 0 * 9") == [
        "minute 61 is out of range 0-59",
        "hour 25 is out of range 0-23",
        "day-of-month 0 is out of range 1-31",
        "day-of-week 9 is out of range 0-7",
    ]


def test_a_valid_expression_has_no_problems():
    assert cron_problems("0 18 * * 1-5") == []


def dagster_accepts(expression):
    from dagster._utils.schedules import is_valid_cron_string

    return is_valid_cron_string(expression)


@st.composite
def field_item(draw, low, high, names):
    """One list item: a value, a range, or a step over `*`, a range or a start."""
    start = draw(st.integers(low, high - 1))
    end = draw(st.integers(start + 1, high))
    kind = draw(
        st.sampled_from(["value", "name", "range", "star_step", "range_step", "start_step"])
    )
    if kind == "name" and names:
        return draw(st.sampled_from(names))
    if kind == "range":
        return f"{start}-{end}"
    if kind == "star_step":
        return f"*/{draw(st.integers(1, high - low))}"
    if kind == "range_step":
        return f"{start}-{end}/{draw(st.integers(1, end - start))}"
    if kind == "start_step":
        return f"{start}/{draw(st.integers(1, high - start))}"
    return str(start)


def field(low, high, names=()):
    items = st.lists(field_item(low, high, names), min_size=1, max_size=3).map(",".join)
    return st.one_of(st.just("*"), items)


EXPRESSION = st.tuples(
    field(0, 59),
    field(0, 23),
    field(1, 28),
    field(1, 12, ("JAN", "jun", "Oct")),
    field(0, 7, ("SUN", "mon", "Sat")),
).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(
    expression=EXPRESSION,
    after=st.datetimes(dt.datetime(2023, 1, 1), dt.datetime(2026, 12, 31), timezones=st.just(UTC)),
)
def test_dagster_accepts_what_we_accept_and_fires_where_we_read_it(expression, after):
    """Our reading of the fields is Dagster's: each tick lies on a minute, hour, month and
    day the parsed expression allows (a day matches either day field when both are set)."""
    assume(not cron_problems(expression))
    assert dagster_accepts(expression)
    schedule = parse_cron(expression)
    minute, hour, day_of_month, month, day_of_week = expression.split()

    for tick in next_fire_times(expression, "UTC", after, 3):
        assert tick > after
        assert tick.minute in schedule.minutes and tick.hour in schedule.hours
        assert tick.month in schedule.months
        dom = tick.day in schedule.days_of_month
        dow = tick.isoweekday() % 7 in schedule.days_of_week
        either = day_of_month != "*" and day_of_week != "*"
        assert (dom or dow) if either else (dom and dow)
