"""zquant's turnover_rate and hyper_activity factors against a per-stock oracle written from
zquant's code (support/factor_oracle.zquant_factors), in both behaviours: the documented
intent and zquant's literal one (zquant_literal)."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from zquant_pipelines.factors.library import REGISTRY, compute_factor_daily
from zquant_pipelines_tests.support.factor_oracle import assert_matches_loop, zquant_factors
from zquant_pipelines_tests.support.synthetic_market import synthetic_market, weekdays

ZQUANT_COLUMNS = [factor.name for factor in REGISTRY.select(["turnover_rate", "hyper_activity"])]
# zquant rounds ma{N}_tr to 5 dp; its loop sums in another order than the panel, so a value
# on a rounding tie may land on the other side: at most one unit of the 5th decimal.
LITERAL_TOLERANCE = {name: 1.01e-5 for name in ZQUANT_COLUMNS if name.endswith("_tr")}
SHARED_FIXTURE = dict(
    n_stocks=30,
    n_days=260,
    seed=14,
    suspension_rate=0.03,
    missing_basic_rate=0.01,
    late_listing_share=0.3,
    delisting_share=0.2,
    dividend_rate=0.01,
)


@pytest.fixture(scope="module")
def market():
    daily, adj, basic = synthetic_market(**SHARED_FIXTURE)
    # A missing price (zquant skips the row for the small cross) and busy days at the
    # activity limits, so every flag and count has days on both sides.
    daily.loc[daily.index[::97], "pre_close"] = np.nan
    busy = daily.index[::9]
    daily.loc[busy, "amount"] = np.where(np.arange(len(busy)) % 2, 5e5, 2e6)
    basic.loc[basic.index[::9], "turnover_rate"] = 15.0
    return daily, adj, basic


@pytest.mark.parametrize("literal", [False, True], ids=["intent", "zquant_literal"])
def test_each_zquant_factor_equals_the_per_stock_oracle(market, literal):
    daily, adj, basic = market
    selection = REGISTRY.select(["turnover_rate", "hyper_activity"])
    result = compute_factor_daily(daily, adj, basic, factors=selection, zquant_literal=literal)

    assert list(result.columns[2:]) == ZQUANT_COLUMNS
    expected = zquant_factors(daily, basic, literal=literal)
    assert_matches_loop(result, expected, LITERAL_TOLERANCE if literal else None)
    # The fixture exercises every column: values that differ, and (bar the never-NULL
    # count) NULLs where zquant stores none or a window is short.
    for column in ZQUANT_COLUMNS:
        assert result[column].nunique() > 1, column
        never_null = {"halfyear_active_times"} | ({"turnover_rate_model_ma5"} if literal else set())
        if column not in never_null:
            assert result[column].isna().any(), column


def test_the_literal_behaviour_differs_where_zquant_s_code_contradicts_its_docs(market):
    daily, adj, basic = market
    selection = REGISTRY.select(["hyper_activity"])
    intent = compute_factor_daily(daily, adj, basic, factors=selection)
    literal = compute_factor_daily(daily, adj, basic, factors=selection, zquant_literal=True)
    # 1亿 instead of 10亿: zquant's code counts more active days than its comment says.
    stored = literal["halfyear_active_times"].notna()  # zquant stores no row elsewhere
    column = "halfyear_active_times"
    more = literal.loc[stored, column] - intent.loc[stored, column]
    assert (more >= 0).all() and (more > 0).any()
    # The always-zero price change admits days that moved more than 1%.
    assert (literal["total90_xcross"] > intent["total90_xcross"]).any()
    # Short windows: zquant's 0.0 and partial counts where the intent is NULL.
    short = intent["ma90_tr"].isna() & literal["ma90_tr"].notna()
    assert short.any() and (literal.loc[short, "ma90_tr"] == 0.0).all()


def one_stock(days: int, **columns) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    dates = weekdays(dt.date(2025, 1, 2), days)
    prices = {"open": 10.0, "high": 10.2, "low": 10.0, "close": 10.0, "pre_close": 10.0}
    daily = pd.DataFrame(
        {"ts_code": "600000.SH", "trade_date": dates, **prices, "amount": 2e6}
    ).assign(**{k: v for k, v in columns.items() if k in prices or k == "amount"})
    basic = pd.DataFrame(
        {"ts_code": "600000.SH", "trade_date": dates, "turnover_rate": 12.0}
    ).assign(total_mv=1e6, circ_mv=None)
    adj = daily[["ts_code", "trade_date"]].assign(adj_factor=1.0)
    return daily, adj, basic


@pytest.mark.parametrize(
    ("columns", "intent", "literal"),
    [
        # 1,000,000 千元 is 10亿 exactly: "> 10亿" leaves it out; zquant's code (> 1亿) not.
        ({"amount": 1_000_000.0}, 0.0, 1.0),
        ({"amount": 500_000.0}, 0.0, 1.0),
        ({"amount": 1_000_000.01}, 1.0, 1.0),
        # zquant's code: amount > 100,000 千元, strictly.
        ({"amount": 100_000.0}, 0.0, 0.0),
        ({"amount": 100_000.01}, 0.0, 1.0),
    ],
)
def test_half_year_amount_limit(columns, intent, literal):
    market = one_stock(5, **columns)
    factor = REGISTRY.select(["halfyear_active_times"])
    got = [
        compute_factor_daily(*market, factors=factor, zquant_literal=mode).iloc[0]
        for mode in (False, True)
    ]
    assert [row["halfyear_active_times"] for row in got] == [intent, literal]


def test_small_cross_price_change_is_against_pre_close():
    # A 2% rise on a narrow day: zquant's (close - close) / close passes it, the intent not.
    market = one_stock(3, open=10.2, close=10.2, high=10.25, low=10.15, pre_close=10.0)
    factor = REGISTRY.select(["theday_xcross"])
    intent = compute_factor_daily(*market, factors=factor)["theday_xcross"]
    literal = compute_factor_daily(*market, factors=factor, zquant_literal=True)["theday_xcross"]
    assert intent.tolist() == [0.0] * 3
    assert literal.tolist() == [1.0] * 3


def test_calendar_windows_reach_180_days_back_not_n_trading_days():
    # 130 weekdays: ~180 calendar days. ma90_tr needs 90 records within 180 calendar days.
    market = one_stock(130)
    result = compute_factor_daily(*market, factors=REGISTRY.select(["ma90_tr", "total90_xcross"]))
    first = result["ma90_tr"].notna().idxmax()
    assert first == 89  # the 90th record
    # After 180 calendar days the earliest rows leave the window, the count stays 90 (last 90).
    assert result["total90_xcross"].iloc[-1] == 90.0


def test_the_turnover_rate_ma_model_uses_2x_window_calendar_days():
    market = one_stock(30)
    daily, adj, basic = market
    basic = basic.drop(index=[10, 11, 12])  # a gap: fewer than 5 values in 10 calendar days
    factor = REGISTRY.select(["turnover_rate_model_ma5"])
    intent = compute_factor_daily(daily, adj, basic, factors=factor)["turnover_rate_model_ma5"]
    literal = compute_factor_daily(daily, adj, basic, factors=factor, zquant_literal=True)
    assert intent.iloc[:4].isna().all() and intent.iloc[4] == 12.0
    assert literal["turnover_rate_model_ma5"].iloc[:4].tolist() == [-1.0] * 4
    # Right after the gap only 4 values lie within 10 calendar days; a day later 5 again.
    assert np.isnan(intent.iloc[13]) and intent.iloc[14] == 12.0
    assert literal["turnover_rate_model_ma5"].iloc[13] == -1.0
