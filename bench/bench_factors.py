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

The factor job end to end (``figures``, for the harness: read, compute, write on
PostgreSQL, in a database of its own) is timed against three baselines in the same run:
its floor (bare COPY-read of the needed columns into Arrow, the compute, COPY of the result
into an empty indexed table), a competent pandas job (read_sql, long-form groupby/rolling,
to_sql) and zquant's way (per stock: its queries, a Python loop over the days, one INSERT per row;
measured on a few stocks and scaled, flagged ``projected``); also a one-day run with its
look-back against the floor of that day, and the job's peak RSS in a fresh process
against the 2 GiB budget. At full size (and, tiny, at quick) the job against its floor and
against the pandas job are also cost curves over stocks x days (``CURVE_SIZES``: 500 x 60,
2,000 x 120, and the required figures' 5,000 x 250 as the last point; x is the cells,
stocks x days); each market is stored only when one of its figures is wanted and dropped
after them. The compute alone against a per-stock loop (``run``) is this module's own
command.

Run: ``.venv/bin/python -m bench --only factors [--size quick|default|full]`` (end to end),
``.venv/bin/python -m bench.bench_factors [--stocks N] [--days D] [--repeats R]`` (compute).
"""

import argparse
import io
import json
import math
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import sqlalchemy as sa
from pyarrow import csv

from bench.harness import Figure, Sample, Wanted, every_figure, select
from zquant_pipelines.factors.library import (
    ACTIVE_AMOUNT_MIN_CNY,
    ACTIVE_TURNOVER_RATE_MIN_PCT,
    ACTIVITY_WINDOW,
    CNY_PER_AMOUNT_UNIT,
    FACTOR_LOOKBACK_TRADING_DAYS,
    MOMENTUM_PERIODS,
    RATIO_TOLERANCE,
    REGISTRY,
    SMALL_CROSS_AMPLITUDE_MAX,
    SMALL_CROSS_BODY_MAX,
    SMALL_CROSS_PCT_CHG_MAX,
    TURNOVER_MA_WINDOWS,
    VOLATILITY_WINDOW,
    compute_factor_daily,
)
from zquant_pipelines.factors.registry import required_inputs
from zquant_pipelines.resources.warehouse import Warehouse, copy_csv
from zquant_pipelines.sync.factors import compute_and_store_factors, lookback_start
from zquant_pipelines.sync.market import recent_open_days
from zquant_pipelines_tests.support.services import (
    PG_ADMIN_URL,
    create_pg_database,
    drop_pg_database,
)
from zquant_pipelines_tests.support.synthetic_market import store_market, synthetic_market

DEFAULT_STOCKS = 5_000
DEFAULT_DAYS = 250
DEFAULT_REPEATS = 3
SEED = 20260227
LOOP_BUDGET_SECONDS = 120.0
LOOP_PROBE_STOCKS = 100
KEYS = ["ts_code", "trade_date"]
REPO_ROOT = Path(__file__).resolve().parents[1]

# The inputs the shipped job and its floor read: every registered factor's.
FACTOR_INPUT_COLUMNS = required_inputs(REGISTRY.factors.values())
# The project's own factors: the columns the pandas job and zquant's per-stock loop compute
# (zquant's columns are held to an independent oracle by the tests, not timed here), so the
# baselines do less work than the job they are compared with.
LOOP_COLUMNS = [factor.name for factor in REGISTRY.factors.values() if factor.zquant_factor is None]


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
    seed: int = SEED,
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


# -- The factor job end to end (read, compute, write) on PostgreSQL ------------------------
#
# A market of N stocks over D trading days plus the look-back is stored in a PostgreSQL
# database of the bench's own; each side below runs the whole job for the D days once and
# returns its seconds (the harness repeats and interleaves them). Every side starts from an
# empty factor table (untimed), as a first run of those days does.

FLOOR_TABLE = "floor_factor_daily"
PANDAS_TABLE = "pandas_factor_daily"
ZQUANT_TABLE = "zquant_factor_daily"
E2E_TABLES = ("factor_daily", FLOOR_TABLE, PANDAS_TABLE, ZQUANT_TABLE)


@dataclass
class StoredMarket:
    """The bench database: its URL, the Warehouse on it, the wanted days and the stocks."""

    url: str
    warehouse: Warehouse
    days: list
    codes: list

    @property
    def start(self):
        return lookback_start(self.warehouse, self.days[0], FACTOR_LOOKBACK_TRADING_DAYS)


def store_bench_market(stocks: int, days: int, seed: int) -> StoredMarket:
    """A fresh database holding the market (the caller drops it with ``drop_market``)."""
    url = create_pg_database(PG_ADMIN_URL, "zquant_bench_factors")
    warehouse = Warehouse(url=url)
    market = StoredMarket(url, warehouse, [], [])
    try:
        daily, adj_factor, daily_basic, market.days = build_market(stocks, days, seed)
        market.codes = sorted(set(daily["ts_code"]))
        store_market(warehouse, daily, adj_factor, daily_basic)
        with psycopg2.connect(url) as conn, conn.cursor() as cursor:
            for table in (FLOOR_TABLE, PANDAS_TABLE, ZQUANT_TABLE):
                cursor.execute(f"CREATE TABLE {table} (LIKE factor_daily INCLUDING ALL)")
            cursor.execute("ANALYZE")
        conn.close()
    except BaseException:
        drop_market(market)
        raise
    return market


def drop_market(market: StoredMarket) -> None:
    market.warehouse.dispose()
    drop_pg_database(PG_ADMIN_URL, market.url)


def empty_tables(market: StoredMarket) -> None:
    with psycopg2.connect(market.url) as conn, conn.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(E2E_TABLES)}")
    conn.close()


def seconds_of(market: StoredMarket, job) -> float:
    empty_tables(market)
    started = time.perf_counter()
    job()
    return time.perf_counter() - started


def ours_once(market: StoredMarket, days: list | None = None) -> float:
    """The shipped job: ``compute_and_store_factors`` over the days (default: all D)."""
    days = days or market.days
    return seconds_of(market, lambda: compute_and_store_factors(market.warehouse, days))


def floor_once(market: StoredMarket, days: list | None = None) -> float:
    """The least the job can cost: COPY-read of the needed columns into Arrow, the compute,
    COPY of the result into an empty indexed table (Arrow's CSV, as the warehouse writes
    it); bare psycopg2 and pyarrow, no checks."""
    days = days or market.days
    start = lookback_start(market.warehouse, days[0], FACTOR_LOOKBACK_TRADING_DAYS)

    def job():
        with psycopg2.connect(market.url) as conn, conn.cursor() as cursor:
            inputs = {}
            for table, columns in FACTOR_INPUT_COLUMNS.items():
                stream = io.BytesIO()
                cursor.copy_expert(
                    f"COPY (SELECT {', '.join(columns)} FROM {table} WHERE trade_date"
                    f" BETWEEN '{start}' AND '{days[-1]}') TO STDOUT WITH (FORMAT csv)",
                    stream,
                )
                stream.seek(0)
                inputs[table] = csv.read_csv(
                    stream, read_options=csv.ReadOptions(column_names=list(columns))
                ).to_pandas()
            factors = compute_factor_daily(
                inputs["daily"], inputs["adj_factor"], inputs["daily_basic"], trade_dates=days
            )
            cursor.copy_expert(
                f"COPY {FLOOR_TABLE} FROM STDIN WITH (FORMAT csv)", copy_csv(factors)
            )
        conn.close()

    return seconds_of(market, job)


def pandas_factors(daily, adj_factor, daily_basic, wanted) -> pd.DataFrame:
    """The factors the way a competent pandas job computes them: one long frame, grouped by
    stock, rolling windows (the same definitions as the library)."""
    frame = (
        daily.merge(adj_factor, on=KEYS, how="left")
        .merge(daily_basic, on=KEYS, how="left")
        .sort_values(KEYS, ignore_index=True)
    )
    by_stock = frame.groupby("ts_code", sort=False)

    def rolling(column: str, window: int, how: str) -> pd.Series:
        rolled = getattr(by_stock[column].rolling(window, min_periods=window), how)()
        return rolled.reset_index(level=0, drop=True)

    turnover, amount, pre_close = frame["turnover_rate"], frame["amount"], frame["pre_close"]
    frame["active"] = (
        (
            (turnover >= ACTIVE_TURNOVER_RATE_MIN_PCT)
            & (amount * CNY_PER_AMOUNT_UNIT >= ACTIVE_AMOUNT_MIN_CNY)
        )
        .astype(float)
        .where(turnover.notna() & amount.notna())
    )
    prices = frame[["open", "high", "low", "close", "pre_close"]]
    frame["small_cross"] = (
        (
            (
                (frame["high"] - frame["low"]) / pre_close
                <= SMALL_CROSS_AMPLITUDE_MAX + RATIO_TOLERANCE
            )
            & (
                (frame["close"] - pre_close).abs() / pre_close
                <= SMALL_CROSS_PCT_CHG_MAX + RATIO_TOLERANCE
            )
            & (
                (frame["close"] - frame["open"]).abs() / pre_close
                <= SMALL_CROSS_BODY_MAX + RATIO_TOLERANCE
            )
        )
        .astype(float)
        .where(prices.notna().all(axis=1))
    )
    frame["hfq_close"] = frame["close"] * frame["adj_factor"]
    by_stock = frame.groupby("ts_code", sort=False)
    out = frame[KEYS].copy()
    for window in TURNOVER_MA_WINDOWS:
        out[f"turnover_rate_ma_{window}"] = rolling("turnover_rate", window, "mean")
    out[f"active_days_{ACTIVITY_WINDOW}"] = rolling("active", ACTIVITY_WINDOW, "sum")
    out[f"small_cross_days_{ACTIVITY_WINDOW}"] = rolling("small_cross", ACTIVITY_WINDOW, "sum")
    for periods in MOMENTUM_PERIODS:
        out[f"momentum_{periods}"] = frame["hfq_close"] / by_stock["hfq_close"].shift(periods) - 1
    frame["daily_return"] = frame["hfq_close"] / by_stock["hfq_close"].shift(1) - 1
    by_stock = frame.groupby("ts_code", sort=False)
    out[f"volatility_{VOLATILITY_WINDOW}"] = rolling("daily_return", VOLATILITY_WINDOW, "std")
    return out[out["trade_date"].isin(set(wanted))].reset_index(drop=True)


def pandas_once(market: StoredMarket, check: bool = False) -> float:
    """(c) A competent vectorised pandas job: read_sql of the needed columns, long-form
    groupby/rolling, to_sql into an empty indexed table."""
    engine = sa.create_engine(market.url)
    start, end = market.start, market.days[-1]
    found: list = []

    def job():
        inputs = {
            table: pd.read_sql(
                sa.text(
                    f"SELECT {', '.join(columns)} FROM {table}"
                    " WHERE trade_date BETWEEN :start AND :end"
                ),
                engine,
                params={"start": start, "end": end},
            )
            for table, columns in FACTOR_INPUT_COLUMNS.items()
        }
        factors = pandas_factors(
            inputs["daily"], inputs["adj_factor"], inputs["daily_basic"], market.days
        )
        # The default method: SQLAlchemy's batched executemany, 5x faster here than "multi".
        factors.to_sql(PANDAS_TABLE, engine, if_exists="append", index=False)
        found.append(factors)

    seconds = seconds_of(market, job)
    engine.dispose()
    if check:
        check_agrees(market, found[0], market.codes, "pandas job")
    return seconds


def zquant_stock(cursor, code: str, start, days: list) -> int:
    """One stock zquant's way: a query per input table, a Python loop over the days
    computing each factor from the window's rows, one INSERT per result row."""
    tables = {}
    for table in FACTOR_INPUT_COLUMNS:
        cursor.execute(
            f"SELECT * FROM {table} WHERE ts_code = %s AND trade_date BETWEEN %s AND %s"
            " ORDER BY trade_date",
            (code, start, days[-1]),
        )
        names = [column.name for column in cursor.description]
        tables[table] = {row[1]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    rows = [tables["daily"][day] for day in sorted(tables["daily"])]
    nan = float("nan")

    def value(table, row, column):
        found = tables[table].get(row["trade_date"], {}).get(column)
        return nan if found is None else found

    turnover = [value("daily_basic", row, "turnover_rate") for row in rows]
    hfq = [row["close"] * value("adj_factor", row, "adj_factor") for row in rows]
    wanted = set(days)
    written = 0
    for i, row in enumerate(rows):
        if row["trade_date"] not in wanted:
            continue
        factors = {}
        for window in TURNOVER_MA_WINDOWS:
            last = turnover[max(0, i - window + 1) : i + 1]
            full = len(last) == window and not any(math.isnan(x) for x in last)
            factors[f"turnover_rate_ma_{window}"] = sum(last) / window if full else None
        active, cross = [], []
        for j in range(max(0, i - ACTIVITY_WINDOW + 1), i + 1):
            day = rows[j]
            amount, rate = day["amount"], turnover[j]
            active.append(
                None
                if amount is None or math.isnan(rate)
                else rate >= ACTIVE_TURNOVER_RATE_MIN_PCT
                and amount * CNY_PER_AMOUNT_UNIT >= ACTIVE_AMOUNT_MIN_CNY
            )
            prices = [day[c] for c in ("open", "high", "low", "close", "pre_close")]
            cross.append(
                None
                if None in prices
                else (day["high"] - day["low"]) / day["pre_close"]
                <= SMALL_CROSS_AMPLITUDE_MAX + RATIO_TOLERANCE
                and abs(day["close"] - day["pre_close"]) / day["pre_close"]
                <= SMALL_CROSS_PCT_CHG_MAX + RATIO_TOLERANCE
                and abs(day["close"] - day["open"]) / day["pre_close"]
                <= SMALL_CROSS_BODY_MAX + RATIO_TOLERANCE
            )
        for name, flags in (("active_days", active), ("small_cross_days", cross)):
            full = len(flags) == ACTIVITY_WINDOW and None not in flags
            factors[f"{name}_{ACTIVITY_WINDOW}"] = float(sum(flags)) if full else None
        for periods in MOMENTUM_PERIODS:
            ratio = hfq[i] / hfq[i - periods] - 1 if i >= periods else nan
            factors[f"momentum_{periods}"] = None if math.isnan(ratio) else ratio
        returns = [hfq[j] / hfq[j - 1] - 1 for j in range(i - VOLATILITY_WINDOW + 1, i + 1)]
        full = i >= VOLATILITY_WINDOW and not any(math.isnan(r) for r in returns)
        factors[f"volatility_{VOLATILITY_WINDOW}"] = statistics.stdev(returns) if full else None
        columns = ", ".join(LOOP_COLUMNS)
        cursor.execute(
            f"INSERT INTO {ZQUANT_TABLE} (ts_code, trade_date, {columns})"
            f" VALUES (%s, %s, {', '.join('%s' for _ in LOOP_COLUMNS)})"
            f" ON CONFLICT (ts_code, trade_date) DO UPDATE SET"
            f" {', '.join(f'{c} = EXCLUDED.{c}' for c in LOOP_COLUMNS)}",
            (code, row["trade_date"], *(factors[c] for c in LOOP_COLUMNS)),
        )
        written += 1
    return written


def zquant_once(market: StoredMarket, stocks: int, check: bool = False) -> float:
    """(b) zquant's way for the first ``stocks`` stocks: per stock, its queries, the Python
    loop and row writes, committed per stock. The caller scales the seconds to all stocks."""
    codes = market.codes[:stocks]
    start = market.start

    def job():
        with psycopg2.connect(market.url) as conn, conn.cursor() as cursor:
            for code in codes:
                zquant_stock(cursor, code, start, market.days)
                conn.commit()
        conn.close()

    seconds = seconds_of(market, job)
    if check:
        stored = pd.read_sql(
            f"SELECT ts_code, trade_date, {', '.join(LOOP_COLUMNS)} FROM {ZQUANT_TABLE}",
            market.url,
        )
        check_agrees(market, stored, codes, "zquant-way loop")
    return seconds


def check_agrees(market: StoredMarket, theirs: pd.DataFrame, codes: list, label: str) -> None:
    """Raise unless ``theirs`` equals the shipped job's factors on ``codes``."""
    ours_once(market)
    mine = market.warehouse.read_table("factor_daily")
    problems = differences(mine, theirs.astype({c: float for c in LOOP_COLUMNS}), codes)
    if problems:
        raise AssertionError(f"{label} and the factor job differ: " + "; ".join(problems))


# Stocks, trading days and the stocks zquant's way runs on (scaled to all: a projection),
# per harness size. `make bench` keeps to 500 stocks: the pandas job alone is minutes at
# 5,000 (full size, which also holds the 2 GiB memory budget of issue 14).
E2E_SIZES = {"quick": (20, 30, 5), "default": (500, 250, 20), "full": (5_000, 250, 20)}
# The smaller markets (stocks, trading days) of the cost curves, per harness size: with the
# market of E2E_SIZES as their last point, the job against its floor and against the pandas
# job at three sizes. `make bench` has none: they would cost minutes of its ten.
CURVE_SIZES = {"quick": ((5, 10), (10, 20)), "default": (), "full": ((500, 60), (2_000, 120))}
CURVE_FLOOR = "factors e2e vs floor"
CURVE_PANDAS = "factors e2e vs pandas"
MEMORY_BUDGET_MIB = 2_048


def figures(size: str = "default", wanted: Wanted = every_figure) -> Iterator[Figure]:
    """The factor job end to end against its floor, a pandas job and zquant's way, a
    one-day run against its floor, and the job's peak RSS against the memory budget, on the
    market of E2E_SIZES; at a size with curves, the job against its floor and the pandas job
    on each market of CURVE_SIZES too (``factors.e2e_vs_floor_<stocks>x<days>``...), the
    E2E_SIZES market's figures being the curves' last point."""
    on_curve = bool(CURVE_SIZES[size])
    for stocks, days in CURVE_SIZES[size]:
        yield from market_figures(stocks, days, wanted, f"_{stocks}x{days}", on_curve)
    stocks, days, zquant_stocks = E2E_SIZES[size]
    yield from market_figures(stocks, days, wanted, "", on_curve, zquant_stocks)


def market_figures(
    stocks: int,
    days: int,
    wanted: Wanted,
    suffix: str,
    on_curve: bool,
    zquant_stocks: int | None = None,
) -> Iterator[Figure]:
    """The figures on one market of ``stocks`` x ``days`` (ids ending in ``suffix``): the
    job against its floor and against the pandas job (a point of the curves when
    ``on_curve``, at x = stocks x days); with ``zquant_stocks``, also against zquant's way,
    the one-day run and the peak RSS. The market is stored only when one of them is wanted
    and dropped after them."""
    where = f"{stocks:,} stocks x {days} days"
    # Stored below once a figure is wanted: the sides read it when they run.
    market: StoredMarket
    # Each baseline checks once that it computes the job's factors (AssertionError).
    checked = set()

    def first_checked(name: str, run: Callable[[bool], float]) -> Callable[[], Sample]:
        def side() -> Sample:
            check = name not in checked
            checked.add(name)
            return Sample(run(check))

        return side

    def ours() -> Sample:
        return Sample(ours_once(market))

    def curve(name: str) -> dict:
        return {"curve": name, "x": stocks * days} if on_curve else {}

    declared = [
        Figure(
            id=f"factors.e2e_vs_floor{suffix}",
            title=f"factor job end to end (read, compute, write), {where}",
            ours=ours,
            baseline=lambda: Sample(floor_once(market)),
            baseline_name="floor: COPY read into Arrow, the compute, COPY into an empty table",
            target=0.5,
            **curve(CURVE_FLOOR),
        ),
        Figure(
            id=f"factors.e2e_vs_pandas{suffix}",
            title=f"factor job end to end against a pandas job, {where}",
            ours=ours,
            baseline=first_checked("pandas", lambda check: pandas_once(market, check)),
            baseline_name="pandas job: read_sql, long-form groupby/rolling, to_sql",
            target=1.5,
            repeats=3,
            long=True,
            **curve(CURVE_PANDAS),
        ),
    ]
    if zquant_stocks is not None:
        zquant_stocks = min(zquant_stocks, stocks)
        scale = stocks / zquant_stocks

        def last_day() -> list:
            return market.days[-1:]

        declared += [
            Figure(
                id=f"factors.e2e_vs_zquant{suffix}",
                title=f"factor job end to end against zquant's way, {where}",
                ours=ours,
                baseline=first_checked(
                    "zquant", lambda check: scale * zquant_once(market, zquant_stocks, check)
                ),
                baseline_name=f"zquant's way: per-stock queries, Python loop, row writes"
                f" ({zquant_stocks} stocks, scaled x{scale:g})",
                target=20,
                projected=scale > 1,
            ),
            Figure(
                id=f"factors.daily_run_vs_floor{suffix}",
                title=f"one day's factor run with its look-back, {stocks:,} stocks",
                ours=lambda: Sample(ours_once(market, last_day())),
                baseline=lambda: Sample(floor_once(market, last_day())),
                baseline_name="floor of that day",
                target=0.5,
            ),
            Figure(
                id=f"factors.job_peak_rss_vs_budget{suffix}",
                title=f"peak RSS of the factor job in a fresh process, {where}",
                ours=lambda: Sample(job_peak_rss_mib(market)),
                baseline=lambda: Sample(MEMORY_BUDGET_MIB),
                baseline_name="the 2 GiB budget (issue 14)",
                unit="MiB",
                target=1,
                repeats=3,
                long=True,
            ),
        ]
    declared = select(declared, wanted)
    if not declared:
        return
    market = store_bench_market(stocks, days, SEED)
    try:
        # The titles and zquant's scale were declared with ``stocks``.
        if len(market.codes) != stocks:
            raise RuntimeError(f"the bench market holds {len(market.codes)} stocks, not {stocks}")
        yield from declared
    finally:
        drop_market(market)


def job_peak_rss_mib(market: StoredMarket) -> float:
    """Peak RSS of a fresh process (interpreter and imports included) running the job."""
    empty_tables(market)
    command = [sys.executable, "-m", "bench.bench_factors", "--job-memory", market.url]
    command += ["--days", str(len(market.days))]
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return json.loads(finished.stdout)["peak_rss_mib"]


def job_memory(url: str, days: int) -> dict:
    """Child of ``job_peak_rss_mib``: the job over the last ``days`` stored open days."""
    warehouse = Warehouse(url=url)
    last = warehouse.read_frame("SELECT max(trade_date) AS trade_date FROM daily")["trade_date"][0]
    compute_and_store_factors(warehouse, recent_open_days(warehouse, last, days))
    return {"peak_rss_mib": status_mib("VmHWM")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stocks", type=int, default=DEFAULT_STOCKS)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--loop-budget-seconds", type=float, default=LOOP_BUDGET_SECONDS)
    parser.add_argument(
        "--memory-only", action="store_true", help="print the memory figures as JSON (child)"
    )
    parser.add_argument("--job-memory", metavar="URL", help="print the job's peak RSS (child)")
    args = parser.parse_args()
    if args.memory_only:
        print(json.dumps(measure_memory(args.stocks, args.days, args.seed)))
        return
    if args.job_memory:
        print(json.dumps(job_memory(args.job_memory, args.days)))
        return
    run(args.stocks, args.days, args.repeats, args.loop_budget_seconds, args.seed)


if __name__ == "__main__":
    main()
