"""stock_screen and table_statistics materialized through Dagster on SQLite and PostgreSQL,
after the sample market was synced from the wire server through the real tushare SDK.

Screens are checked against pandas filters of the same tables (read with plain SQL, joined
and filtered by hand here), statistics against one SQL COUNT per number."""

import datetime as dt
import json
import uuid

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from zquant_pipelines.assets.screening import stock_screen, table_statistics
from zquant_pipelines.constants import ENV_SCREENS_FILE, TRADING_DAY_APIS
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.resources.warehouse_fingerprint import FINGERPRINT_COLUMN
from zquant_pipelines.screening.run import InputsMissingError, screen_days
from zquant_pipelines.screening.screens import load_screens
from zquant_pipelines.sync import market as sync
from zquant_pipelines.sync.factors import compute_and_store_factors
from zquant_pipelines.table_statistics import compute_table_statistics
from zquant_pipelines_tests.support.tushare_wire_server import TushareWireServer
from zquant_pipelines_tests.support.wire_clients import wire_client

AS_OF = "20261127"
# 12 weekdays, all open: history enough for the 5- and 10-day factors on the range's days.
SYNCED_DAYS = list(pd.bdate_range("2026-11-12", "2026-11-27").date)
RANGE = ("2026-11-26", "2026-11-27")
RANGE_DAYS = [dt.date(2026, 11, 26), dt.date(2026, 11, 27)]
HOLIDAY = "2026-10-05"
UNSYNCED_OPEN_DAY = "2026-10-23"
STATISTICS_TABLES = (*TRADING_DAY_APIS, "factor_daily")

SCREENS = """\
screens:
  - name: active
    conditions: [turnover_rate >= 3, amount > 50000]
  - name: mid_caps
    description: 20-day turnover over a market-value band
    conditions:
      - turnover_rate_ma_5 > 1.5 and total_mv between 300000 and 2000000
  - name: growth_not_st
    conditions:
      - not name like '%ST%'
      - market in ('创业板', '科创板') and pct_chg > 0
  - name: old_and_rising
    conditions: [list_date < '2010-01-01' and daily.close > daily.pre_close]
  - name: nothing
    conditions: [pe < -1000000]
"""


def oracle_filters(m: pd.DataFrame) -> dict[str, pd.Series]:
    """The screens above, written as pandas filters over the joined frame."""
    name = m["name"].fillna("")
    return {
        "active": (m["turnover_rate"] >= 3) & (m["amount"] > 50000),
        "mid_caps": (m["turnover_rate_ma_5"] > 1.5) & m["total_mv"].between(300000, 2000000),
        "growth_not_st": m["name"].notna()
        & ~name.str.contains("ST", regex=False)
        & m["market"].isin(["创业板", "科创板"])
        & (m["pct_chg"] > 0),
        "old_and_rising": (pd.to_datetime(m["list_date"]) < pd.Timestamp("2010-01-01"))
        & (m["close"] > m["pre_close"]),
        "nothing": m["pe"] < -1000000,
    }


def joined_day(warehouse: Warehouse, day: dt.date) -> pd.DataFrame:
    """The day's traded stocks with their daily_basic, factor_daily and stock_basic rows."""

    def day_rows(table):
        return warehouse.read_frame(f"SELECT * FROM {table} WHERE trade_date = :d", {"d": day})

    basic = day_rows("daily_basic").drop(columns=["close", "trade_date"])
    # A bare name factor_daily shares with daily_basic (zquant's turnover_rate, a copy)
    # reads daily_basic's.
    factors = day_rows("factor_daily").drop(columns=["trade_date"])
    factors = factors.drop(columns=[c for c in factors.columns if c in basic and c != "ts_code"])
    stocks = warehouse.read_frame("SELECT * FROM stock_basic")
    return (
        day_rows("daily")
        .merge(basic, on="ts_code", how="left")
        .merge(factors, on="ts_code", how="left")
        .merge(stocks, on="ts_code", how="left")
    )


