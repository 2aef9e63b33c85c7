"""The sample market's stk_factor against an independent oracle: for a stock and a day D,
the qfq history as of D (price x adj_factor(t) / adj_factor(D), from the market's daily and
adj_factor replies) run through plain loops of the textbook formulas."""

import numpy as np
import pandas as pd
import pytest

from zquant_pipelines.sample_market import sample_market

AS_OF = "20261127"
# Three stocks with ex-right days in their history (adj_factor moves), three days each.
STOCKS = 3
DAYS_PER_STOCK = ("20240105", "20251015", "20261127")


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
    return values


def adjusted_stocks(market) -> list[str]:
    """Stocks traded on every day of DAYS_PER_STOCK whose adj_factor moved before the last."""
    factors = market.query("adj_factor", start_date="20190101", end_date=AS_OF)
    moved = factors.groupby("ts_code")["adj_factor"].nunique()
    traded = [set(market.query("daily", trade_date=day)["ts_code"]) for day in DAYS_PER_STOCK]
    codes = sorted(set(moved[moved > 2].index).intersection(*traded))
    assert len(codes) >= STOCKS
    return codes[:STOCKS]


def test_stk_factor_matches_the_oracle_on_qfq_prices_as_of_each_day(market):
    for code in adjusted_stocks(market):
        bars = market.query("daily", ts_code=code).merge(
            market.query("adj_factor", ts_code=code), on=["ts_code", "trade_date"]
        )
        bars = bars.sort_values("trade_date").reset_index(drop=True)
        for day in DAYS_PER_STOCK:
            history = bars[bars["trade_date"] <= day]
            scale = history["adj_factor"] / history["adj_factor"].iloc[-1]
            qfq = {price: list(history[price] * scale) for price in ("high", "low", "close")}
            expected = oracle(qfq["high"], qfq["low"], qfq["close"])
            [row] = market.query("stk_factor", ts_code=code, trade_date=day).to_dict("records")
            for name, value in expected.items():
                assert row[name] == pytest.approx(value, abs=1e-3), (code, day, name)
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
