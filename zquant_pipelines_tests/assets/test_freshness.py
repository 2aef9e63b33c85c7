"""Freshness that knows the calendar, judged as the daemon judges it: the freshness sensor's
ticks at chosen moments (Dagster's clock frozen) over a real SQLite warehouse and a real
instance, each verdict stored as the daemon stores it, then the freshness alert's tick with
the cursor of the last one, its messages received by a local HTTP receiver.

The calendar has a holiday week: Monday 23 to Thursday 26 November 2026 closed, Friday 27
open."""

import datetime as dt

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time

from zquant_pipelines.alerts.definitions import FRESHNESS_ALERT_SENSOR, build_alert_definitions
from zquant_pipelines.assets.definitions import build_asset_definitions
from zquant_pipelines.assets.freshness import FRESHNESS_SENSOR
from zquant_pipelines.constants import (
    ENV_ALERT_URLS,
    ENV_FRESHNESS_DEADLINE,
    ENV_UI_URL,
    FRESHNESS_CHECK,
    FRESHNESS_DATASETS,
)
from zquant_pipelines.dates import MARKET_ZONE
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines_tests.support.alert_receivers import JsonReceiver, alert_receivers
from zquant_pipelines_tests.support.freshness_warehouse import (
    freshness_warehouse,
    store_days,
    today_world,
)

UI_URL = "http://ui.example.com:3000"
HOLIDAY = {dt.date(2026, 11, 23) + dt.timedelta(days=n) for n in range(4)}
WEEK_BEFORE = [dt.date(2026, 11, 16) + dt.timedelta(days=n) for n in range(5)]
FRIDAY, MONDAY = dt.date(2026, 11, 27), dt.date(2026, 11, 30)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=MARKET_ZONE)


class World:
    """The definitions, instance and warehouse; ``tick`` runs both sensors at a moment."""

    def __init__(self, instance, warehouse):
        self.instance = instance
        self.warehouse = warehouse
        self.defs = dg.Definitions.merge(
            build_asset_definitions(),
            dg.Definitions(
                resources={"warehouse": warehouse, "market_source": SampleMarketSource()}
            ),
            build_alert_definitions(),
        )
        self.alert_cursor = None

    def tick(self, moment: dt.datetime) -> list[dg.AssetCheckEvaluation]:
        """The freshness sensor's tick at ``moment`` (its verdicts stored as the daemon
        stores them), then the freshness alert's; the new verdicts."""
        with freeze_time(moment):
            context = dg.build_sensor_context(
                instance=self.instance,
                repository_def=self.defs.get_repository_def(),
                resources={"warehouse": self.warehouse},
            )
            data = self.defs.resolve_sensor_def(FRESHNESS_SENSOR).evaluate_tick(context)
            for event in data.asset_events:
                self.instance.report_runless_asset_event(event)
            alert = dg.build_sensor_context(
                instance=self.instance,
                cursor=self.alert_cursor,
                repository_def=self.defs.get_repository_def(),
            )
            self.alert_cursor = (
                self.defs.resolve_sensor_def(FRESHNESS_ALERT_SENSOR).evaluate_tick(alert).cursor
            )
        return list(data.asset_events)

    def verdict(self, dataset: str) -> dg.AssetCheckEvaluation:
        (record,) = self.instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(dataset), FRESHNESS_CHECK), limit=1
        )
        return record.evaluation


@pytest.fixture
def receiver(monkeypatch) -> JsonReceiver:
    with alert_receivers() as (web, _mail):
        monkeypatch.setenv(ENV_ALERT_URLS, web.url)
        monkeypatch.setenv(ENV_UI_URL, UI_URL)
        yield web


@pytest.fixture
def world(tmp_path, receiver) -> World:
    (tmp_path / "home").mkdir()
    warehouse = freshness_warehouse(
        f"sqlite:///{tmp_path / 'warehouse.db'}",
        dt.date(2026, 11, 1),
        dt.date(2026, 12, 31),
        HOLIDAY,
    )
    store_days(warehouse, FRESHNESS_DATASETS, WEEK_BEFORE)
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        yield World(instance, warehouse)


def test_closed_days_never_alarm(world, receiver):
    for day in sorted(HOLIDAY):
        world.tick(at(day, 21))
    for dataset in FRESHNESS_DATASETS:
        verdict = world.verdict(dataset)
        assert verdict.passed
        assert verdict.metadata["expected_day"].value == "2026-11-20"
    assert receiver.received == []