class Synced:
    def __init__(self, warehouse: Warehouse, screens_path):
        self.warehouse = warehouse
        self.screens_path = screens_path


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def synced(request, tmp_path_factory):
    """A warehouse holding SYNCED_DAYS of the sample market, synced through the SDK."""
    folder = tmp_path_factory.mktemp(f"screening_{request.param}")
    cleanup = None
    if request.param == "sqlite":
        warehouse = Warehouse(url=f"sqlite:///{folder / 'wh.db'}")
    else:
        database_url = request.getfixturevalue("pg_database_url")
        schema = f"wh_{uuid.uuid4().hex[:10]}"
        warehouse = Warehouse(url=database_url, db_schema=schema)

        def cleanup():
            engine = sa.create_engine(database_url)
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            engine.dispose()

    with TushareWireServer(SampleMarketSource(as_of=AS_OF)) as server:
        client = wire_client(server, folder)
        sync.sync_stock_basic(client, warehouse)
        sync.sync_trade_cal(client, warehouse, dt.date(2026, 9, 1), dt.date(2026, 11, 30))
        for api_name in TRADING_DAY_APIS:
            sync.sync_trading_days(client, warehouse, api_name, SYNCED_DAYS)
    compute_and_store_factors(warehouse, SYNCED_DAYS)
    screens_path = folder / "screens.yaml"
    screens_path.write_text(SCREENS, encoding="utf-8")
    yield Synced(warehouse, screens_path)
    warehouse.dispose()
    if cleanup:
        cleanup()


