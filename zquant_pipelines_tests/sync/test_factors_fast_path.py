"""The factor job around the compute (sync/factors.py) on real SQLite and PostgreSQL: its
projected reads and bulk writes leave exactly the table the plain path (SELECT *, compute,
one replace_partition per day) leaves, on a first run, a re-run and a run for some stocks."""

import pandas as pd
import pytest
import sqlalchemy as sa

from zquant_pipelines.factors.library import FACTOR_LOOKBACK_TRADING_DAYS, compute_factor_daily
from zquant_pipelines.sync.factors import compute_and_store_factors, lookback_start
from zquant_pipelines_tests.support.synthetic_market import store_market, synthetic_market
from zquant_pipelines_tests.support.warehouse_rows import contents

STOCKS = 12
WANTED_DAYS = 15


def plain_job(warehouse, days) -> None:
    """The job as it was before the fast path: SELECT * of each input over the look-back,
    the compute, then each day's rows through replace_partition."""
    start = lookback_start(warehouse, days[0], FACTOR_LOOKBACK_TRADING_DAYS)
    params = {"start": start, "end": days[-1]}
    inputs = [
        warehouse.read_frame(
            f"SELECT * FROM {table} WHERE trade_date BETWEEN :start AND :end", params
        )
        for table in ("daily", "adj_factor", "daily_basic")
    ]
    factors = compute_factor_daily(*inputs, trade_dates=days)
    for day, frame in factors.groupby("trade_date"):
        warehouse.replace_partition("factor_daily", frame, day)


def empty_factor_table(warehouse) -> None:
    with warehouse.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM factor_daily"))


def test_fast_job_leaves_the_table_the_plain_job_leaves(warehouse):
    market = synthetic_market(
        STOCKS, FACTOR_LOOKBACK_TRADING_DAYS + WANTED_DAYS, 7, missing_basic_rate=0.05
    )
    days = store_market(warehouse, *market)[-WANTED_DAYS:]
    plain_job(warehouse, days)
    expected = contents(warehouse, "factor_daily")
    assert len(expected) > STOCKS * (WANTED_DAYS - 2)
    assert any(row["active_days_120"] is None for row in expected)
    assert any(row["volatility_20"] is not None for row in expected)

    empty_factor_table(warehouse)
    result = compute_and_store_factors(warehouse, days)
    assert contents(warehouse, "factor_daily") == expected
    assert result.trade_dates == days and result.rows == len(expected)

    # A re-run over stored days merges (the stage path) and changes nothing.
    compute_and_store_factors(warehouse, days)
    assert contents(warehouse, "factor_daily") == expected

    # Some stocks only: their rows come back, the other stocks' rows stay.
    some = sorted({row["ts_code"] for row in expected})[:3]
    with warehouse.engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM factor_daily WHERE ts_code IN :codes").bindparams(
                sa.bindparam("codes", expanding=True)
            ),
            {"codes": some},
        )
    compute_and_store_factors(warehouse, days, some)
    assert contents(warehouse, "factor_daily") == expected


def test_a_day_without_market_data_writes_no_day(warehouse):
    """The last stored market day plus the next open day, which has no market data yet:
    refused before anything is written (the days are written in one transaction)."""
    market = synthetic_market(4, FACTOR_LOOKBACK_TRADING_DAYS + 3, 3)
    days = store_market(warehouse, *market)
    after = pd.date_range(days[-1], periods=5, freq="D").date[1:]
    calendar = pd.DataFrame({"exchange": "SSE", "cal_date": after, "pretrade_date": None})
    calendar["is_open"] = [int(day.weekday() < 5) for day in after]
    warehouse.upsert("trade_cal", calendar[["exchange", "cal_date", "is_open", "pretrade_date"]])
    next_open = min(day for day in after if day.weekday() < 5)

    with pytest.raises(
        ValueError, match=f"factor_daily for {next_open:%Y-%m-%d}: no stock has market data"
    ):
        compute_and_store_factors(warehouse, [days[-1], next_open])
    assert warehouse.count_rows("factor_daily") == 0
