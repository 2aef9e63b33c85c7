"""The factors computed the plain way: a loop per stock over Python lists, from the spec.

Independent of the library (no shared code or constants): thresholds and formulas are
written out here as docs/factors.md states them, so a change to either shows up as a
mismatch. Values are None where the window is not full.

zquant's factors (``zquant_factors``) follow zquant v0.4's HyperActivityCalculator the way
it works: per stock and day, take the rows of [D - 180 calendar days, D], keep the records
with values, slice the last N. With ``literal`` they reproduce its code, defects included;
without, the documented intent with NULL for short windows.
"""

import datetime as dt
import math
import statistics
from collections import defaultdict

import pandas as pd

TURNOVER_WINDOWS = (5, 10, 20, 30, 60, 90)
MOMENTUM_PERIODS = (5, 20, 60)
ACTIVITY_DAYS = 120
VOLATILITY_DAYS = 20
TOLERANCE = 1e-9


def _window(values: list, end: int, length: int) -> list | None:
    """The ``length`` values ending at ``end`` (inclusive), None if short or one is missing."""
    if end + 1 < length:
        return None
    window = values[end + 1 - length : end + 1]
    return None if any(value is None for value in window) else window


def _is_active(turnover_rate, amount_kcny) -> bool | None:
    if turnover_rate is None or amount_kcny is None:
        return None
    return turnover_rate >= 10 and amount_kcny * 1000 >= 1e9


def _is_small_cross(row: dict) -> bool:
    pre_close = row["pre_close"]
    amplitude = (row["high"] - row["low"]) / pre_close
    pct_chg = (row["close"] - pre_close) / pre_close
    body = abs(row["close"] - row["open"]) / pre_close
    return (
        amplitude <= 0.03 + TOLERANCE
        and abs(pct_chg) <= 0.01 + TOLERANCE
        and (body <= 0.01 + TOLERANCE)
    )


def _count(flags: list, end: int) -> float | None:
    window = _window(flags, end, ACTIVITY_DAYS)
    return None if window is None else float(sum(window))


def _stock_factors(rows: list[dict], adj: dict, turnover: dict) -> dict:
    rows = sorted(rows, key=lambda row: row["trade_date"])
    keys = [(row["ts_code"], row["trade_date"]) for row in rows]
    turnover_rates = [turnover.get(key) for key in keys]
    hfq_closes = [
        row["close"] * adj[key] if key in adj else None for row, key in zip(rows, keys, strict=True)
    ]
    active = [
        _is_active(rate, row["amount"]) for rate, row in zip(turnover_rates, rows, strict=True)
    ]
    small_cross = [_is_small_cross(row) for row in rows]
    result = {}
    for i, key in enumerate(keys):
        values = {}
        for days in TURNOVER_WINDOWS:
            window = _window(turnover_rates, i, days)
            values[f"turnover_rate_ma_{days}"] = None if window is None else sum(window) / days
        values["active_days_120"] = _count(active, i)
        values["small_cross_days_120"] = _count(small_cross, i)
        for days in MOMENTUM_PERIODS:
            earlier = hfq_closes[i - days] if i >= days else None
            values[f"momentum_{days}"] = (
                None if earlier is None or hfq_closes[i] is None else hfq_closes[i] / earlier - 1
            )
        closes = _window(hfq_closes, i, VOLATILITY_DAYS + 1)
        values["volatility_20"] = (
            None
            if closes is None
            else statistics.stdev([closes[k] / closes[k - 1] - 1 for k in range(1, len(closes))])
        )
        result[key] = values
    return result


HALF_YEAR = dt.timedelta(days=180)
ZQUANT_WINDOWS = (5, 10, 20, 30, 60, 90)


def _turnover_volume_flag(turnover_rate, amount, literal: bool):
    if amount is None:
        return 0.0 if literal else None
    return 1.0 if turnover_rate >= 10.0 and float(amount) * 1000 >= 1e9 else 0.0


def _xcross_flag(row: dict, literal: bool) -> float:
    high, low, open_, close, pre_close = (
        row[name] for name in ("high", "low", "open", "close", "pre_close")
    )
    amplitude = (high - low) / close * 100
    body = abs(open_ - close) / close * 100
    if literal:
        change = (close - close) / close * 100
        slack = 0.0
    else:
        change = (close - pre_close) / pre_close * 100
        slack = 1e-7
    return float(amplitude <= 3.0 + slack and abs(change) <= 1.0 + slack and body <= 1.0 + slack)


def _last(records: list, window: int, literal: bool) -> list | None:
    """zquant's ``records[-window:]``; intent wants all ``window`` of them."""
    if len(records) < window and not literal:
        return None
    return records[-window:]


def _flag_count(flags: list | None):
    if flags is None or any(flag is None for flag in flags):
        return None
    return float(sum(flags))


