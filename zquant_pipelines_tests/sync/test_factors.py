"""compute_and_store_factors on a real warehouse (SQLite and PostgreSQL): a factor selection
computes and writes only its columns and keeps the others, a window factor_daily lacks gets
a column, zquant_literal stores zquant's behaviour, and what is stored equals the library's
result over the whole history (the look-back read is enough, calendar windows included)."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from zquant_pipelines.factors.library import REGISTRY, compute_factor_daily
from zquant_pipelines.resources.warehouse_schema import TABLE_COLUMNS
from zquant_pipelines.sync.factors import compute_and_store_factors
from zquant_pipelines.sync.market import REFERENCE_EXCHANGE
from zquant_pipelines_tests.support.synthetic_market import synthetic_market

N_DAYS = 320


def store_market(warehouse) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    market = synthetic_market(8, N_DAYS, seed=21, suspension_rate=0.03, delisting_share=0.2)
    for table, frame in zip(("daily", "adj_factor", "daily_basic"), market, strict=True):
        warehouse.upsert(table, frame.reindex(columns=TABLE_COLUMNS[table]))
    days = pd.date_range(market[0]["trade_date"].min(), market[0]["trade_date"].max()).date
    open_days = set(market[0]["trade_date"])
    calendar = pd.DataFrame(
        {
            "exchange": REFERENCE_EXCHANGE,
            "cal_date": days,
            "is_open": [int(day in open_days) for day in days],
            "pretrade_date": None,
        }
    )
    warehouse.upsert("trade_cal", calendar)
    return market


def stored(warehouse, day: dt.date) -> pd.DataFrame:
    rows = warehouse.read_table("factor_daily", {"trade_date": day})
    return rows.sort_values("ts_code", ignore_index=True)


def expected_rows(market, day: dt.date, factors, zquant_literal=False) -> pd.DataFrame:
    result = compute_factor_daily(
        *market, trade_dates=[day], factors=factors, zquant_literal=zquant_literal
    )
    return result.drop(columns="trade_date").sort_values("ts_code", ignore_index=True)


def test_a_selection_writes_its_columns_and_keeps_the_others(warehouse):
    market = store_market(warehouse)
    day = sorted(set(market[0]["trade_date"]))[-1]
    everything = list(REGISTRY.factors.values())
    compute_and_store_factors(warehouse, [day])
    first = stored(warehouse, day)
    pd.testing.assert_frame_equal(
        first[["ts_code", *REGISTRY.columns]],
        expected_rows(market, day, everything),
        check_dtype=False,
    )
    assert first["ma90_tr"].notna().any() and first["total90_xcross"].notna().any()

    hyper = REGISTRY.select(["2"])  # zquant's factor id of hyper_activity
    result = compute_and_store_factors(warehouse, [day], factors=hyper, zquant_literal=True)

    assert result.trade_dates == [day]
    second = stored(warehouse, day)
    literal = expected_rows(market, day, hyper, zquant_literal=True)
    hyper_columns = [factor.name for factor in hyper]
    pd.testing.assert_frame_equal(second[["ts_code", *hyper_columns]], literal, check_dtype=False)
    assert not second[hyper_columns].equals(first[hyper_columns])  # literal differs
    others = [column for column in REGISTRY.columns if column not in hyper_columns]
    pd.testing.assert_frame_equal(second[others], first[others])


def test_another_window_gets_a_column_of_its_own(warehouse):
    market = store_market(warehouse)
    day = sorted(set(market[0]["trade_date"]))[-1]
    wanted = REGISTRY.select(["ma120_tr", "momentum_250"])

    def stored_with_added_columns() -> pd.DataFrame:
        return warehouse.read_frame(
            "SELECT * FROM factor_daily WHERE trade_date = :day ORDER BY ts_code", {"day": day}
        )

    compute_and_store_factors(warehouse, [day], factors=wanted)
    rows = stored_with_added_columns()
    # A later run of every registered factor in the same process keeps them.
    compute_and_store_factors(warehouse, [day])
    after = stored_with_added_columns()

    expected = expected_rows(market, day, wanted)
    pd.testing.assert_frame_equal(
        rows[["ts_code", "ma120_tr", "momentum_250"]], expected, check_dtype=False
    )
    assert rows["ma120_tr"].notna().any() and rows["momentum_250"].notna().any()
    assert rows[list(REGISTRY.columns)].isna().all().all()  # nothing else computed yet
    pd.testing.assert_frame_equal(
        after[["ma120_tr", "momentum_250"]], rows[["ma120_tr", "momentum_250"]]
    )
    assert after["ma5_tr"].notna().any()


@pytest.mark.parametrize("selection", [["no_such_factor"], ["ma0_tr"], [7]])
def test_an_unknown_factor_is_named(selection):
    with pytest.raises(ValueError, match=rf"factor {selection[0]!r} is not known"):
        REGISTRY.select(selection)


def test_the_model_ma_window_is_bounded_as_zquant_bounds_it():
    with pytest.raises(ValueError, match="turnover_rate_model_ma window 61 is outside"):
        REGISTRY.select(["turnover_rate_model_ma61"])
    assert np.isfinite(len(REGISTRY.select(["turnover_rate_model_ma60"])))
