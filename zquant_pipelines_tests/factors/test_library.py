"""compute_factor_daily against a plain per-stock loop, and its window and input rules."""

import datetime as dt
import math
import random

import numpy as np
import pandas as pd
import pytest

from zquant_pipelines.factors.library import (
    FACTOR_COLUMNS,
    FACTOR_DAILY_COLUMNS,
    FACTOR_LOOKBACK_TRADING_DAYS,
    REGISTRY,
    compute_factor_daily,
)
from zquant_pipelines.resources import warehouse_schema
from zquant_pipelines_tests.support.factor_oracle import (
    assert_matches_loop,
    loop_factors,
    zquant_factors,
)
from zquant_pipelines_tests.support.synthetic_market import synthetic_market, weekdays

DATES = weekdays(dt.date(2025, 1, 2), 140)
STEADY, SUSPENDED, LISTED, NEW = "600000.SH", "000001.SZ", "300750.SZ", "688981.SH"
UNTRADED = "000002.SZ"  # adj_factor and daily_basic rows, never a daily row
EX_DAY = 100  # STEADY's ex-dividend day: adj_factor 1.0 -> 1.25
SUSPENSION = set(range(30, 45)) | {90, 91, 125}
SUSPENDED_EX_DAY = 40  # SUSPENDED's ex-date falls inside its suspension: 2.0 -> 2.2
FIRST_DAY = {STEADY: 0, SUSPENDED: 0, LISTED: 70, NEW: 137}
NO_BASIC_ROW = (STEADY, 3)
NO_ADJ_ROW = (LISTED, 100)


def adj_factor_of(code: str, day: int) -> float:
    if code == STEADY:
        return 1.25 if day >= EX_DAY else 1.0
    if code == SUSPENDED:
        return 2.2 if day >= SUSPENDED_EX_DAY else 2.0
    return 3.0 if code == LISTED else 1.0