def test_the_friday_after_a_holiday_is_judged_on_its_own_deadline(world, receiver):
    world.tick(at(FRIDAY, 18, 59))  # before its deadline: the Friday before is expected
    assert all(world.verdict(dataset).passed for dataset in FRESHNESS_DATASETS)

    late = world.tick(at(FRIDAY, 19))
    assert {evaluation.asset_key.path[0] for evaluation in late} == set(FRESHNESS_DATASETS)
    for evaluation in late:
        assert not evaluation.passed
        assert evaluation.metadata["expected_day"].value == "2026-11-27"
        assert evaluation.metadata["latest_complete_day"].value == "2026-11-20"
        # The holiday is not missing: the Friday alone is.
        assert evaluation.metadata["missing_days"].value == ["2026-11-27"]
    titles = sorted(post["title"] for post in receiver.received)
    assert titles == sorted(
        f"zquant: {dataset} for 2026-11-27 missed its deadline" for dataset in FRESHNESS_DATASETS
    )


def test_a_late_day_alarms_once_and_an_on_time_day_does_not(world, receiver):
    on_time = [dataset for dataset in FRESHNESS_DATASETS if dataset != "daily_basic"]
    store_days(world.warehouse, on_time, [FRIDAY])
    world.tick(at(FRIDAY, 19, 5))
    world.tick(at(FRIDAY, 19, 6))
    world.tick(at(FRIDAY, 23, 30))

    (text,) = receiver.texts()
    assert text.splitlines() == [
        "zquant: daily_basic for 2026-11-27 missed its deadline",
        "Dataset: daily_basic",
        "Day expected: 2026-11-27 (open day, due by 2026-11-27T19:00:00+08:00)",
        "Latest complete day: 2026-11-20",
        "Missing open days: 2026-11-27",
        f"Link: {UI_URL}/assets/daily_basic?view=checks",
    ]
    for dataset in on_time:
        assert world.verdict(dataset).passed

    # Late data arrives: the verdict turns, nothing more is sent; Monday is stored on time.
    store_days(world.warehouse, ["daily_basic"], [FRIDAY])
    store_days(world.warehouse, FRESHNESS_DATASETS, [MONDAY])
    assert [e.asset_key.path[0] for e in world.tick(at(FRIDAY, 23, 45))] == ["daily_basic"]
    world.tick(at(MONDAY, 19, 1))
    assert all(world.verdict(dataset).passed for dataset in FRESHNESS_DATASETS)
    assert world.verdict("daily").metadata["expected_day"].value == "2026-11-30"
    assert len(receiver.received) == 1


def test_an_unchanged_verdict_is_not_stored_again(world):
    assert len(world.tick(at(FRIDAY, 10))) == len(FRESHNESS_DATASETS)
    assert world.tick(at(FRIDAY, 11)) == []


def test_the_deadline_is_configurable(world, receiver, monkeypatch):
    monkeypatch.setenv(ENV_FRESHNESS_DEADLINE, "21:00")
    world.tick(at(FRIDAY, 20, 59))
    assert world.verdict("daily").metadata["expected_day"].value == "2026-11-20"
    world.tick(at(FRIDAY, 21))
    assert world.verdict("daily").metadata["deadline"].value == "2026-11-27T21:00:00+08:00"
    assert not world.verdict("daily").passed


def test_a_calendar_that_does_not_reach_today_is_a_skip_naming_the_day(tmp_path):
    """Before the first sync the warehouse holds no calendar: no verdict, and the sensor's
    tick says why instead of failing every minute."""
    (tmp_path / "home").mkdir()
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'empty.db'}")
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        world = World(instance, warehouse)
        with freeze_time(at(FRIDAY, 20)):
            context = dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse})
            data = world.defs.resolve_sensor_def(FRESHNESS_SENSOR).evaluate_tick(context)
    assert data.asset_events == []
    assert data.skip_message == (
        "no verdict: trade_cal has no SSE row for 2026-11-27 (1 day(s) in"
        " 2026-11-27..2026-11-27): sync the trading calendar over that range first"
    )


def test_executing_one_check_by_hand_records_that_datasets_verdict(tmp_path, monkeypatch):
    """The UI's Execute on one dataset's check: a run of that check alone (at the real time,
    over a calendar reaching today, the deadline at 00:00 so the latest open day is due)."""
    monkeypatch.setenv(ENV_FRESHNESS_DEADLINE, "00:00")
    warehouse, before, latest = today_world(
        f"sqlite:///{tmp_path / 'warehouse.db'}", late=("daily_basic",)
    )
    (tmp_path / "home").mkdir()
    key = dg.AssetCheckKey(dg.AssetKey("daily_basic"), FRESHNESS_CHECK)
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        job = World(instance, warehouse).defs.resolve_implicit_global_asset_job_def()
        subset = job.get_subset(asset_selection=set(), asset_check_selection={key})
        result = subset.execute_in_process(instance=instance)
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.asset_check_key == key and not evaluation.passed
    assert evaluation.metadata["expected_day"].value == latest.isoformat()
    assert evaluation.metadata["latest_complete_day"].value == before.isoformat()
