"""Cron and interval triggers: when Dagster fires a task's schedule (its own tick iterator on
the schedule's cron and timezone), what a tick asks for, and the skip while a run of the task
is queued or in flight."""

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._utils.schedules import schedule_execution_time_iterator

from zquant_pipelines.constants import TAG_TASK
from zquant_pipelines.tasks.builders import schedule_name, sensor_name
from zquant_pipelines_tests.tasks.support import (
    catalog_location,
    example,
    task_definitions,
)

UTC = dt.UTC
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
MONDAY, FRIDAY, SATURDAY, SUNDAY = 0, 4, 5, 6


def cron_task(name: str, cron: str, timezone: str = "Asia/Shanghai", **fields) -> dict:
    return example(name, cron_expression=cron, timezone=timezone, **fields)


def schedule_of(resources, task: dict) -> dg.ScheduleDefinition:
    return task_definitions([task], resources).resolve_schedule_def(schedule_name(task["name"]))


def ticks(schedule: dg.ScheduleDefinition, after: dt.datetime, until: dt.datetime) -> list:
    """The instants Dagster's scheduler fires ``schedule`` at in [after, until)."""
    times = schedule_execution_time_iterator(
        after.timestamp(), schedule.cron_schedule, schedule.execution_timezone
    )
    return list(itertools.takewhile(lambda tick: tick < until, times))


def evaluate(schedule: dg.ScheduleDefinition, instance, tick: dt.datetime):
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
    return schedule.evaluate_tick(context)


def run_requested(result) -> bool:
    return len(result.run_requests or []) == 1 and not result.skip_message


# A week from Sunday 2026-11-01 00:00 in Shanghai.
WEEK_START = dt.datetime(2026, 11, 1, tzinfo=SHANGHAI)
WEEK_END = WEEK_START + dt.timedelta(days=7)


def test_weekday_range_1_to_5_fires_monday_to_friday(resources, instance):
    schedule = schedule_of(resources, cron_task("close", "0 18 * * 1-5"))

    fired = ticks(schedule, WEEK_START, WEEK_END)

    # zquant's APScheduler read 1-5 as Tue-Sat.
    assert [tick.astimezone(SHANGHAI).weekday() for tick in fired] == list(range(MONDAY, 5))
    assert {tick.astimezone(SHANGHAI).strftime("%H:%M") for tick in fired} == {"18:00"}
    assert all(run_requested(evaluate(schedule, instance, tick)) for tick in fired)


@pytest.mark.parametrize("sunday", ["0", "7"])
def test_sunday_is_day_0_and_day_7(resources, sunday):
    schedule = schedule_of(resources, cron_task("weekly", f"0 8 * * {sunday}"))

    fired = ticks(schedule, WEEK_START, WEEK_START + dt.timedelta(days=14))

    assert [tick.astimezone(SHANGHAI).date() for tick in fired] == [
        dt.date(2026, 11, 1),
        dt.date(2026, 11, 8),
    ]
    assert {tick.astimezone(SHANGHAI).weekday() for tick in fired} == {SUNDAY}


def test_weekend_list_and_step_fields(resources):
    schedule = schedule_of(resources, cron_task("weekend", "*/30 9 * * 6,0"))

    fired = ticks(schedule, WEEK_START, WEEK_END)

    local = [tick.astimezone(SHANGHAI) for tick in fired]
    assert [(t.weekday(), t.strftime("%H:%M")) for t in local] == [
        (SUNDAY, "09:00"),
        (SUNDAY, "09:30"),
        (SATURDAY, "09:00"),
        (SATURDAY, "09:30"),
    ]


def test_shanghai_evening_is_utc_morning_and_utc_is_utc(resources):
    shanghai = schedule_of(resources, cron_task("close", "0 18 * * 1-5"))
    utc = schedule_of(resources, cron_task("close", "0 18 * * 1-5", timezone="UTC"))

    assert shanghai.execution_timezone == "Asia/Shanghai"
    shanghai_ticks = ticks(shanghai, WEEK_START, WEEK_END)
    utc_ticks = ticks(utc, WEEK_START, WEEK_END)
    assert shanghai_ticks[0] == dt.datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    assert {t.astimezone(UTC).strftime("%H:%M") for t in shanghai_ticks} == {"10:00"}
    assert utc_ticks[0] == dt.datetime(2026, 11, 2, 18, 0, tzinfo=UTC)
    assert {t.astimezone(UTC).strftime("%H:%M") for t in utc_ticks} == {"18:00"}


