"""The sample market's stk_factor and stk_factor_pro against an independent oracle: for a
stock and a day D, the qfq history as of D (price x adj_factor(t) / adj_factor(D), from the
market's daily and adj_factor replies), for stk_factor_pro the unadjusted and the hfq
(price x adj_factor(t)) ones too, run through plain loops of the textbook formulas."""

import numpy as np
import pandas as pd
import pytest

from zquant_pipelines.constants import API_FIELDS
from zquant_pipelines.sample_market import sample_market

AS_OF = "20261127"
# Three stocks with ex-right days in their history (adj_factor moves), three days each.
STOCKS = 3
DAYS_PER_STOCK = ("20240105", "20251015", "20261127")
MA_WINDOWS = (5, 10, 20, 30, 60, 90, 250)


@pytest.fixture(scope="module")
def market():
    return sample_market(as_of=AS_OF)


def ema(values: list[float], alpha: float) -> list[float]:
    """Exponential average starting at the first value that is not NaN."""
    out, previous = [], None
    for value in values:
        if not np.isnan(value):
            previous = value if previous is None else alpha * value + (1 - alpha) * previous
        out.append(np.nan if previous is None else previous)
    return out


def window(values: list[float], end: int, length: int) -> list[float]:
    return values[max(0, end - length + 1) : end + 1]


def oracle(high: list[float], low: list[float], close: list[float]) -> dict[str, float]:
    """Every indicator of the last day of a qfq history, by the textbook formulas."""
    last = len(close) - 1
    dif = [f - s for f, s in zip(ema(close, 2 / 13), ema(close, 2 / 27), strict=True)]
    dea = ema(dif, 2 / 10)
    rsv = []
    for day in range(len(close)):
        lowest, highest = min(window(low, day, 9)), max(window(high, day, 9))
        rsv.append(50.0 if highest == lowest else (close[day] - lowest) / (highest - lowest) * 100)
    k = ema(rsv, 1 / 3)
    d = ema(k, 1 / 3)
    values = {
        "macd_dif": dif[last],
        "macd_dea": dea[last],
        "macd": 2 * (dif[last] - dea[last]),
        "kdj_k": k[last],
        "kdj_d": d[last],
        "kdj_j": 3 * k[last] - 2 * d[last],
    }
    change = [np.nan] + [close[i] - close[i - 1] for i in range(1, len(close))]
    for n in (6, 12, 24):
        gains = ema([max(c, 0.0) if not np.isnan(c) else c for c in change], 1 / n)
        sizes = ema([abs(c) for c in change], 1 / n)
        values[f"rsi_{n}"] = gains[last] / sizes[last] * 100
    closes = window(close, last, 20)
    mid = sum(closes) / len(closes)
    sd = (sum((c - mid) ** 2 for c in closes) / len(closes)) ** 0.5
    values |= {"boll_upper": mid + 2 * sd, "boll_mid": mid, "boll_lower": mid - 2 * sd}
    typical = [(h + lo + c) / 3 for h, lo, c in zip(high, low, close, strict=True)]
    recent = window(typical, last, 14)
    mean = sum(recent) / len(recent)
    deviation = sum(abs(t - mean) for t in recent) / len(recent)
    values["cci"] = (typical[last] - mean) / (0.015 * deviation)
    for n in MA_WINDOWS:
        closes = window(close, last, n)
        values[f"ma_{n}"] = sum(closes) / len(closes)
        values[f"ema_{n}"] = ema(close, 2 / (n + 1))[last]
    true_ranges = [high[0] - low[0]] + [
        max(high[i] - low[i], abs(close[i - 1] - high[i]), abs(close[i - 1] - low[i]))
        for i in range(1, len(close))
    ]
    recent = window(true_ranges, last, 20)
    values["atr"] = sum(recent) / len(recent)
    return values


def pro_column(indicator: str, adjustment: str) -> str:
    """stk_factor_pro's name of an indicator on prices of an adjustment (tushare's naming)."""
    if indicator == "kdj_j":
        return f"kdj_{adjustment}"
    for family in ("ma_", "ema_", "rsi_"):
        if indicator.startswith(family):
            return f"{family}{adjustment}_{indicator.removeprefix(family)}"
    return f"{indicator}_{adjustment}"


STK_FACTOR_INDICATORS = (
    *("macd_dif", "macd_dea", "macd", "kdj_k", "kdj_d", "kdj_j", "rsi_6", "rsi_12", "rsi_24"),
    *("boll_upper", "boll_mid", "boll_lower", "cci"),
)


