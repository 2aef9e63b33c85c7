"""Benchmark: every factor for 5,000 stocks x 250 trading days, vectorised against a loop.

A synthetic market (numpy-built: suspensions, late listings, ex-dividend days) of N stocks
over D trading days plus the factor look-back is fed to ``compute_factor_daily`` and to a
per-stock loop computing the same numbers the way a per-stock implementation would (for
each stock: join its three tables, sort, pandas rolling windows). The loop is given its
input already split by stock, so its time is only the loop. Each is timed R times and the
median reported; their results are compared on the stocks the loop covered. When the full
loop would take longer than the budget (2 minutes) it runs on a subset of stocks and its
time is scaled linearly to N, and the output says so.

Peak memory of ``compute_factor_daily`` is measured in a fresh subprocess (Linux): the
tracemalloc peak of the call (numpy and pandas buffers included), the RSS holding the input
frames, and the peak RSS while the call runs (frames plus call).

Run: ``.venv/bin/python -m bench.bench_factors [--stocks N] [--days D] [--repeats R]``
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from zquant_pipelines.factors.library import (
    ACTIVE_AMOUNT_MIN_CNY,
    ACTIVE_TURNOVER_RATE_MIN_PCT,
    ACTIVITY_WINDOW,
    CNY_PER_AMOUNT_UNIT,
    FACTOR_LOOKBACK_TRADING_DAYS,
    MOMENTUM_PERIODS,
    RATIO_TOLERANCE,
    SMALL_CROSS_AMPLITUDE_MAX,
    SMALL_CROSS_BODY_MAX,
    SMALL_CROSS_PCT_CHG_MAX,
    TURNOVER_MA_WINDOWS,
    VOLATILITY_WINDOW,
    compute_factor_daily,
)
from zquant_pipelines_tests.support.synthetic_market import synthetic_market

DEFAULT_STOCKS = 5_000
DEFAULT_DAYS = 250
DEFAULT_REPEATS = 3
LOOP_BUDGET_SECONDS = 120.0
LOOP_PROBE_STOCKS = 100
KEYS = ["ts_code", "trade_date"]
REPO_ROOT = Path(__file__).resolve().parents[1]


def build_market(stocks: int, days: int, seed: int):
    """The market frames and the D wanted trading days (the look-back comes before them)."""
    daily, adj_factor, daily_basic = synthetic_market(
        stocks, days + FACTOR_LOOKBACK_TRADING_DAYS, seed
    )
    trade_dates = sorted(set(daily["trade_date"]))[-days:]
    return daily, adj_factor, daily_basic, trade_dates


def split_by_stock(frame: pd.DataFrame, stocks: list[str]) -> dict[str, pd.DataFrame]:
    return dict(tuple(frame[frame["ts_code"].isin(stocks)].groupby("ts_code", sort=False)))


def stock_factors(daily, adj_factor, daily_basic, wanted: set) -> pd.DataFrame:
    """One stock's factor rows, with pandas on that stock's rows only."""
    frame = (
        daily.merge(adj_factor[[*KEYS, "adj_factor"]], on=KEYS, how="left")
        .merge(daily_basic[[*KEYS, "turnover_rate"]], on=KEYS, how="left")
        .sort_values("trade_date")
    )
    turnover, amount = frame["turnover_rate"], frame["amount"]
    out = frame[KEYS].copy()
    for window in TURNOVER_MA_WINDOWS:
        out[f"turnover_rate_ma_{window}"] = turnover.rolling(window, min_periods=window).mean()
    active = (turnover >= ACTIVE_TURNOVER_RATE_MIN_PCT) & (
        amount * CNY_PER_AMOUNT_UNIT >= ACTIVE_AMOUNT_MIN_CNY
    )
    active = active.astype(float).where(turnover.notna() & amount.notna())
    out[f"active_days_{ACTIVITY_WINDOW}"] = active.rolling(ACTIVITY_WINDOW).sum()
    pre_close = frame["pre_close"]
    small_cross = (
        ((frame["high"] - frame["low"]) / pre_close <= SMALL_CROSS_AMPLITUDE_MAX + RATIO_TOLERANCE)
        & ((frame["close"] / pre_close - 1).abs() <= SMALL_CROSS_PCT_CHG_MAX + RATIO_TOLERANCE)
        & (
            (frame["close"] - frame["open"]).abs() / pre_close
            <= SMALL_CROSS_BODY_MAX + RATIO_TOLERANCE
        )
    )
    prices_known = frame[["open", "high", "low", "close", "pre_close"]].notna().all(axis=1)
    small_cross = small_cross.astype(float).where(prices_known)
    out[f"small_cross_days_{ACTIVITY_WINDOW}"] = small_cross.rolling(ACTIVITY_WINDOW).sum()
    hfq_close = frame["close"] * frame["adj_factor"]
    for periods in MOMENTUM_PERIODS:
        out[f"momentum_{periods}"] = hfq_close / hfq_close.shift(periods) - 1
    daily_return = hfq_close / hfq_close.shift(1) - 1
    out[f"volatility_{VOLATILITY_WINDOW}"] = daily_return.rolling(VOLATILITY_WINDOW).std()
    return out[out["trade_date"].isin(wanted)]


def per_stock_loop(split_inputs, stocks: list[str], trade_dates) -> pd.DataFrame:
    daily, adj_factor, daily_basic = split_inputs
    wanted = set(trade_dates)
    return pd.concat(
        [
            stock_factors(daily[code], adj_factor[code], daily_basic[code], wanted)
            for code in stocks
        ],
        ignore_index=True,
    )


def timed(function, repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def differences(vectorised: pd.DataFrame, looped: pd.DataFrame, stocks: list[str]) -> list[str]:
    """What differs between the two results on ``stocks`` (empty: they agree)."""
    mine = vectorised[vectorised["ts_code"].isin(stocks)].sort_values(KEYS, ignore_index=True)
    theirs = looped.sort_values(KEYS, ignore_index=True)
    if not mine[KEYS].equals(theirs[KEYS]):
        return [f"row keys differ: {len(mine)} vectorised rows, {len(theirs)} loop rows"]
    problems = []
    for column in [column for column in looped.columns if column not in KEYS]:
        a, b = mine[column].to_numpy(), theirs[column].to_numpy(dtype=float)
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            problems.append(f"{column}: NULLs differ")
        elif not np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True):
            problems.append(f"{column}: max difference {np.nanmax(np.abs(a - b))}")
    return problems


def status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux; kB there)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure_memory(stocks: int, days: int, seed: int) -> dict:
    """Peak memory of one compute_factor_daily call, in this (fresh) process.

    The market frames are built first; then the process's peak RSS is reset (Linux
    clear_refs 5) so that the peak after the call is the frames plus the call, not the
    generator's scratch arrays.
    """
    market = build_market(stocks, days, seed)
    inputs_rss = status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    tracemalloc.start()
    compute_factor_daily(*market)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "compute_traced_peak_mib": traced_peak / 2**20,
        "inputs_rss_mib": inputs_rss,
        "peak_rss_mib": status_mib("VmHWM"),
    }


def memory_in_subprocess(stocks: int, days: int, seed: int) -> dict:
    command = [sys.executable, "-m", "bench.bench_factors", "--memory-only"]
    command += ["--stocks", str(stocks), "--days", str(days), "--seed", str(seed)]
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return json.loads(finished.stdout)


def run(
    stocks: int = DEFAULT_STOCKS,
    days: int = DEFAULT_DAYS,
    repeats: int = DEFAULT_REPEATS,
    loop_budget_seconds: float = LOOP_BUDGET_SECONDS,
    seed: int = 20260227,
) -> dict:
    """Time, compare and measure; print a table and return the figures."""
    daily, adj_factor, daily_basic, trade_dates = build_market(stocks, days, seed)
    codes = sorted(set(daily["ts_code"]))
    vectorised_seconds, vectorised = timed(
        lambda: compute_factor_daily(daily, adj_factor, daily_basic, trade_dates), repeats
    )

    probe = codes[:LOOP_PROBE_STOCKS]
    probe_inputs = [split_by_stock(frame, probe) for frame in (daily, adj_factor, daily_basic)]
    probe_seconds, _ = timed(lambda: per_stock_loop(probe_inputs, probe, trade_dates), 1)
    projected = probe_seconds * len(codes) / len(probe)
    loop_codes = codes
    if projected > loop_budget_seconds:
        loop_codes = codes[: max(len(probe), int(len(codes) * loop_budget_seconds / projected))]
    loop_inputs = [split_by_stock(frame, loop_codes) for frame in (daily, adj_factor, daily_basic)]
    # The loop is the baseline and minutes long at full size: timed once, the vectorised
    # call (seconds) is the figure that gets the median of the repeats.
    loop_seconds, looped = timed(lambda: per_stock_loop(loop_inputs, loop_codes, trade_dates), 1)
    loop_full_seconds = loop_seconds * len(codes) / len(loop_codes)
    problems = differences(vectorised, looped, loop_codes)
    if problems:
        raise AssertionError("vectorised and loop factors differ: " + "; ".join(problems))

    memory = memory_in_subprocess(stocks, days, seed)
    result = {
        "stocks": len(codes),
        "trading_days": days,
        "lookback_trading_days": FACTOR_LOOKBACK_TRADING_DAYS,
        "input_daily_rows": len(daily),
        "output_rows": len(vectorised),
        "repeats": repeats,
        "vectorised_seconds": vectorised_seconds,
        "loop_stocks": len(loop_codes),
        "loop_seconds": loop_seconds,
        "loop_scaled": len(loop_codes) < len(codes),
        "loop_full_market_seconds": loop_full_seconds,
        "speedup": loop_full_seconds / vectorised_seconds,
        "results_agree": True,
        **memory,
    }
    print_table(result)
    return result


def print_table(result: dict) -> None:
    loop_note = (
        f"measured on {result['loop_stocks']} stocks, scaled x"
        f"{result['stocks'] / result['loop_stocks']:.1f}"
        if result["loop_scaled"]
        else "measured on every stock"
    )
    print(
        f"factors: {result['stocks']} stocks x {result['trading_days']} trading days"
        f" (+{result['lookback_trading_days']} look-back), {result['input_daily_rows']:,}"
        f" daily rows in, {result['output_rows']:,} factor rows out;"
        f" vectorised: median of {result['repeats']}; loop: once"
    )
    rows = [
        ("compute_factor_daily (vectorised)", f"{result['vectorised_seconds']:.2f} s"),
        (f"per-stock loop ({loop_note})", f"{result['loop_full_market_seconds']:.1f} s"),
        ("speed-up", f"{result['speedup']:.0f}x"),
        ("results agree on the loop's stocks", "yes" if result["results_agree"] else "no"),
        ("peak traced memory of the call", f"{result['compute_traced_peak_mib']:.0f} MiB"),
        ("RSS holding the input frames", f"{result['inputs_rss_mib']:.0f} MiB"),
        ("peak RSS during the call (inputs + call)", f"{result['peak_rss_mib']:.0f} MiB"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stocks", type=int, default=DEFAULT_STOCKS)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--seed", type=int, default=20260227)
    parser.add_argument("--loop-budget-seconds", type=float, default=LOOP_BUDGET_SECONDS)
    parser.add_argument(
        "--memory-only", action="store_true", help="print the memory figures as JSON (child)"
    )
    args = parser.parse_args()
    if args.memory_only:
        print(json.dumps(measure_memory(args.stocks, args.days, args.seed)))
        return
    run(args.stocks, args.days, args.repeats, args.loop_budget_seconds, args.seed)


if __name__ == "__main__":
    main()
