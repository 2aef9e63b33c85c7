"""The task actions run through their jobs on the sample market and a SQLite warehouse: each
writes the tables and reports what it wrote to the asset catalog (materializations for whole
market days, observations for a repair of a few stocks), and every run carries the task tags.
"""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from zquant_pipelines.constants import (
    ENV_SCREENS_FILE,
    REPORT_PERIOD_APIS,
    TAG_TASK,
    TAG_TASK_TYPE,
    TRADING_DAY_APIS,
)
from zquant_pipelines.dates import market_today
from zquant_pipelines.factors.library import compute_factor_daily
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.sync.factors import select_factors
from zquant_pipelines.sync.financials import recent_periods
from zquant_pipelines.tasks.builders import job_name
from zquant_pipelines_tests.tasks.support import task_definitions

WEEK = {"start_date": "20261102", "end_date": "20261106"}
WEEK_PARTITIONS = [f"2026-11-0{day}" for day in range(2, 7)]
# Two stocks of the sample market, as bare codes: the action adds the exchange suffix.
REPAIR_SYMBOLS = ["000047", "000107"]
REPAIR_CODES = ["000047.SZ", "000107.SZ"]
# batch_stock_filter's screens: one that selects some stocks of the sample market each day.
SCREENS = "screens:\n  - name: busy\n    conditions: [turnover_rate > 2]\n"


def manual(name: str, action: str, **params) -> dict:
    return {
        "name": name,
        "task_type": "manual_task",
        "max_retries": 0,
        "config": {"task_action": action, **params},
    }


TASKS = [
    manual("calendar", "sync_trading_calendar", start_date="20261001", end_date="20261130"),
    manual("stocks", "sync_stock_list"),
    manual("bars", "sync_all_daily_data", **WEEK),
    manual("basics", "sync_daily_basic_data", **WEEK),
    manual("technical", "sync_factor_data", **WEEK),
    manual("technical_pro", "sync_stkfactorpro_data", **WEEK),
    manual("factors", "calculate_factor", **WEEK),
    manual("screen", "batch_stock_filter", **WEEK),
    manual("statistics", "statistics_table_data", **WEEK),
    manual("repair", "sync_daily_data", codelist=REPAIR_SYMBOLS, **WEEK),
    manual("repair_one", "sync_daily_data", symbol="000047", **WEEK),
    manual("factor_repair", "calculate_factor", codes=REPAIR_SYMBOLS, **WEEK),
    # zquant's factor selection: hyper_activity (id 2) alone, as zquant's code computes it.
    manual(
        "zquant_factor",
        "calculate_factor",
        factor_id=2,
        zquant_literal=True,
        codes=REPAIR_SYMBOLS,
        start_date="20261106",
        end_date="20261106",
    ),
    manual("demo", "example_task", message="hello from the demo"),
    manual("financials", "sync_financial_data", period="20260630"),
    # zquant's statement type, and the default periods (the last two quarter ends).
    manual("balance_recent", "sync_financial_data", statement_type="balance"),
]


class Runs:
    """Every action's job run once, in an order that gives each the data it needs."""

    def __init__(self, instance, warehouse, defs):
        self.instance = instance
        self.warehouse = warehouse
        self.results = {}
        for task in TASKS:
            job = defs.resolve_job_def(job_name(task["name"]))
            self.results[task["name"]] = job.execute_in_process(instance=instance)

    def asset_events(self, task_name: str, event_type: str) -> list[tuple[str, str | None]]:
        result = self.results[task_name]
        found = []
        for event in result.all_events:
            if event.event_type_value == event_type:
                found.append((event.asset_key.to_user_string(), event.partition))
        return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("actions")
    warehouse = Warehouse(url=f"sqlite:///{folder / 'wh.db'}")
    resources = {"market_source": SampleMarketSource(), "warehouse": warehouse}
    home = folder / "dagster_home"
    home.mkdir()
    screens = folder / "screens.yaml"
    screens.write_text(SCREENS, encoding="utf-8")
    with (
        pytest.MonkeyPatch.context() as patch,
        dg.instance_for_test(temp_dir=str(home)) as instance,
    ):
        patch.setenv(ENV_SCREENS_FILE, str(screens))
        yield Runs(instance, warehouse, task_definitions(TASKS, resources))
    warehouse.dispose()


def materialized(asset: str, partitions) -> list[tuple[str, str]]:
    return [(asset, partition) for partition in partitions]


