"""Benchmark: the whole-market sync against zquant's way and a raw COPY (issue 7, case 1).

The sample market (default 5,000 stocks) is served by the local tushare wire server, which
records every call; the sync runs through the real SDK (``TushareClient``) into a temporary
PostgreSQL database that is dropped afterwards. Cases, each in a fresh process so its peak
RSS (VmHWM) is its own, and each on fresh tables and a fresh rate-limit directory:

- ours: the project's syncs (stock_basic, trade_cal, then daily, adj_factor and daily_basic
  one call per open day) over the last D trading days, unthrottled and throttled;
- zquant's way: one ``daily`` call per stock over the D days (``ts_code``, ``start_date``,
  ``end_date``), each stock's rows appended with ``DataFrame.to_sql`` into a plain table,
  throttled over every stock (once: it is the slow one) and unthrottled over an even
  sample of the stocks (default 500: its time per call is the same for every stock).
  Only ``daily``, so it is compared with our ``daily`` step alone, like for like. It
  fetches through ``TushareClient`` too, so it waits for the budget instead of drawing
  rate-limit errors: zquant's best case;
- the call curve (issue 15): the calls of the three trading-day APIs over 1 to 2,500 days
  of the whole market, ours against the page floor (ceil(rows / row limit)) and zquant's
  two modes (one bulk call per day; one call per stock over the range), counted per
  planned query against the sample market without HTTP (``PageCounter``; a range longer
  than the market's history is projected from the planner's estimate), with the minutes
  each takes at 500 calls a minute, computed;
- write path: the same ``daily`` rows, fetched once untimed, written by our path
  (``to_warehouse_frame`` + ``Warehouse.replace_partition`` per day, as the sync does) and
  by the physical limit (one raw psycopg2 ``COPY`` of a CSV built from the frames, in one
  transaction), each into an empty ``daily`` table of the warehouse's shape (primary key
  included); serialisation is inside both timings.

Throttled means the server accepts at most C calls per API per W seconds (default 500 per
12 s: tushare's 500 a minute at 5000+ points, with the minute scaled down 5x) and answers
the rest with tushare's rate-limit error; the client's limiter has the same budget over a
window 2% longer (the margin any client needs: the server sees a call after the client
counted it). Unthrottled, the server has no limit and the limiter allows 10^6 calls a
second: it runs but never waits. Scaling the minute down shrinks the waits but not the
work, so the measured throttled ratio understates the one at tushare's real minute. At
500 per 6 s zquant's way waits about 54 s, our 60 calls take 3-4 s of local work (the
wire server's replies bound them), and the ratio swung between 15x and 23x from run to
run with how much of zquant's own work hid in its waits; at 12 s the waits decide, as
they do at tushare's minute. The result also holds the ratio projected to the real
minute from the unthrottled time per call (``throttled_seconds``), with the model's
prediction for the measured throttled run beside the measurement as its check.

Run: ``.venv/bin/python -m bench.bench_sync [--stocks N] [--days D] [--repeats R]
[--zquant-sample S] [--calls-per-window C] [--window-seconds W]``
"""

import argparse
import datetime as dt
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import pandas as pd
import psycopg2
import sqlalchemy as sa

from zquant_pipelines.constants import (
    API_FIELDS,
    API_ROW_LIMITS,
    CALENDAR_EXCHANGES,
    LIST_STATUSES,
    TRADING_DAY_APIS,
)
from zquant_pipelines.dates import to_tushare_date
from zquant_pipelines.resources.tushare_client import TushareClient
from zquant_pipelines.resources.warehouse import Warehouse, copy_csv
from zquant_pipelines.sample_market import sample_market
from zquant_pipelines.sync.market import (
    listed_counts,
    listed_during,
    pages_for,
    plan_calls,
    spans_of,
    sync_stock_basic,
    sync_trade_cal,
    sync_trading_days,
    to_warehouse_frame,
    window_params,
)
from zquant_pipelines_tests.support.services import (
    PG_ADMIN_URL,
    create_pg_database,
    drop_pg_database,
)
from zquant_pipelines_tests.support.tushare_wire_server import TushareWireServer