def adjusted_stocks(market) -> list[str]:
    """Stocks traded on every day of DAYS_PER_STOCK whose adj_factor moved before the last."""
    factors = market.query("adj_factor", start_date="20190101", end_date=AS_OF)
    moved = factors.groupby("ts_code")["adj_factor"].nunique()
    traded = [set(market.query("daily", trade_date=day)["ts_code"]) for day in DAYS_PER_STOCK]
    codes = sorted(set(moved[moved > 2].index).intersection(*traded))
    assert len(codes) >= STOCKS
    return codes[:STOCKS]


def histories(market):
    """(stock, day, the stock's bars with their adj_factor through the day) for the
    adjusted stocks and each of DAYS_PER_STOCK."""
    for code in adjusted_stocks(market):
        bars = market.query("daily", ts_code=code).merge(
            market.query("adj_factor", ts_code=code), on=["ts_code", "trade_date"]
        )
        bars = bars.sort_values("trade_date").reset_index(drop=True)
        for day in DAYS_PER_STOCK:
            yield code, day, bars[bars["trade_date"] <= day]


def test_stk_factor_matches_the_oracle_on_qfq_prices_as_of_each_day(market):
    for code, day, history in histories(market):
        scale = history["adj_factor"] / history["adj_factor"].iloc[-1]
        qfq = {price: list(history[price] * scale) for price in ("high", "low", "close")}
        expected = oracle(qfq["high"], qfq["low"], qfq["close"])
        [row] = market.query("stk_factor", ts_code=code, trade_date=day).to_dict("records")
        for name in STK_FACTOR_INDICATORS:
            assert row[name] == pytest.approx(expected[name], abs=1e-3), (code, day, name)
        last = history.iloc[-1]
        assert row["close_qfq"] == last["close"]
        assert row["close_hfq"] == pytest.approx(last["close"] * last["adj_factor"], abs=1e-4)


def test_stk_factor_rows_are_daily_s_rows(market):
    for day in DAYS_PER_STOCK:
        daily = market.query("daily", trade_date=day)
        factors = market.query("stk_factor", trade_date=day)
        pd.testing.assert_frame_equal(
            factors[["ts_code", "trade_date", "open", "high", "low", "close", "vol", "amount"]],
            daily[["ts_code", "trade_date", "open", "high", "low", "close", "vol", "amount"]],
        )
        assert (factors["pct_change"] == daily["pct_chg"]).all()


def test_stk_factor_pro_matches_the_oracle_unadjusted_hfq_and_qfq_as_of_each_day(market):
    checked, versions_differ = set(), []
    for code, day, history in histories(market):
        factor = history["adj_factor"]
        scales = {"bfq": 1.0, "hfq": factor, "qfq": factor / factor.iloc[-1]}
        [row] = market.query("stk_factor_pro", ts_code=code, trade_date=day).to_dict("records")
        for adjustment, scale in scales.items():
            prices = {price: list(history[price] * scale) for price in ("high", "low", "close")}
            expected = oracle(prices["high"], prices["low"], prices["close"])
            for name, value in expected.items():
                column = pro_column(name, adjustment)
                # hfq prices reach hundreds of CNY: compare them relatively.
                assert row[column] == pytest.approx(value, abs=1e-3, rel=1e-6), (
                    code,
                    day,
                    column,
                )
                checked.add(column)
        versions_differ.append(row["ma_bfq_250"] != row["ma_qfq_250"])
        last = history.iloc[-1]
        assert row["close_qfq"] == row["close"] == last["close"]
        assert row["close_hfq"] == pytest.approx(last["close"] * last["adj_factor"], abs=1e-4)
    fields = API_FIELDS["stk_factor_pro"]
    # Every indicator column declared is one the oracle checked (and no other).
    assert checked == set(fields[fields.index("adj_factor") + 1 :])
    # Ex-right days within a window make the versions differ: the test tells them apart.
    assert any(versions_differ)


def test_stk_factor_pro_rows_are_daily_s_and_daily_basic_s(market):
    day = DAYS_PER_STOCK[-1]
    pro = market.query("stk_factor_pro", trade_date=day)
    for api in ("daily", "daily_basic"):
        reply = market.query(api, trade_date=day)
        pd.testing.assert_frame_equal(pro[list(reply.columns)], reply)