def hand_panel() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Four stocks over 140 days: suspensions, a mid-window listing, a 3-day-old listing,
    two ex-dividend days, a missing daily_basic row and a missing adj_factor row."""
    rng = random.Random(20250102)
    daily, adj, basic = [], [], []
    for code, first in FIRST_DAY.items():
        hfq_close, previous = 10.0 * adj_factor_of(code, first), None
        for day in range(first, len(DATES)):
            factor = adj_factor_of(code, day)
            if (code, day) != NO_ADJ_ROW:
                adj.append({"ts_code": code, "trade_date": DATES[day], "adj_factor": factor})
            if code == SUSPENDED and day in SUSPENSION:
                continue
            calm = day % 3 != 0
            hfq_close *= 1 + (rng.uniform(-0.004, 0.004) if calm else rng.uniform(-0.05, 0.05))
            close = round(hfq_close / factor, 2)
            # pre_close is the previous close on today's share basis (ex-rights price).
            pre_close = round(previous[0] * previous[1] / factor, 2) if previous else close
            spread = 0.006 if calm else 0.02
            open_ = round(pre_close * (1 + rng.uniform(-spread, spread)), 2)
            daily.append(
                {
                    "ts_code": code,
                    "trade_date": DATES[day],
                    "open": open_,
                    "high": round(max(open_, close) * (1 + rng.uniform(0, spread)), 2),
                    "low": round(min(open_, close) * (1 - rng.uniform(0, spread)), 2),
                    "close": close,
                    "pre_close": pre_close,
                    "change": round(close - pre_close, 2),
                    "pct_chg": round((close / pre_close - 1) * 100, 4),
                    "vol": 1e5,
                    "amount": 1.5e6 if day % 5 == 0 else rng.uniform(1e5, 9e5),
                }
            )
            if (code, day) != NO_BASIC_ROW:
                turnover = 12.5 if day % 7 == 0 else rng.uniform(0.5, 8.0)
                # Market values (10k CNY) inside 50..200亿, above it, or inside by circ_mv only.
                total_mv = (1.2e6, 2.5e6, 3.0e6)[day % 3]
                circ_mv = None if day % 3 == 1 else (8e5, 9e5, 1.8e6)[day % 3]
                basic.append(
                    {
                        "ts_code": code,
                        "trade_date": DATES[day],
                        "turnover_rate": turnover,
                        "total_mv": total_mv,
                        "circ_mv": circ_mv,
                    }
                )
            previous = (close, factor)
    for day in range(0, len(DATES), 10):
        adj.append({"ts_code": UNTRADED, "trade_date": DATES[day], "adj_factor": 1.0})
        basic.append(
            {
                "ts_code": UNTRADED,
                "trade_date": DATES[day],
                "turnover_rate": 50.0,
                "total_mv": 1e6,
                "circ_mv": 1e6,
            }
        )
    return pd.DataFrame(daily), pd.DataFrame(adj), pd.DataFrame(basic)


# The factors whose windows count trading days (not zquant's calendar windows).
TRADING_DAY_COLUMNS = [f.name for f in REGISTRY.factors.values() if f.lookback_trading_days]


def rows_of(result: pd.DataFrame, code: str) -> pd.DataFrame:
    return result[result["ts_code"] == code].sort_values("trade_date", ignore_index=True)


@pytest.fixture(scope="module")
def panel():
    return hand_panel()


@pytest.fixture(scope="module")
def factors(panel):
    return compute_factor_daily(*panel)


def test_every_factor_matches_the_per_stock_loop(panel, factors):
    expected = loop_factors(*panel)
    assert_matches_loop(factors, expected)
    # The panel exercises every factor: each column has values and NULLs.
    for column in next(iter(expected.values())):
        assert factors[column].notna().any() and factors[column].isna().any(), column
    assert factors["active_days_120"].max() > 0
    assert factors["small_cross_days_120"].max() > 0


@pytest.mark.parametrize("literal", [False, True], ids=["intent", "zquant_literal"])
def test_zquant_s_factors_match_their_oracle_on_the_hand_panel(panel, literal):
    daily, _, basic = panel
    selection = REGISTRY.select(["turnover_rate", "hyper_activity"])
    result = compute_factor_daily(*panel, factors=selection, zquant_literal=literal)
    rounded = {f.name: 1.01e-5 for f in selection if literal and f.name.endswith("_tr")}
    assert_matches_loop(result, zquant_factors(daily, basic, literal=literal), rounded)
    assert result["halfyear_active_times"].max() > 0
    assert result["total90_turnover_volume"].max() > 0


def test_factors_match_the_loop_on_a_random_market():
    market = synthetic_market(12, 200, seed=5, missing_basic_rate=0.002, suspension_rate=0.03)
    assert_matches_loop(compute_factor_daily(*market), loop_factors(*market))


def test_output_columns_order_and_types(factors):
    assert tuple(factors.columns) == FACTOR_DAILY_COLUMNS
    assert FACTOR_DAILY_COLUMNS[:2] == ("ts_code", "trade_date")
    assert FACTOR_COLUMNS == warehouse_schema.FACTOR_COLUMNS
    assert all(type(day) is dt.date for day in factors["trade_date"])
    assert all(factors[column].dtype == np.float64 for column in FACTOR_COLUMNS)
    order = list(zip(factors["trade_date"], factors["ts_code"], strict=True))
    assert order == sorted(order)


def test_windows_that_are_not_full_are_null(factors):
    listed = rows_of(factors, LISTED)
    assert len(listed) == len(DATES) - FIRST_DAY[LISTED]
    # The 5th trading day has 5 turnover values but only 5 closes (momentum_5 needs 6).
    assert listed["turnover_rate_ma_5"].isna().tolist()[:5] == [True] * 4 + [False]
    assert listed["momentum_5"].isna().tolist()[:6] == [True] * 5 + [False]
    assert listed["volatility_20"].isna().tolist()[18:21] == [True, True, False]
    assert listed["momentum_60"].isna().tolist()[58:61] == [True, True, False]
    # 70 trading days: no 90-day mean and no 120-day counts, NULL rather than 0.
    for column in ("turnover_rate_ma_90", "active_days_120", "small_cross_days_120"):
        assert listed[column].isna().all(), column
    assert rows_of(factors, NEW)[TRADING_DAY_COLUMNS].isna().all().all()
    assert not (factors[[f"momentum_{n}" for n in (5, 20, 60)]] == -1).any().any()


def test_a_missing_input_value_makes_its_windows_null(factors):
    steady = rows_of(factors, STEADY)
    # daily_basic lacks day 3: a turnover window holding it is not full.
    assert steady["turnover_rate_ma_5"].isna().tolist()[3:9] == [True] * 5 + [False]
    assert steady["active_days_120"].isna().tolist()[119:125] == [True] * 4 + [False] * 2
    listed = rows_of(factors, LISTED).set_index("trade_date")
    # adj_factor lacks LISTED's day 100 (its 31st row): no hfq close there.
    assert math.isnan(listed.loc[DATES[100], "momentum_5"])
    assert math.isnan(listed.loc[DATES[105], "momentum_5"])
    assert not math.isnan(listed.loc[DATES[104], "momentum_5"])


def test_suspended_days_are_not_trading_days(panel, factors):
    daily = panel[0]
    suspended = rows_of(factors, SUSPENDED)
    assert not set(suspended["trade_date"]) & {DATES[day] for day in SUSPENSION}
    # The first day back: its 5-day momentum reaches over the 15 suspended days.
    back = suspended.index[suspended["trade_date"] == DATES[45]][0]
    rows = daily[daily["ts_code"] == SUSPENDED].sort_values("trade_date", ignore_index=True)
    hfq = rows["close"] * [adj_factor_of(SUSPENDED, DATES.index(d)) for d in rows["trade_date"]]
    assert rows["trade_date"][back - 5] == DATES[25]
    assert suspended["momentum_5"][back] == pytest.approx(hfq[back] / hfq[back - 5] - 1)
    # 122 trading days in 140: three rows have their 120-day counts.
    assert suspended["small_cross_days_120"].notna().sum() == 3


def test_ex_dividend_day_is_not_a_crash(panel, factors):
    daily = panel[0]
    steady_raw = daily[daily["ts_code"] == STEADY].set_index("trade_date")["close"]
    raw_move = steady_raw[DATES[EX_DAY]] / steady_raw[DATES[EX_DAY - 5]] - 1
    assert raw_move < -0.12  # the raw price falls ~20% on the ex-date
    steady = rows_of(factors, STEADY).set_index("trade_date")
    for day in (EX_DAY, EX_DAY + 1):
        assert abs(steady.loc[DATES[day], "momentum_5"]) < 0.1
    raw_returns = steady_raw.pct_change().iloc[EX_DAY - 19 : EX_DAY + 1]
    assert raw_returns.std() > 0.04
    assert steady.loc[DATES[EX_DAY], "volatility_20"] < 0.03
    # The same holds when the ex-date falls inside a suspension.
    suspended = rows_of(factors, SUSPENDED).set_index("trade_date")
    assert abs(suspended.loc[DATES[45], "momentum_5"]) < 0.1


def limit_panel(high: float, amount_kcny: float) -> tuple:
    """120 identical days at the small-cross limits (3% range, 1% move and body)."""
    rows = [
        {
            "ts_code": STEADY,
            "trade_date": day,
            "open": 10.0,
            "high": high,
            "low": 10.0,
            "close": 10.1,
            "pre_close": 10.0,
            "amount": amount_kcny,
        }
        for day in DATES[:120]
    ]
    daily = pd.DataFrame(rows)
    adj = daily[["ts_code", "trade_date"]].assign(adj_factor=1.0)
    basic = daily[["ts_code", "trade_date"]].assign(turnover_rate=10.0, total_mv=5e5, circ_mv=None)
    return daily, adj, basic


def test_limits_are_inclusive():
    at_limits = compute_factor_daily(*limit_panel(high=10.3, amount_kcny=1e6)).iloc[-1]
    assert at_limits["small_cross_days_120"] == 120
    assert at_limits["active_days_120"] == 120  # 1e6 thousand CNY = 1e9 CNY
    beyond = compute_factor_daily(*limit_panel(high=10.31, amount_kcny=999_999.99)).iloc[-1]
    assert beyond["small_cross_days_120"] == 0
    assert beyond["active_days_120"] == 0


def test_pct_chg_is_computed_from_prices_not_read(panel):
    daily, adj, basic = panel
    # tushare's pct_chg (in %) and change are not inputs: garbage there changes nothing.
    garbled = daily.assign(pct_chg=0.0, change=None)
    pd.testing.assert_frame_equal(
        compute_factor_daily(garbled, adj, basic), compute_factor_daily(daily, adj, basic)
    )


def test_trade_dates_select_rows_with_full_lookback(panel, factors):
    wanted = [DATES[130], DATES[40], dt.date(2030, 1, 1)]
    selected = compute_factor_daily(*panel, trade_dates=wanted)
    expected = factors[factors["trade_date"].isin(wanted)].reset_index(drop=True)
    pd.testing.assert_frame_equal(selected, expected)
    assert set(selected["trade_date"]) == {DATES[40], DATES[130]}
    # SUSPENDED does not trade on day 40, so it has no row that day.
    assert DATES[40] not in set(selected.loc[selected["ts_code"] == SUSPENDED, "trade_date"])
    assert selected["active_days_120"].notna().any()


def test_the_lookback_window_is_enough():
    daily, adj, basic = synthetic_market(40, 320, seed=11, suspension_rate=0.02)
    dates = sorted(set(daily["trade_date"]))
    last_day = dates[-1]
    first_read = dates[-1 - FACTOR_LOOKBACK_TRADING_DAYS]
    window = [frame[frame["trade_date"] >= first_read] for frame in (daily, adj, basic)]
    from_window = compute_factor_daily(*window, trade_dates=[last_day])
    from_history = compute_factor_daily(daily, adj, basic, trade_dates=[last_day])
    pd.testing.assert_frame_equal(from_window, from_history)
    # Meaningful only if stocks with suspensions in the window still got their counts.
    rows_read = window[0].groupby("ts_code").size()
    suspended = rows_read[rows_read < FACTOR_LOOKBACK_TRADING_DAYS + 1].index
    counted = from_window[from_window["ts_code"].isin(suspended)]["active_days_120"].notna()
    assert counted.sum() > 3


def test_empty_input_gives_an_empty_table(panel):
    daily, adj, basic = (frame.iloc[0:0] for frame in panel)
    result = compute_factor_daily(daily, adj, basic)
    assert tuple(result.columns) == FACTOR_DAILY_COLUMNS
    assert result.empty


@pytest.mark.parametrize(
    ("table", "change", "message"),
    [
        ("daily", lambda f: f.drop(columns=["pre_close"]), r"daily lacks columns \['pre_close'\]"),
        ("daily_basic", lambda f: f.drop(columns=["turnover_rate"]), "daily_basic lacks"),
        ("daily", lambda f: pd.concat([f, f.iloc[[5]]]), "daily has more than one row for"),
        ("adj_factor", lambda f: pd.concat([f, f.iloc[[7]]]), "adj_factor has more than one"),
        ("daily", lambda f: f.assign(close=f["close"].astype(object)).pipe(_set, "close", "n/a"),
         r"daily.close holds a value that is not a number: 'n/a'"),
        ("daily", lambda f: _set(f, "pre_close", 0.0), r"daily.pre_close must be positive, got"),
        ("adj_factor", lambda f: _set(f, "adj_factor", -1.0), r"adj_factor.adj_factor must be"),
        ("daily", lambda f: _set(f, "ts_code", None), r"daily.ts_code is null in row"),
        ("daily_basic", lambda f: _set(f.astype({"trade_date": object}), "trade_date", "x"),
         r"daily_basic.trade_date 'x' is not a date"),
    ],
)  # fmt: skip
def test_bad_input_names_the_field_and_value(panel, table, change, message):
    frames = dict(zip(("daily", "adj_factor", "daily_basic"), panel, strict=True))
    frames[table] = change(frames[table])
    with pytest.raises(ValueError, match=message):
        compute_factor_daily(**frames)


def _set(frame: pd.DataFrame, column: str, value) -> pd.DataFrame:
    changed = frame.copy()
    changed.loc[changed.index[10], column] = value
    return changed


def test_dates_as_iso_text_or_timestamps_are_the_same_days(panel, factors):
    daily, adj, basic = panel
    as_text = daily.assign(trade_date=[day.isoformat() for day in daily["trade_date"]])
    as_timestamps = basic.assign(trade_date=pd.to_datetime(basic["trade_date"]))
    pd.testing.assert_frame_equal(compute_factor_daily(as_text, adj, as_timestamps), factors)
