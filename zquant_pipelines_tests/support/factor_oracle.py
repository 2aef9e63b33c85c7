"""The factors computed the plain way: a loop per stock over Python lists, from the spec.

Independent of the library (no shared code or constants): thresholds and formulas are
written out here as docs/factors.md states them, so a change to either shows up as a
mismatch. Values are None where the window is not full.
"""

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


def assert_matches_loop(result: pd.DataFrame, expected: dict) -> None:
    keys = list(zip(result["ts_code"], result["trade_date"], strict=True))
    assert sorted(keys) == sorted(expected)
    columns = next(iter(expected.values()), {})
    for column in columns:
        for key, value in zip(keys, result[column], strict=True):
            want = expected[key][column]
            if want is None:
                assert math.isnan(value), (column, key, value)
            else:
                assert math.isclose(value, want, rel_tol=1e-9, abs_tol=1e-12), (
                    column,
                    key,
                    value,
                    want,
                )