def test_every_action_run_succeeds_and_carries_the_task_tags(runs):
    for task in TASKS:
        run = runs.instance.get_run_by_id(runs.results[task["name"]].run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags[TAG_TASK] == task["name"]
        assert run.tags[TAG_TASK_TYPE] == "manual_task"


def test_sync_trading_calendar_writes_and_materializes_trade_cal(runs):
    rows = runs.warehouse.read_frame("SELECT exchange, COUNT(*) AS n FROM trade_cal GROUP BY 1")

    assert dict(zip(rows["exchange"], rows["n"], strict=True)) == {"SSE": 61, "SZSE": 61}
    assert runs.asset_events("calendar", "ASSET_MATERIALIZATION") == [("trade_cal", None)]
    latest = runs.instance.get_latest_materialization_event(dg.AssetKey("trade_cal"))
    assert latest.asset_materialization.metadata["rows"].value == 122


def test_sync_stock_list_writes_and_materializes_stock_basic(runs):
    count = runs.warehouse.count_rows("stock_basic")

    assert count > 0
    assert runs.asset_events("stocks", "ASSET_MATERIALIZATION") == [("stock_basic", None)]
    latest = runs.instance.get_latest_materialization_event(dg.AssetKey("stock_basic"))
    assert latest.asset_materialization.metadata["rows"].value == count


def test_sync_all_daily_data_materializes_each_day_of_bars_and_adj_factor(runs):
    assert runs.asset_events("bars", "ASSET_MATERIALIZATION") == materialized(
        "daily", WEEK_PARTITIONS
    ) + materialized("adj_factor", WEEK_PARTITIONS)
    rows = sum(runs.warehouse.count_rows("daily", dt.date(2026, 11, day)) for day in range(2, 7))
    output = next(e for e in runs.results["bars"].all_events if e.event_type_value == "STEP_OUTPUT")
    metadata = output.event_specific_data.metadata
    assert rows > 0
    assert metadata["daily_rows"].value == rows
    # Five days of the sample market's stocks fit one call for their code list.
    assert metadata["daily_api_calls"].value == 1
    # Each day's materialization carries that day's figures, not the run's totals; the
    # one call counts on its first day.
    calls_by_day = {}
    for event in runs.results["bars"].all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION" and event.asset_key.path == ["daily"]:
            shown = event.event_specific_data.materialization.metadata
            day = dt.date.fromisoformat(event.partition)
            assert shown["rows"].value == runs.warehouse.count_rows("daily", day)
            calls_by_day[day] = shown["api_calls"].value
    assert [calls_by_day[day] for day in sorted(calls_by_day)] == [1, 0, 0, 0, 0]


@pytest.mark.parametrize(
    ("task_name", "table"),
    [("basics", "daily_basic"), ("technical", "stk_factor"), ("technical_pro", "stk_factor_pro")],
)
def test_whole_market_actions_materialize_each_day(runs, task_name, table):
    """sync_daily_basic_data, sync_factor_data and sync_stkfactorpro_data: the market's
    days of their table, each day stored as served and reported."""
    assert runs.asset_events(task_name, "ASSET_MATERIALIZATION") == materialized(
        table, WEEK_PARTITIONS
    )
    day = dt.date(2026, 11, 6)
    served = SampleMarketSource().query(table, trade_date=f"{day:%Y%m%d}")
    stored = runs.warehouse.read_frame(
        f"SELECT ts_code FROM {table} WHERE trade_date = :day ORDER BY ts_code", {"day": day}
    )
    assert len(served) > 0
    assert list(stored["ts_code"]) == sorted(served["ts_code"])


def test_calculate_factor_materializes_each_day_of_factor_daily(runs):
    assert runs.asset_events("factors", "ASSET_MATERIALIZATION") == materialized(
        "factor_daily", WEEK_PARTITIONS
    )
    assert runs.warehouse.count_rows("factor_daily", dt.date(2026, 11, 2)) > 0


def step_output_metadata(runs, task_name: str) -> dict:
    result = runs.results[task_name]
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    return output.event_specific_data.metadata


def test_batch_stock_filter_screens_and_materializes_each_day(runs):
    assert runs.asset_events("screen", "ASSET_MATERIALIZATION") == materialized(
        "stock_screen", WEEK_PARTITIONS
    )
    stored = runs.warehouse.read_frame(
        "SELECT trade_date, COUNT(*) AS n FROM stock_screen WHERE screen = 'busy' GROUP BY 1"
    )
    assert len(stored) == len(WEEK_PARTITIONS) and stored["n"].min() > 0
    assert step_output_metadata(runs, "screen")["stock_screen_rows"].value == stored["n"].sum()


def test_statistics_table_data_counts_each_day_of_each_table(runs):
    assert runs.asset_events("statistics", "ASSET_MATERIALIZATION") == materialized(
        "table_statistics", WEEK_PARTITIONS
    )
    day = dt.date(2026, 11, 6)
    stored = runs.warehouse.read_table("table_statistics", where={"trade_date": day})
    rows = dict(zip(stored["table_name"], stored["row_count"], strict=True))
    assert rows == {
        table: runs.warehouse.count_rows(table, day)
        for table in (*TRADING_DAY_APIS, "factor_daily")
    }


def test_calculate_factor_computes_only_the_chosen_factors(runs):
    day = dt.date(2026, 11, 6)
    stored = runs.warehouse.read_table("factor_daily", {"trade_date": day}).set_index("ts_code")
    inputs = {
        table: runs.warehouse.read_table(table) for table in ("daily", "adj_factor", "daily_basic")
    }
    hyper = select_factors([2])
    expected = compute_factor_daily(
        **inputs, trade_dates=[day], factors=hyper, zquant_literal=True
    ).set_index("ts_code")
    columns = [factor.name for factor in hyper]
    pd.testing.assert_frame_equal(
        stored.loc[REPAIR_CODES, columns], expected.loc[REPAIR_CODES, columns], check_dtype=False
    )
    # zquant's literal 0.0 for a short window (the warehouse holds one week), not NULL.
    assert (stored.loc[REPAIR_CODES, "ma90_tr"] == 0.0).all()
    others = stored.drop(index=REPAIR_CODES)
    assert others["ma90_tr"].isna().all()  # the whole-market run's intent: NULL
    # The columns not chosen keep what the whole-market run stored.
    assert stored.loc[REPAIR_CODES, "turnover_rate_ma_5"].notna().all()


def test_repairs_observe_the_days_they_touched_without_materializing_them(runs):
    for task_name, tables in [
        ("repair", ["daily", "adj_factor"]),
        ("repair_one", ["daily", "adj_factor"]),
        ("factor_repair", ["factor_daily"]),
    ]:
        assert runs.asset_events(task_name, "ASSET_MATERIALIZATION") == []
        observed = runs.asset_events(task_name, "ASSET_OBSERVATION")
        assert observed == [(table, day) for table in tables for day in WEEK_PARTITIONS]

    observation = next(
        event
        for event in runs.results["repair"].all_events
        if event.event_type_value == "ASSET_OBSERVATION"
    )
    assert (
        observation.event_specific_data.asset_observation.metadata["ts_codes"].value == REPAIR_CODES
    )
    one = next(
        event
        for event in runs.results["repair_one"].all_events
        if event.event_type_value == "ASSET_OBSERVATION"
    )
    assert one.event_specific_data.asset_observation.metadata["ts_codes"].value == ["000047.SZ"]


def test_sync_financial_data_stores_and_materializes_each_statement_of_the_period(runs):
    for api_name in REPORT_PERIOD_APIS:
        stored = runs.warehouse.read_frame(
            f"SELECT COUNT(*) AS n FROM {api_name} WHERE end_date = :period",
            {"period": dt.date(2026, 6, 30)},
        )
        assert stored["n"].iloc[0] > 0, api_name
    # Only balance_recent wrote other periods, and only of balancesheet.
    income = runs.warehouse.read_frame("SELECT DISTINCT end_date FROM income")
    assert [str(day)[:10] for day in income["end_date"]] == ["2026-06-30"]
    assert runs.asset_events("financials", "ASSET_MATERIALIZATION") == materialized_each(
        REPORT_PERIOD_APIS, ["2026-06-30"]
    )


def test_sync_financial_data_maps_zquants_balance_and_defaults_to_the_last_two_periods(runs):
    periods = [f"{period:%Y-%m-%d}" for period in recent_periods(market_today(), 2)]

    assert runs.asset_events("balance_recent", "ASSET_MATERIALIZATION") == materialized(
        "balancesheet", periods
    )
    stored = runs.warehouse.read_frame("SELECT DISTINCT end_date FROM balancesheet")
    assert sorted(str(day)[:10] for day in stored["end_date"]) == sorted({"2026-06-30", *periods})


def materialized_each(assets, partitions) -> list[tuple[str, str]]:
    return [pair for asset in assets for pair in materialized(asset, partitions)]


def test_example_task_logs_its_message_and_reports_its_attempt(runs):
    result = runs.results["demo"]
    messages = [entry.user_message for entry in runs.instance.all_logs(result.run_id)]

    assert "hello from the demo" in messages
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    assert output.event_specific_data.metadata["attempt"].value == 1


def test_sync_daily_data_refuses_an_end_date_in_the_future(resources, instance):
    future = f"{market_today() + dt.timedelta(days=1):%Y%m%d}"
    task = manual("late", "sync_daily_data", ts_code="000047.SZ", end_date=future)
    task |= {"max_retries": 2, "retry_interval": 0}
    job = task_definitions([task], resources).resolve_job_def(job_name("late"))

    result = job.execute_in_process(instance=instance, raise_on_error=False)

    assert not result.success
    (stats,) = instance.get_run_step_stats(result.run_id)
    assert stats.attempts == 1  # retrying cannot make a future date valid
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert f"end_date {future} is in the future" in failure.event_specific_data.error.message


def test_sync_trading_calendar_defaults_to_a_year_back_and_a_year_ahead(resources, instance):
    task = manual("calendar", "sync_trading_calendar")
    job = task_definitions([task], resources).resolve_job_def(job_name("calendar"))

    assert job.execute_in_process(instance=instance).success

    calendar = resources["warehouse"].read_frame(
        "SELECT exchange, MIN(cal_date) AS first, MAX(cal_date) AS last FROM trade_cal GROUP BY 1"
    )
    today = market_today()
    window = (today - dt.timedelta(days=365), today + dt.timedelta(days=365))
    for row in calendar.itertuples():
        assert (
            dt.date.fromisoformat(str(row.first)),
            dt.date.fromisoformat(str(row.last)),
        ) == window
    assert set(calendar["exchange"]) == {"SSE", "SZSE"}