@pytest.mark.parametrize(
    "change_day, local_time",
    [
        # 02:00 -> 03:00: 02:30 does not exist that night; the tick comes at 03:00.
        (dt.date(2026, 3, 29), "03:00"),
        # 03:00 -> 02:00: 02:30 happens twice; the tick comes once.
        (dt.date(2026, 10, 25), "02:30"),
    ],
)
def test_daily_schedule_fires_once_on_each_dst_change_day(
    resources, instance, change_day, local_time
):
    schedule = schedule_of(resources, cron_task("nightly", "30 2 * * *", timezone="Europe/Berlin"))
    start = dt.datetime.combine(change_day - dt.timedelta(days=2), dt.time(), BERLIN)

    fired = ticks(schedule, start, start + dt.timedelta(days=5))

    days = [tick.astimezone(BERLIN).date() for tick in fired]
    assert days == [start.date() + dt.timedelta(days=n) for n in range(5)]
    local = [tick.astimezone(BERLIN) for tick in fired]
    on_change_day = [tick for tick in local if tick.date() == change_day]
    assert [t.strftime("%H:%M") for t in on_change_day] == [local_time]
    assert run_requested(evaluate(schedule, instance, on_change_day[0]))


def test_schedule_tick_skips_while_a_run_of_the_task_is_in_flight(resources, instance):
    defs = task_definitions(
        [cron_task("close", "0 18 * * 1-5"), cron_task("other", "0 18 * * 1-5")], resources
    )
    schedule = defs.resolve_schedule_def(schedule_name("close"))
    job = defs.resolve_job_def("close_job")
    tick = dt.datetime(2026, 11, 2, 18, tzinfo=SHANGHAI)
    started = dg.DagsterRunStatus.STARTED
    other_job = defs.resolve_job_def("other_job")
    instance.create_run_for_job(other_job, status=started, tags=other_job.run_tags)

    assert run_requested(evaluate(schedule, instance, tick))

    running = instance.create_run_for_job(job, status=started, tags=job.run_tags)
    skipped = evaluate(schedule, instance, tick)
    assert not skipped.run_requests
    assert running.run_id in skipped.skip_message
    assert "STARTED" in skipped.skip_message

    instance.report_run_failed(instance.get_run_by_id(running.run_id))
    assert run_requested(evaluate(schedule, instance, tick))


# --- interval sensors ----------------------------------------------------------------


def interval_task(name: str, seconds: int = 30, **fields) -> dict:
    return example(name, interval_seconds=seconds, **fields)


def test_sensor_minimum_interval_is_the_tasks_interval_seconds(resources):
    defs = task_definitions([interval_task("every_minute", 60)], resources)

    assert defs.resolve_sensor_def(sensor_name("every_minute")).minimum_interval_seconds == 60


def test_enabled_sets_the_default_status_of_schedules_and_sensors(resources):
    defs = task_definitions(
        [
            interval_task("on"),
            interval_task("off", enabled=False),
            cron_task("cron_on", "0 8 * * *"),
            cron_task("cron_off", "0 8 * * *", enabled=False),
        ],
        resources,
    )

    assert defs.resolve_sensor_def("on_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_sensor_def("off_sensor").default_status == dg.DefaultSensorStatus.STOPPED
    assert defs.resolve_schedule_def("cron_on_schedule").default_status.value == "RUNNING"
    assert defs.resolve_schedule_def("cron_off_schedule").default_status.value == "STOPPED"


def test_sensor_ticks_and_skips_while_a_run_is_queued_or_started(use_catalog, queue_instance):
    instance = queue_instance
    use_catalog([interval_task("poll"), interval_task("other")])
    with catalog_location(instance) as location:
        sensor = location.repository.get_definition().get_sensor_def(sensor_name("poll"))

        def tick():
            return sensor.evaluate_tick(dg.build_sensor_context(instance=instance))

        location.submit_run("other")
        assert run_requested(tick())

        queued = location.submit_run("poll")
        assert location.status(queued) == dg.DagsterRunStatus.QUEUED
        assert location.instance.get_run_by_id(queued).tags[TAG_TASK] == "poll"
        skipped = tick()
        assert not skipped.run_requests
        assert f"run {queued} of task poll is still QUEUED" in skipped.skip_message

        instance.report_run_canceled(instance.get_run_by_id(queued))
        assert run_requested(tick())

        started = location.create_run("poll", status=dg.DagsterRunStatus.STARTED)
        assert f"run {started.run_id} of task poll is still STARTED" in tick().skip_message