DEFAULT_STOCKS = 5_000
DEFAULT_DAYS = 60
DEFAULT_REPEATS = 3
DEFAULT_ZQUANT_SAMPLE = 500
# A fixed last day keeps runs comparable (the market is a pure function of its settings).
DEFAULT_AS_OF = "20260227"
THROTTLE_CALLS = 500
THROTTLE_WINDOW_SECONDS = 12.0
CLIENT_WINDOW_MARGIN = 1.02
UNTHROTTLED_CALLS = 1_000_000
UNTHROTTLED_WINDOW_SECONDS = 1.0
TUSHARE_WINDOW_SECONDS = 60.0
# The call curve (issue 15): trading days of the whole market, and the budget its times
# are computed under (tushare's 500 calls a minute at 5000+ points).
CURVE_DAYS = (1, 5, 20, 60, 250, 1_000, 2_500)
CURVE_CALLS_PER_MINUTE = 500
FLOOR_FIGURE_DAYS = 250
ZQUANT_FIGURE_DAYS = 1_000
FLOOR_TARGET = 1.15
ZQUANT_PER_STOCK_TARGET = 3.0
REPO_ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20


# -- child side: one case in this process ------------------------------------------------


def make_client(spec: dict) -> TushareClient:
    return TushareClient(
        token=spec["token"],
        api_url=spec["api_url"],
        rate_limit_dir=spec["rate_limit_dir"],
        calls_per_minute=spec["client_calls"],
        rate_limit_window_seconds=spec["client_window_seconds"],
    )


def trade_dates_of(spec: dict) -> list[dt.date]:
    return [dt.date.fromisoformat(day) for day in spec["trade_dates"]]


def peak_rss_mib() -> float:
    """This process's RSS high-water mark (Linux VmHWM; ``ru_maxrss`` would carry over the
    parent's from before ``exec``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / MIB
    raise RuntimeError("/proc/self/status has no VmHWM (Linux only)")


def ours_case(spec: dict) -> dict:
    """The project's full sync; seconds, rows and logical calls per step."""
    client = make_client(spec)
    warehouse = Warehouse(url=spec["database_url"], db_schema=spec["schema"])
    warehouse.ensure_schema()
    days = trade_dates_of(spec)
    steps = {
        "stock_basic": lambda: sync_stock_basic(client, warehouse),
        "trade_cal": lambda: sync_trade_cal(client, warehouse, days[0], days[-1]),
        **{
            api: (lambda api=api: sync_trading_days(client, warehouse, api, days))
            for api in TRADING_DAY_APIS
        },
    }
    timings = {}
    for name, step in steps.items():
        started = time.perf_counter()
        result = step()
        timings[name] = {"seconds": time.perf_counter() - started, "rows": result.rows}
    warehouse.dispose()
    return {
        "seconds": sum(step["seconds"] for step in timings.values()),
        "rows": sum(step["rows"] for step in timings.values()),
        "steps": timings,
    }


def zquant_case(spec: dict) -> dict:
    """One daily call per stock over the range, each appended with to_sql."""
    client = make_client(spec)
    engine = sa.create_engine(spec["database_url"])
    with engine.begin() as conn:
        conn.execute(sa.schema.CreateSchema(spec["schema"]))
    days = trade_dates_of(spec)
    window = {"start_date": to_tushare_date(days[0]), "end_date": to_tushare_date(days[-1])}
    rows = 0
    started = time.perf_counter()
    for ts_code in spec["ts_codes"]:
        frame = client.query("daily", ts_code=ts_code, **window)
        frame.to_sql("daily", engine, schema=spec["schema"], if_exists="append", index=False)
        rows += len(frame)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "rows": rows}