def _zquant_day(rows: list[dict], i: int, literal: bool) -> dict:
    """zquant's factors of the stock on rows[i]'s day from its rows up to that day."""
    day = rows[i]["trade_date"]
    window = [row for row in rows[: i + 1] if row["trade_date"] >= day - HALF_YEAR]
    today = rows[i]
    turnover = [row for row in window if row["turnover_rate"] is not None]
    prices = ("open", "high", "low", "close", "pre_close")
    complete = [row for row in window if all(row[name] is not None for name in prices)]
    values: dict = {"turnover_rate": today["turnover_rate"]}
    model = [
        row["turnover_rate"] for row in turnover if row["trade_date"] >= day - dt.timedelta(days=10)
    ][-5:]
    values["turnover_rate_model_ma5"] = (
        sum(model) / 5 if len(model) == 5 else (-1.0 if literal else None)
    )
    if literal and (not turnover or not complete):
        hyper_columns = [
            *(f"ma{n}_tr" for n in ZQUANT_WINDOWS),
            "theday_turnover_volume",
            *(f"total{n}_turnover_volume" for n in ZQUANT_WINDOWS),
            "theday_xcross",
            *(f"total{n}_xcross" for n in ZQUANT_WINDOWS),
            "halfyear_active_times",
        ]
        return values | dict.fromkeys(hyper_columns)
    for n in ZQUANT_WINDOWS:
        last = [row["turnover_rate"] for row in turnover[-n:]]
        if len(last) >= n:
            values[f"ma{n}_tr"] = round(sum(last) / n, 5) if literal else sum(last) / n
        else:
            values[f"ma{n}_tr"] = 0.0 if literal else None
    volume_flags = [
        _turnover_volume_flag(row["turnover_rate"], row["amount"], literal) for row in turnover
    ]
    if today["turnover_rate"] is not None:
        values["theday_turnover_volume"] = volume_flags[-1]
    else:
        values["theday_turnover_volume"] = 0.0 if literal else None
    cross_flags = [_xcross_flag(row, literal) for row in complete]
    if all(today[name] is not None for name in prices):
        values["theday_xcross"] = cross_flags[-1]
    else:
        values["theday_xcross"] = 0.0 if literal else None
    for n in ZQUANT_WINDOWS:
        values[f"total{n}_turnover_volume"] = _flag_count(_last(volume_flags, n, literal))
        values[f"total{n}_xcross"] = _flag_count(_last(cross_flags, n, literal))
    amount_above = 100_000 if literal else 1_000_000
    values["halfyear_active_times"] = float(
        sum(
            1
            for row in window
            if row["amount"] is not None
            and row["amount"] > amount_above
            and row["turnover_rate"] is not None
            and row["turnover_rate"] >= 10.0
            and any(
                row[mv] is not None and 500_000 <= row[mv] <= 2_000_000
                for mv in ("total_mv", "circ_mv")
            )
        )
    )
    return values


def zquant_factors(
    daily: pd.DataFrame, daily_basic: pd.DataFrame, literal: bool = False
) -> dict[tuple, dict]:
    """{(ts_code, trade_date): {column: value or None}} of zquant's factors per daily row."""
    basic = {(row["ts_code"], row["trade_date"]): row for row in daily_basic.to_dict("records")}
    by_stock = defaultdict(list)
    for row in daily.to_dict("records"):
        extra = basic.get((row["ts_code"], row["trade_date"]), {})
        merged = {key: (None if pd.isna(value) else value) for key, value in row.items()}
        for column in ("turnover_rate", "total_mv", "circ_mv"):
            value = extra.get(column)
            merged[column] = None if value is None or pd.isna(value) else float(value)
        by_stock[row["ts_code"]].append(merged)
    result = {}
    for rows in by_stock.values():
        rows.sort(key=lambda row: row["trade_date"])
        for i, row in enumerate(rows):
            result[(row["ts_code"], row["trade_date"])] = _zquant_day(rows, i, literal)
    return result


def _known_values(frame: pd.DataFrame, column: str) -> dict:
    return {
        (row["ts_code"], row["trade_date"]): row[column]
        for row in frame.to_dict("records")
        if pd.notna(row[column])
    }


def loop_factors(
    daily: pd.DataFrame, adj_factor: pd.DataFrame, daily_basic: pd.DataFrame
) -> dict[tuple, dict]:
    """{(ts_code, trade_date): {factor: value or None}} for every ``daily`` row."""
    adj = _known_values(adj_factor, "adj_factor")
    turnover = _known_values(daily_basic, "turnover_rate")
    by_stock = defaultdict(list)
    for row in daily.to_dict("records"):
        by_stock[row["ts_code"]].append(row)
    result = {}
    for rows in by_stock.values():
        result.update(_stock_factors(rows, adj, turnover))
    return result


def assert_matches_loop(
    result: pd.DataFrame, expected: dict, abs_tol: dict[str, float] | None = None
) -> None:
    """``result`` holds the expected rows and values (NaN for None); ``abs_tol`` per column."""
    keys = list(zip(result["ts_code"], result["trade_date"], strict=True))
    assert sorted(keys) == sorted(expected)
    columns = next(iter(expected.values()), {})
    for column in columns:
        tolerance = (abs_tol or {}).get(column, 1e-12)
        for key, value in zip(keys, result[column], strict=True):
            want = expected[key][column]
            if want is None:
                assert math.isnan(value), (column, key, value)
            else:
                assert math.isclose(value, want, rel_tol=1e-9, abs_tol=tolerance), (
                    column,
                    key,
                    value,
                    want,
                )