@pytest.fixture(scope="module")
def materialized(synced, module_instance):
    """Both assets over RANGE as one run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV_SCREENS_FILE, str(synced.screens_path))
        return run_assets(synced, module_instance, range_tags(*RANGE))


def materializations(result, asset: str) -> list:
    return result.asset_materializations_for_node(asset)


def range_tags(start: str, end: str) -> dict:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


def run_assets(synced, instance, tags=None, partition_key=None, assets=None):
    return dg.materialize(
        assets or [stock_screen, table_statistics],
        instance=instance,
        resources={"warehouse": synced.warehouse},
        tags=tags,
        partition_key=partition_key,
        raise_on_error=False,
    )


def test_each_screen_selects_what_pandas_selects(synced, materialized):
    assert materialized.success
    for day in RANGE_DAYS:
        expected = oracle_filters(joined_day(synced.warehouse, day))
        joined = joined_day(synced.warehouse, day)
        stored = synced.warehouse.read_frame(
            "SELECT screen, ts_code FROM stock_screen WHERE trade_date = :d", {"d": day}
        )
        for screen, mask in expected.items():
            want = set(joined.loc[mask.fillna(False).astype(bool), "ts_code"])
            got = set(stored.loc[stored["screen"] == screen, "ts_code"])
            assert got == want, (day, screen)
            if screen != "nothing":
                assert want, f"{screen} selects no stock on {day}: the case proves nothing"


def test_the_values_that_decided_are_stored(synced, materialized):
    day = RANGE_DAYS[-1]
    joined = joined_day(synced.warehouse, day).set_index("ts_code")
    stored = synced.warehouse.read_frame(
        "SELECT ts_code, screen_values FROM stock_screen WHERE trade_date = :d"
        " AND screen = 'old_and_rising'",
        {"d": day},
    )
    for ts_code, text in zip(stored["ts_code"], stored["screen_values"], strict=True):
        row = joined.loc[ts_code]
        assert json.loads(text) == {
            "list_date": row["list_date"].isoformat(),
            "daily.close": row["close"],
            "pre_close": row["pre_close"],
        }


def test_each_day_of_the_range_is_materialized_in_one_run(materialized):
    for asset in ("stock_screen", "table_statistics"):
        done = [event.partition for event in materializations(materialized, asset)]
        assert sorted(done) == [f"{day:%Y-%m-%d}" for day in RANGE_DAYS]


def count(warehouse: Warehouse, sql: str, day: dt.date) -> int:
    return int(warehouse.read_frame(sql, {"d": day}).iloc[0, 0])


def test_table_statistics_equal_independent_counts(synced, materialized):
    warehouse = synced.warehouse
    stocks = warehouse.read_frame("SELECT list_date, delist_date FROM stock_basic")
    stored = warehouse.read_frame("SELECT * FROM table_statistics")
    assert len(stored) == len(RANGE_DAYS) * len(STATISTICS_TABLES)
    for row in stored.itertuples(index=False):
        day, table = row.trade_date, row.table_name
        where = f"FROM {table} WHERE trade_date = :d"
        listed = int(
            (
                (stocks["list_date"] <= day)
                & (stocks["delist_date"].isna() | (stocks["delist_date"] > day))
            ).sum()
        )
        distinct = count(
            warehouse, f"SELECT COUNT(*) FROM (SELECT DISTINCT ts_code {where}) s", day
        )
        nulls = json.loads(row.null_counts)
        columns = [c for c in warehouse.read_frame(f"SELECT * {where}", {"d": day}).columns]
        # PostgreSQL's generated row fingerprint is no data column (never NULL either).
        assert set(nulls) == set(columns) - {"ts_code", "trade_date", FINGERPRINT_COLUMN}
        for column, value in nulls.items():
            assert value == count(warehouse, f'SELECT COUNT(*) {where} AND "{column}" IS NULL', day)
        assert (row.row_count, row.distinct_stocks, row.listed_stocks) == (
            count(warehouse, f"SELECT COUNT(*) {where}", day),
            distinct,
            listed,
        )
        assert row.null_cells == sum(nulls.values())
        assert row.coverage == pytest.approx(distinct / listed)
    # factor_daily's long windows lack history here: the counts are not all zero.
    assert stored.loc[stored["table_name"] == "factor_daily", "null_cells"].min() > 0


def test_each_partition_carries_its_own_days_numbers_the_ui_plots(synced, materialized):
    warehouse = synced.warehouse
    statistics = {
        e.partition: e.metadata for e in materializations(materialized, "table_statistics")
    }
    screens = {e.partition: e.metadata for e in materializations(materialized, "stock_screen")}
    for day in RANGE_DAYS:
        key = f"{day:%Y-%m-%d}"
        assert statistics[key]["daily_rows"] == dg.IntMetadataValue(
            warehouse.count_rows("daily", trade_date=day)
        )
        assert isinstance(statistics[key]["daily_coverage"], dg.FloatMetadataValue)
        assert statistics[key]["rows"] == dg.IntMetadataValue(len(STATISTICS_TABLES))
        active = count(
            warehouse,
            "SELECT COUNT(*) FROM stock_screen WHERE trade_date = :d AND screen = 'active'",
            day,
        )
        assert screens[key]["active_stocks"] == dg.IntMetadataValue(active)
        assert screens[key]["rows"] == dg.IntMetadataValue(
            warehouse.count_rows("stock_screen", trade_date=day)
        )
    # The two days differ, so each partition shows its own day, not the run's totals.
    assert len({screens[f"{day:%Y-%m-%d}"]["rows"].value for day in RANGE_DAYS}) == 2


def test_a_holiday_writes_nothing_and_an_unsynced_day_is_refused_naming_the_table(synced):
    screens = load_screens(synced.screens_path)
    holiday = dt.date.fromisoformat(HOLIDAY)

    result = screen_days(synced.warehouse, screens, [holiday])
    with pytest.raises(InputsMissingError) as caught:
        screen_days(synced.warehouse, screens, [dt.date.fromisoformat(UNSYNCED_OPEN_DAY)])
    _, statistics = compute_table_statistics(synced.warehouse, [holiday])

    assert (result.rows, result.trade_dates, result.closed_dates) == (0, [], [holiday])
    assert synced.warehouse.count_rows("stock_screen", trade_date=holiday) == 0
    assert statistics.empty
    assert str(caught.value) == (
        "daily holds no row for 2026-10-23: materialize daily for that day first"
    )


# Dagster's handling of a failure, the same on both dialects: run on SQLite only.
@pytest.mark.parametrize("synced", ["sqlite"], indirect=True)
def test_a_bad_screens_file_fails_the_run_listing_every_problem(synced, instance, tmp_path):
    bad = tmp_path / "screens.yaml"
    bad.write_text(
        "screens:\n  - name: a\n    conditions: [total_mvv > 1, pe > 'x']\n", encoding="utf-8"
    )
    before = synced.warehouse.read_frame("SELECT * FROM stock_screen ORDER BY 1, 2, 3")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV_SCREENS_FILE, str(bad))
        result = run_assets(synced, instance, partition_key=RANGE[1], assets=[stock_screen])
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "unknown column 'total_mvv'" in message
    assert "type mismatch: pe is a number column, compared with the text 'x'" in message
    after = synced.warehouse.read_frame("SELECT * FROM stock_screen ORDER BY 1, 2, 3")
    pd.testing.assert_frame_equal(after, before)