def write_case(spec: dict) -> dict:
    """The daily rows written by our path and by a raw COPY, each timed ``repeats`` times."""
    client = make_client(spec)
    days = trade_dates_of(spec)
    frames = [client.query("daily", trade_date=to_tushare_date(day)) for day in days]
    rows = sum(len(frame) for frame in frames)
    ours, raw = [], []
    for repeat in range(spec["repeats"]):
        warehouse = empty_warehouse(spec, f"ours{repeat}")
        started = time.perf_counter()
        for day, frame in zip(days, frames, strict=True):
            warehouse.replace_partition("daily", to_warehouse_frame("daily", frame), day)
        ours.append(time.perf_counter() - started)
        warehouse.dispose()

        schema = empty_warehouse(spec, f"copy{repeat}").db_schema
        started = time.perf_counter()
        copy_rows(spec["database_url"], f"{schema}.daily", frames)
        raw.append(time.perf_counter() - started)
        # Both sides land the same rows: a write path that dropped some would look fast.
        for landed in (warehouse.count_rows("daily"), count_table(spec, f"{schema}.daily")):
            if landed != rows:
                raise AssertionError(f"write path landed {landed} daily rows, expected {rows}")
    return {
        "rows": rows,
        "ours_seconds": statistics.median(ours),
        "copy_seconds": statistics.median(raw),
        "ours_all_seconds": ours,
        "copy_all_seconds": raw,
    }


def empty_warehouse(spec: dict, suffix: str) -> Warehouse:
    warehouse = Warehouse(url=spec["database_url"], db_schema=f"{spec['schema']}_{suffix}")
    warehouse.ensure_schema()
    return warehouse


def copy_rows(database_url: str, table: str, frames: list[pd.DataFrame]) -> None:
    """The physical limit: one CSV from the wire-format frames, one COPY, one commit.

    Postgres reads tushare's YYYYMMDD text as DATE, so the frames need no conversion. The
    CSV comes from the writer our path uses (Arrow), so the two differ by what we do
    around it: validation, conversion, one transaction per day.
    """
    buffer = copy_csv(pd.concat(frames, ignore_index=True))
    columns = ", ".join(f'"{name}"' for name in API_FIELDS["daily"])
    connection = psycopg2.connect(database_url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)
    finally:
        connection.close()


def count_table(spec: dict, table: str) -> int:
    engine = sa.create_engine(spec["database_url"])
    with engine.connect() as conn:
        count = conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
    engine.dispose()
    return int(count)


CASES = {"ours": ours_case, "zquant": zquant_case, "write": write_case}


def child_main() -> None:
    """Run the case described by the JSON spec on stdin; print its result as JSON."""
    spec = json.loads(sys.stdin.read())
    imports_rss = peak_rss_mib()
    result = CASES[spec["case"]](spec)
    print(json.dumps({**result, "imports_rss_mib": imports_rss, "peak_rss_mib": peak_rss_mib()}))


# -- the call curve: calls counted per planned query, no HTTP ---------------------------


class PageCounter:
    """The sample market as ``TushareClient`` fetches it, counting calls: a query of R rows
    costs ``pages_for(R, row_limit)`` calls (a page per full page, then the last, partial
    or empty, one). test_bench checks the count against the wire server's."""

    def __init__(self, market, row_limit: int):
        self.market, self.row_limit = market, row_limit
        self.calls = self.rows = 0

    def query(self, api_name: str, **params) -> pd.DataFrame:
        frame = self.market.query(api_name, **params)
        self.calls += pages_for(len(frame), self.row_limit)
        self.rows += len(frame)
        return frame


def stock_spans(market) -> pd.DataFrame:
    """Every stock's listing span (L, D and P), as the sync reads it from stock_basic."""
    basic = market.query("stock_basic", list_status=",".join(LIST_STATUSES))
    return spans_of(to_warehouse_frame("stock_basic", basic))


def counted_calls(market, stocks: pd.DataFrame, days: list[dt.date]) -> dict[str, dict]:
    """Calls per trading-day API over ``days`` (open, oldest first), counted against the
    market: ours (the sync's plan, each planned query run and its pages counted), the page
    floor (ceil(rows / row limit) of the same rows), zquant's bulk mode (one ``trade_date``
    call per day, unpaged) and per-stock mode (one call per stock listed in the range, each
    under the row limit)."""
    per_stock = int(listed_during(stocks, days[0], days[-1]).sum())
    calls: dict[str, dict] = {}
    for api in TRADING_DAY_APIS:
        row_limit = API_ROW_LIMITS[api]
        plan = plan_calls(days, listed_counts(stocks, days), row_limit)
        counter = PageCounter(market, row_limit)
        for window in plan.windows:
            counter.query(api, **window_params(plan.shape, stocks, window))
        calls[api] = {
            "shape": plan.shape,
            "ours": counter.calls,
            "floor": math.ceil(counter.rows / row_limit),
            "zquant_bulk_per_day": len(days),
            "zquant_per_stock": per_stock,
        }
    return calls


