"""A data action given no end_date works on the latest open day on or before today per the
synced calendar (zquant's documented default), through the real tushare SDK against the
wire server: a closed today syncs the open day before it, and a day tushare has not yet
published fails the run instead of writing nothing."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from zquant_pipelines.assets.partitions import PARTITION_DATE_FORMAT
from zquant_pipelines.constants import API_FIELDS
from zquant_pipelines.dates import market_today, to_tushare_date
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.sync.market import to_warehouse_frame
from zquant_pipelines.tasks.builders import job_name
from zquant_pipelines_tests.support.wire_clients import wire_resources
from zquant_pipelines_tests.tasks.support import task_definitions


class TodayClosed:
    """The sample market, except its calendar has today as a holiday (as on a weekend)."""

    def __init__(self):
        self.market = SampleMarketSource()
        self.today = to_tushare_date(market_today())

    def query(self, api_name, **params):
        frame = self.market.query(api_name, **params)
        if api_name == "trade_cal":
            frame.loc[frame["cal_date"] == self.today, "is_open"] = 0
        return frame

    def last_open_day_before_today(self) -> dt.date:
        start = to_tushare_date(market_today() - dt.timedelta(days=30))
        calendar = self.query("trade_cal", exchange="SSE", start_date=start, end_date=self.today)
        days = calendar.loc[calendar["is_open"] == 1, "cal_date"]
        return dt.datetime.strptime(max(days), "%Y%m%d").date()


def manual(name: str, action: str, **params) -> dict:
    config = {"task_action": action, **params}
    return {"name": name, "task_type": "manual_task", "max_retries": 0, "config": config}


TASKS = [
    manual("calendar", "sync_trading_calendar"),
    manual("stocks", "sync_stock_list"),
    manual("bars", "sync_all_daily_data"),
    manual("basics", "sync_daily_basic_data"),
    manual("technical", "sync_factor_data"),
    manual("technical_pro", "sync_stkfactorpro_data"),
]


@pytest.fixture
def backing():
    return TodayClosed()


@pytest.fixture
def server(backing, tushare_server_factory):
    return tushare_server_factory(backing)


@pytest.fixture
def defs(server, tmp_path):
    resources = wire_resources(server, tmp_path)
    yield task_definitions(TASKS, resources)
    resources["warehouse"].dispose()


def run_task(defs, instance, name: str) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(job_name(name))
    return job.execute_in_process(instance=instance, raise_on_error=False)


def materialized_partitions(result: dg.ExecuteInProcessResult) -> list[tuple[str, str]]:
    return [
        (event.asset_key.to_user_string(), event.partition)
        for event in result.all_events
        if event.event_type_value == "ASSET_MATERIALIZATION" and event.partition
    ]


def test_no_end_date_syncs_the_latest_open_day_when_today_is_closed(defs, instance, server):
    assert run_task(defs, instance, "calendar").success
    assert run_task(defs, instance, "stocks").success
    day = server.backing.last_open_day_before_today()
    server.reset_calls()

    result = run_task(defs, instance, "bars")

    assert result.success
    assert [c.params["trade_date"] for c in server.calls_to("daily")] == [to_tushare_date(day)]
    key = f"{day:{PARTITION_DATE_FORMAT}}"
    assert materialized_partitions(result) == [("daily", key), ("adj_factor", key)]
    warehouse = defs.resources["warehouse"]
    served = to_warehouse_frame(
        "daily", server.backing.query("daily", trade_date=to_tushare_date(day))
    ).sort_values("ts_code", ignore_index=True)
    stored = warehouse.read_frame(
        "SELECT * FROM daily WHERE trade_date = :day ORDER BY ts_code", {"day": day}
    ).loc[:, list(API_FIELDS["daily"])]
    pd.testing.assert_frame_equal(stored, served, check_dtype=False)


def test_no_end_date_before_publication_fails_and_writes_nothing(defs, instance, server):
    assert run_task(defs, instance, "calendar").success
    assert run_task(defs, instance, "stocks").success
    day = server.backing.last_open_day_before_today()
    server.short_reply("daily_basic", 0, trade_date=to_tushare_date(day))

    result = run_task(defs, instance, "basics")

    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert (
        f"daily_basic for {day:%Y-%m-%d} is not published yet: tushare replied 0 rows"
        in failure.event_specific_data.error.to_string()
    )
    assert materialized_partitions(result) == []
    assert defs.resources["warehouse"].count_rows("daily_basic") == 0
    assert instance.get_materialized_partitions(dg.AssetKey("daily_basic")) == set()


@pytest.mark.parametrize(
    ("task_name", "api_name"),
    [("basics", "daily_basic"), ("technical", "stk_factor"), ("technical_pro", "stk_factor_pro")],
)
def test_whole_market_actions_default_to_the_latest_open_day(
    defs, instance, server, task_name, api_name
):
    """zquant's sync_daily_basic_data, sync_factor_data and sync_stkfactorpro_data with no
    dates: the latest open day on or before today (today is closed here)."""
    assert run_task(defs, instance, "calendar").success
    assert run_task(defs, instance, "stocks").success
    day = server.backing.last_open_day_before_today()
    server.reset_calls()

    result = run_task(defs, instance, task_name)

    assert result.success
    assert [c.params["trade_date"] for c in server.calls_to(api_name)] == [to_tushare_date(day)]
    assert materialized_partitions(result) == [(api_name, f"{day:{PARTITION_DATE_FORMAT}}")]