def projected_calls(listed: int, n_days: int) -> dict[str, dict]:
    """``counted_calls`` for a range longer than the market's history: ``listed`` stocks
    every day, each with a row every day (so ours is the planner's estimate, an upper
    bound); zquant's per-stock mode gets only those stocks (no listing turnover: its best
    case)."""
    days = [dt.date(2000, 1, 1) + dt.timedelta(days=n) for n in range(n_days)]
    calls: dict[str, dict] = {}
    for api in TRADING_DAY_APIS:
        row_limit = API_ROW_LIMITS[api]
        plan = plan_calls(days, [listed] * n_days, row_limit)
        calls[api] = {
            "shape": plan.shape,
            "ours": plan.calls,
            "floor": math.ceil(listed * n_days / row_limit),
            "zquant_bulk_per_day": n_days,
            "zquant_per_stock": listed,
        }
    return calls


CURVE_SERIES = ("ours", "floor", "zquant_bulk_per_day", "zquant_per_stock")


def calls_curve(market, as_of: str, sizes=CURVE_DAYS) -> list[dict]:
    """Per size: calls of each series summed over the trading-day APIs, and the minutes
    they take at CURVE_CALLS_PER_MINUTE (computed, not slept: the steady rate, the APIs one
    after another, waits only; a fresh budget lets a first burst through sooner, a budget
    shared with other syncs makes it slower). A size within the market's
    history is counted (``counted_calls``); a longer one is projected
    (``projected_calls``) with the stocks listed on the last day."""
    stocks = stock_spans(market)
    history = last_open_days(market, market.horizon, as_of)  # every day with bars
    curve = []
    for n_days in sizes:
        if n_days <= len(history):
            method, per_api = "counted", counted_calls(market, stocks, history[-n_days:])
        else:
            listed = listed_counts(stocks, history[-1:])[0]
            method, per_api = "projected", projected_calls(listed, n_days)
        point = {"days": n_days, "method": method, "per_api": per_api}
        for series in CURVE_SERIES:
            point[series] = sum(api[series] for api in per_api.values())
            point[f"{series}_minutes"] = point[series] / CURVE_CALLS_PER_MINUTE
        curve.append(point)
    return curve


def call_figures(curve: list[dict]) -> list[dict]:
    """The two call figures of issue 15 in the results contract's form (a count: one
    repeat, no spread)."""
    at = {point["days"]: point for point in curve}
    floor, zquant = at[FLOOR_FIGURE_DAYS], at[ZQUANT_FIGURE_DAYS]
    how = "calls counted per planned query against the sample market, no HTTP"
    figures = [
        {
            "id": f"sync.calls_vs_floor_{FLOOR_FIGURE_DAYS}d",
            "ours": floor["ours"],
            "baseline": floor["floor"],
            "ratio": floor["ours"] / floor["floor"],
            "target": f"<= {FLOOR_TARGET:g}",
            "met": floor["ours"] / floor["floor"] <= FLOOR_TARGET,
            "projected": floor["method"] == "projected",
            "note": f"ours / page floor, 3 trading-day APIs; {how}",
        },
        {
            "id": f"sync.calls_vs_zquant_per_stock_{ZQUANT_FIGURE_DAYS}d",
            "ours": zquant["ours"],
            "baseline": zquant["zquant_per_stock"],
            "ratio": zquant["zquant_per_stock"] / zquant["ours"],
            "target": f">= {ZQUANT_PER_STOCK_TARGET:g}",
            "met": zquant["zquant_per_stock"] / zquant["ours"] >= ZQUANT_PER_STOCK_TARGET,
            "projected": zquant["method"] == "projected",
            "note": f"zquant per-stock calls / ours, 3 trading-day APIs; {how}",
        },
    ]
    for figure in figures:
        # A projection never counts as met (issue 15).
        figure["met"] = figure["met"] and not figure["projected"]
        figure.update(repeats=1, iqr=0.0, peak_rss_mib=None)
    return figures


# -- parent side: the market, the server, the database, the cases -----------------------


class Bench:
    """One benchmark run: the served market, the database, and how to run a case on them."""

    def __init__(self, server: TushareWireServer, database_url: str, scratch: Path, base: dict):
        self.server = server
        self.database_url = database_url
        self.scratch = scratch
        self.base = base

    def run_case(self, case: str, throttle: tuple[int, float] | None, **extra) -> dict:
        """Run ``case`` in a fresh process; add the calls the server saw and refused."""
        label = f"{case}_{uuid.uuid4().hex[:8]}"
        calls, window = throttle or (UNTHROTTLED_CALLS, UNTHROTTLED_WINDOW_SECONDS)
        spec = {
            **self.base,
            **extra,
            "case": case,
            "token": self.server.token,
            "api_url": self.server.url,
            "database_url": self.database_url,
            "schema": label,
            "rate_limit_dir": str(self.scratch / label),
            "client_calls": calls,
            "client_window_seconds": window * (CLIENT_WINDOW_MARGIN if throttle else 1),
        }
        self.server.clear_faults()
        self.server.reset_calls()
        if throttle:
            self.server.limit_rate(*throttle)
        finished = subprocess.run(
            [sys.executable, "-m", "bench.bench_sync", "--child"],
            input=json.dumps(spec),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
        if finished.returncode != 0:
            raise RuntimeError(f"sync bench case {case!r} failed:\n{finished.stderr[-3000:]}")
        result = json.loads(finished.stdout.strip().splitlines()[-1])
        served = self.server.calls
        result["http_calls"] = dict(Counter(call.api_name for call in served))
        result["refused_calls"] = sum(call.outcome != "ok" for call in served)
        return result


def last_open_days(market, days: int, as_of: str) -> list[dt.date]:
    calendar = market.query("trade_cal", exchange="SSE", end_date=as_of, is_open="1")
    open_days = sorted(dt.datetime.strptime(day, "%Y%m%d").date() for day in calendar["cal_date"])
    if len(open_days) < days:
        raise ValueError(f"days {days} exceeds the {len(open_days)} open days up to {as_of}")
    return open_days[-days:]


def minimum_calls(market, trade_dates: list[dt.date]) -> dict[str, int]:
    """Calls a perfect full sync makes per API: one per request, plus a page per full reply."""

    def pages(api: str, **params) -> int:
        return len(market.query(api, **params)) // API_ROW_LIMITS[api] + 1

    minimum = {
        "stock_basic": sum(pages("stock_basic", list_status=s) for s in LIST_STATUSES),
        "trade_cal": sum(
            pages(
                "trade_cal",
                exchange=exchange,
                start_date=to_tushare_date(trade_dates[0]),
                end_date=to_tushare_date(trade_dates[-1]),
            )
            for exchange in CALENDAR_EXCHANGES
        ),
    }
    for api in TRADING_DAY_APIS:
        minimum[api] = sum(pages(api, trade_date=to_tushare_date(day)) for day in trade_dates)
    return minimum


def throttled_seconds(calls: int, work_seconds: float, budget: int, window_seconds: float):
    """Wall time of ``calls`` calls doing ``work_seconds`` of work under ``budget`` calls per
    sliding window: every full budget waits for its window to roll, the rest runs at work
    pace; never less than the work itself."""
    waits = math.ceil(calls / budget) - 1
    rest = calls - waits * budget
    return max(work_seconds, waits * window_seconds + rest * work_seconds / calls)


def projection(cases: dict, zquant_calls: int, calls_per_window: int, window_seconds: float):
    """Throttled daily times at tushare's real minute, from the unthrottled work per call."""
    ours_daily = cases["ours"]["steps"]["daily"]["seconds"]
    ours_calls = cases["ours"]["http_calls"]["daily"]
    per_zquant_call = cases["zquant"]["seconds"] / sum(cases["zquant"]["http_calls"].values())
    zquant_work = per_zquant_call * zquant_calls

    def at(window: float) -> tuple[float, float]:
        return (
            throttled_seconds(ours_calls, ours_daily, calls_per_window, window),
            throttled_seconds(zquant_calls, zquant_work, calls_per_window, window),
        )

    ours, zquant = at(TUSHARE_WINDOW_SECONDS)
    return {
        "window_seconds": TUSHARE_WINDOW_SECONDS,
        "ours_daily_seconds": ours,
        "zquant_seconds": zquant,
        "check_predicted_seconds": at(window_seconds)[1],
        "check_measured_seconds": cases["zquant_throttled"]["seconds"],
    }


def median_case(bench: Bench, case: str, throttle, repeats: int, **extra) -> dict:
    """The run with the median total time among ``repeats`` runs, with every time kept."""
    runs = sorted(
        (bench.run_case(case, throttle, **extra) for _ in range(repeats)),
        key=lambda result: result["seconds"],
    )
    return {**runs[(len(runs) - 1) // 2], "all_seconds": [result["seconds"] for result in runs]}


def run(
    stocks: int = DEFAULT_STOCKS,
    days: int = DEFAULT_DAYS,
    repeats: int = DEFAULT_REPEATS,
    zquant_sample: int = DEFAULT_ZQUANT_SAMPLE,
    calls_per_window: int = THROTTLE_CALLS,
    window_seconds: float = THROTTLE_WINDOW_SECONDS,
    pg_admin_url: str = PG_ADMIN_URL,
    as_of: str = DEFAULT_AS_OF,
) -> dict:
    """Run every case; print a table and return the figures."""
    counts = {
        "stocks": stocks,
        "days": days,
        "repeats": repeats,
        "zquant_sample": zquant_sample,
        "calls_per_window": calls_per_window,
    }
    for name, value in counts.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")
    if window_seconds <= 0:
        raise ValueError(f"window_seconds must be > 0, got {window_seconds!r}")
    market = sample_market(n_stocks=stocks, as_of=as_of)
    trade_dates = last_open_days(market, days, as_of)
    ts_codes = sorted(market.query("stock_basic", list_status=",".join(LIST_STATUSES))["ts_code"])
    # Every k-th stock, so the sample spans the boards and the listing years.
    sample = ts_codes[:: max(1, len(ts_codes) // zquant_sample)][:zquant_sample]
    throttle = (calls_per_window, window_seconds)
    database_url = create_pg_database(pg_admin_url, "zq_bench_sync")
    try:
        with TushareWireServer(market) as server, tempfile.TemporaryDirectory() as scratch:
            bench = Bench(
                server,
                database_url,
                Path(scratch),
                {"trade_dates": [day.isoformat() for day in trade_dates], "repeats": repeats},
            )
            cases = {
                "ours": median_case(bench, "ours", None, repeats),
                # Our calls stay under the budget, so this run is as short as the one above:
                # a median of several costs little, and its figure is held to a target.
                "ours_throttled": median_case(bench, "ours", throttle, repeats),
                "zquant": median_case(bench, "zquant", None, repeats, ts_codes=sample),
                "zquant_throttled": bench.run_case("zquant", throttle, ts_codes=ts_codes),
                "write": bench.run_case("write", None),
            }
    finally:
        drop_pg_database(pg_admin_url, database_url)
    result = {
        "stocks": len(ts_codes),
        "trading_days": days,
        "first_day": trade_dates[0].isoformat(),
        "last_day": trade_dates[-1].isoformat(),
        "repeats": repeats,
        "throttle": {"calls": calls_per_window, "window_seconds": window_seconds},
        "zquant_sample_stocks": len(sample),
        "minimum_calls": minimum_calls(market, trade_dates),
        "cases": cases,
        "projection": projection(cases, len(ts_codes), calls_per_window, window_seconds),
    }
    result["calls_curve"] = calls_curve(market, as_of)
    result["call_figures"] = call_figures(result["calls_curve"])
    print_table(result)
    return result


def print_table(result: dict) -> None:
    cases, throttle, projected = result["cases"], result["throttle"], result["projection"]
    print(
        f"sync: {result['stocks']} stocks x {result['trading_days']} trading days"
        f" ({result['first_day']}..{result['last_day']}); throttled = {throttle['calls']} calls"
        f" per {throttle['window_seconds']:g} s per API; median of {result['repeats']}"
        " (zquant's throttled run: once)"
    )
    header = ("case", "calls", "refused", "rows", "seconds", "rows/s", "peak RSS")
    print("  {:<40}{:>7}{:>8}{:>9}{:>9}{:>9}{:>10}".format(*header))
    sample = f"zquant's way, {result['zquant_sample_stocks']} stocks"
    lines = [
        ("ours, full sync", cases["ours"], None),
        ("ours, full sync, throttled", cases["ours_throttled"], None),
        ("ours, daily step", cases["ours"], "daily"),
        ("ours, daily step, throttled", cases["ours_throttled"], "daily"),
        (sample, cases["zquant"], None),
        ("zquant's way, every stock, throttled", cases["zquant_throttled"], None),
    ]
    for name, case, step in lines:
        part = case["steps"][step] if step else case
        calls = case["http_calls"].get(step, 0) if step else sum(case["http_calls"].values())
        print(
            f"  {name:<40}{calls:>7}{case['refused_calls']:>8}{part['rows']:>9}"
            f"{part['seconds']:>9.2f}{part['rows'] / part['seconds']:>9.0f}"
            f"{case['peak_rss_mib']:>6.0f} MiB"
        )
    write = cases["write"]
    for name, key in (
        ("write path: ours", "ours_seconds"),
        ("write path: raw COPY", "copy_seconds"),
    ):
        print(
            f"  {name:<40}{'':>15}{write['rows']:>9}{write[key]:>9.2f}"
            f"{write['rows'] / write[key]:>9.0f}"
        )
    print(
        f"  projected at {throttle['calls']} calls per {projected['window_seconds']:g} s:"
        f" ours daily {projected['ours_daily_seconds']:.1f} s, zquant's way"
        f" {projected['zquant_seconds']:.0f} s (model check at {throttle['window_seconds']:g} s:"
        f" predicted {projected['check_predicted_seconds']:.1f} s,"
        f" measured {projected['check_measured_seconds']:.1f} s)"
    )
    print_curve(result["calls_curve"])


def print_curve(curve: list[dict]) -> None:
    print(
        "  calls of the 3 trading-day APIs by range (minutes at"
        f" {CURVE_CALLS_PER_MINUTE} calls/min per API, computed)"
    )
    labels = ("ours", "page floor", "zq bulk/day", "zq per stock")
    print("  {:>6}  {:<10}{:>15}{:>15}{:>15}{:>15}".format("days", "", *labels))
    for point in curve:
        cells = "".join(f"{point[s]:>8} {point[s + '_minutes']:>5.1f}m" for s in CURVE_SERIES)
        print(f"  {point['days']:>6}  {point['method']:<10}{cells}")
    for figure in call_figures(curve):
        print(
            f"  {figure['id']}: {figure['ours']} vs {figure['baseline']}, ratio"
            f" {figure['ratio']:.3f} (target {figure['target']}, met: {figure['met']})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stocks", type=int, default=DEFAULT_STOCKS)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--zquant-sample", type=int, default=DEFAULT_ZQUANT_SAMPLE)
    parser.add_argument("--calls-per-window", type=int, default=THROTTLE_CALLS)
    parser.add_argument("--window-seconds", type=float, default=THROTTLE_WINDOW_SECONDS)
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    parser.add_argument(
        "--child", action="store_true", help="run one case from a JSON spec on stdin (internal)"
    )
    args = parser.parse_args()
    if args.child:
        child_main()
        return
    run(
        args.stocks,
        args.days,
        args.repeats,
        args.zquant_sample,
        args.calls_per_window,
        args.window_seconds,
        args.pg_admin_url,
    )


if __name__ == "__main__":
    main()
