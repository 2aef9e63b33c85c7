"""Benchmark figures of the sync and the warehouse write path (issue 15's sync and write).

The sample market (default 5,000 stocks) is served by the local tushare wire server, which
records every call; syncs run through the real SDK (``TushareClient``) into a temporary
PostgreSQL database dropped afterwards. Figures (ids as in bench/results.json):

- ``sync.calls_vs_floor_<D>d``: the calls of daily, adj_factor and daily_basic our sync
  plans for the last D trading days of the whole market (per day, or code lists over
  windows of days: ``sync.market.plan_calls``), against the page floor
  ``ceil(rows / row limit)`` (the fewest calls any call shape could make); target at most
  1.15x the floor for D >= 250;
- ``sync.calls_vs_zquant_per_stock_<D>d``: the same calls against zquant's per-stock mode
  (one call per stock listed in the range, per API); target 3x fewer at 1,000 days. Calls
  are counted per planned query against the sample market without HTTP (``PageCounter``;
  test_bench checks the count against the wire server's for a real sync through the SDK):
  counts, so each side runs once (``deterministic``);
- ``write.vs_copy_prebuilt``: the daily rows of D days (fetched once, untimed) written by
  our path (``to_warehouse_frame`` + ``Warehouse.replace_partition`` per day, as the sync
  does) against one raw psycopg2 ``COPY`` of the same rows from a CSV built beforehand, each
  into an empty table of the warehouse's shape (primary key included); rows/s, target at
  least 0.5 of the COPY;
- ``write.resync_1pct_vs_first_load``: the same days written again over the stored rows
  with 1% of the rows changed, against the first load into empty tables; target 3x faster;
- ``--size full`` adds the call curves (1, 5, 20, 60, 250, 1,000 and 2,500 days, with
  zquant's bulk mode, one call per day, too; 2,500 days is past the sample market's history,
  so that point is projected from the planner's estimate) and the throttled daily sync
  time at 500 calls per 12 s (tushare's minute scaled down 5x) against zquant's per-stock
  way under the same budget (minutes: 3 repeats).

Each sync side runs in a fresh process (``--child``), so its peak RSS (VmHWM) is its own;
the write sides run in this process (see bench/harness.py for how their RSS is sampled).

Run: ``.venv/bin/python -m bench --only sync [--size quick|default|full]``
"""

import datetime as dt
import json
import math
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import psycopg2
import sqlalchemy as sa

from bench.harness import Figure, Sample, Wanted, every_figure
from zquant_pipelines.constants import API_FIELDS, API_ROW_LIMITS, LIST_STATUSES
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

# The APIs the call figures count: the market bars, on which issue 15 defines its sync
# figures. Not every trading-day API: counting a plan's pages runs its queries against the
# sample market (PageCounter needs the rows), and stk_factor's and stk_factor_pro's answers
# are indicator panels over the history, minutes for 5,000 stocks and 1,000 days.
BAR_APIS = ("daily", "adj_factor", "daily_basic")
# Sizes: stocks, the days of the call figures, the days the write figures write.
SIZES = {
    "quick": {"stocks": 30, "call_days": (5, 10), "write_days": 3},
    "default": {"stocks": 5_000, "call_days": (250, 1_000), "write_days": 60},
    "full": {"stocks": 5_000, "call_days": (1, 5, 20, 60, 250, 1_000, 2_500), "write_days": 60},
}
# Beyond the sample market's history (about 1,740 open days up to DEFAULT_AS_OF) a point of
# the call curve is projected from the planner's estimate (never met).
CURVE_CALLS_PER_MINUTE = 500
FLOOR_TARGET_MAX = 1.15
ZQUANT_TARGET = 3
WRITE_TARGET = 0.5
RESYNC_TARGET = 3
RESYNC_CHANGED_SHARE = 0.01
THROTTLED_DAYS = 60
# A fixed last day keeps runs comparable (the market is a pure function of its settings).
DEFAULT_AS_OF = "20260227"
THROTTLE_CALLS = 500
THROTTLE_WINDOW_SECONDS = 12.0
CLIENT_WINDOW_MARGIN = 1.02
UNTHROTTLED_CALLS = 1_000_000
UNTHROTTLED_WINDOW_SECONDS = 1.0
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
    """The project's sync of the daily API (stock list and calendar first, as it needs them);
    seconds and rows of the daily step."""
    client = make_client(spec)
    warehouse = Warehouse(url=spec["database_url"], db_schema=spec["schema"])
    warehouse.ensure_schema()
    days = trade_dates_of(spec)
    sync_stock_basic(client, warehouse)
    sync_trade_cal(client, warehouse, days[0], days[-1])
    started = time.perf_counter()
    result = sync_trading_days(client, warehouse, "daily", days)
    seconds = time.perf_counter() - started
    warehouse.dispose()
    return {"seconds": seconds, "rows": result.rows}


def zquant_case(spec: dict) -> dict:
    """zquant's per-stock mode: one daily call per stock over the range (every page),
    each stock's rows appended with to_sql when ``write`` is set."""
    client = make_client(spec)
    engine = sa.create_engine(spec["database_url"])
    if spec["write"]:
        with engine.begin() as conn:
            conn.execute(sa.schema.CreateSchema(spec["schema"]))
    days = trade_dates_of(spec)
    window = {"start_date": to_tushare_date(days[0]), "end_date": to_tushare_date(days[-1])}
    rows = 0
    started = time.perf_counter()
    for ts_code in spec["ts_codes"]:
        frame = client.query("daily", ts_code=ts_code, **window)
        if spec["write"]:
            frame.to_sql("daily", engine, schema=spec["schema"], if_exists="append", index=False)
        rows += len(frame)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "rows": rows}


CASES = {"ours": ours_case, "zquant": zquant_case}


def child_main() -> None:
    """Run the case described by the JSON spec on stdin; print its result as JSON."""
    spec = json.loads(sys.stdin.read())
    result = CASES[spec["case"]](spec)
    print(json.dumps({**result, "peak_rss_mib": peak_rss_mib()}))


# -- parent side: the market, the server, the database, the cases -----------------------


class Bench:
    """The served market, the database, and how to run a case on them."""

    def __init__(self, server: TushareWireServer, database_url: str, scratch: Path):
        self.server = server
        self.database_url = database_url
        self.scratch = scratch

    def spec(self, label: str, throttle: tuple[int, float] | None = None) -> dict:
        calls, window = throttle or (UNTHROTTLED_CALLS, UNTHROTTLED_WINDOW_SECONDS)
        return {
            "token": self.server.token,
            "api_url": self.server.url,
            "database_url": self.database_url,
            "schema": label,
            "rate_limit_dir": str(self.scratch / label),
            "client_calls": calls,
            "client_window_seconds": window * (CLIENT_WINDOW_MARGIN if throttle else 1),
        }

    def run_case(
        self, case: str, days: list[dt.date], throttle: tuple[int, float] | None = None, **extra
    ) -> dict:
        """Run ``case`` in a fresh process; add the calls the server saw and refused."""
        spec = {
            **self.spec(f"{case}_{uuid.uuid4().hex[:8]}", throttle),
            **extra,
            "case": case,
            "trade_dates": [day.isoformat() for day in days],
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
        if result["refused_calls"]:
            raise RuntimeError(f"{case}: the server refused {result['refused_calls']} calls")
        return result

    def client(self) -> TushareClient:
        return make_client(self.spec(f"parent_{uuid.uuid4().hex[:8]}"))

    def empty_warehouse(self) -> Warehouse:
        warehouse = Warehouse(url=self.database_url, db_schema=f"w_{uuid.uuid4().hex[:10]}")
        warehouse.ensure_schema()
        return warehouse


def last_open_days(market, days: int, as_of: str = DEFAULT_AS_OF) -> list[dt.date]:
    calendar = market.query("trade_cal", exchange="SSE", end_date=as_of, is_open="1")
    open_days = sorted(dt.datetime.strptime(day, "%Y%m%d").date() for day in calendar["cal_date"])
    if len(open_days) < days:
        raise ValueError(f"days {days} exceeds the {len(open_days)} open days up to {as_of}")
    return open_days[-days:]


def copy_rows(database_url: str, table: str, csv) -> None:
    """The physical limit: one COPY of a CSV built beforehand, one commit.

    Postgres reads tushare's YYYYMMDD text as DATE, so the frames need no conversion. The
    CSV comes from the writer our path uses (Arrow), built outside the timing.
    """
    csv.seek(0)
    columns = ", ".join(f'"{name}"' for name in API_FIELDS["daily"])
    connection = psycopg2.connect(database_url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)", csv)
    finally:
        connection.close()


def write_days(warehouse: Warehouse, days: list[dt.date], frames: list[pd.DataFrame]) -> None:
    """Our write path, as the sync does it: one replace_partition per day."""
    for day, frame in zip(days, frames, strict=True):
        warehouse.replace_partition("daily", to_warehouse_frame("daily", frame), day)


def timed_write(warehouse: Warehouse, days: list[dt.date], frames: list[pd.DataFrame]) -> Sample:
    """``write_days``' seconds."""
    started = time.perf_counter()
    write_days(warehouse, days, frames)
    return Sample(time.perf_counter() - started)


def changed_frames(frames: list[pd.DataFrame], share: float, offset: int) -> list[pd.DataFrame]:
    """The frames with ``close`` moved on every (1 / share)-th row, starting at ``offset``."""
    step = round(1 / share)
    changed = []
    for frame in frames:
        copy = frame.copy()
        rows = copy.index[offset % step :: step]
        copy.loc[rows, "close"] = copy.loc[rows, "close"] + 0.01 * (1 + offset)
        changed.append(copy)
    return changed


def landed(warehouse: Warehouse, rows: int) -> str:
    """Empty when the table holds ``rows`` rows: a write path that dropped some looks fast."""
    count = warehouse.count_rows("daily")
    return "" if count == rows else f"{warehouse.db_schema}.daily holds {count} rows, not {rows}"


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
    """Calls per bar API (BAR_APIS) over ``days`` (open, oldest first), counted against the
    market: ours (the sync's plan, each planned query run and its pages counted), the page
    floor (ceil(rows / row limit) of the same rows), zquant's bulk mode (one ``trade_date``
    call per day, unpaged) and per-stock mode (one call per stock listed in the range, each
    under the row limit)."""
    per_stock = int(listed_during(stocks, days[0], days[-1]).sum())
    calls: dict[str, dict] = {}
    for api in BAR_APIS:
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
    for api in BAR_APIS:
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
WRITE_ID = "write.vs_copy_prebuilt"
RESYNC_ID = "write.resync_1pct_vs_first_load"
THROTTLED_ID = f"sync.throttled_daily_vs_zquant_{THROTTLED_DAYS}d"


def call_figure_id(series: str, days: int) -> str:
    """The id of the call figure of ``days`` against the baseline ``series``."""
    return f"sync.calls_vs_{series}_{days}d"


def call_baselines(curve: bool) -> tuple[str, ...]:
    """The series the call figures compare ours with (zquant's bulk mode on the curve only)."""
    return ("floor", "zquant_per_stock") + (("zquant_bulk_per_day",) if curve else ())


def calls_curve(market, as_of: str, sizes) -> list[dict]:
    """Per size: calls of each series summed over the bar APIs, and the minutes
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


HOW_COUNTED = (
    "daily, adj_factor and daily_basic; calls counted per planned query against the sample"
    " market, no HTTP (test_bench checks the count against the wire server's)"
)


def call_figures(market, sizes, curve: bool) -> Iterator[Figure]:
    """Per size (trading days of the whole market): our calls against the page floor and
    against zquant's per-stock mode (and, on the curve, its bulk mode). Counts: one run per
    side; a size past the market's history is a projection."""
    for point in calls_curve(market, DEFAULT_AS_OF, sizes):
        days, projected = point["days"], point["method"] == "projected"

        def count(series: str, point=point) -> Sample:
            return Sample(point[series])

        common = dict(unit="calls", repeats=1, deterministic=True, projected=projected, x=days)
        yield Figure(
            id=call_figure_id("floor", days),
            title=f"API calls, whole market, {days} trading days",
            ours=lambda count=count: count("ours"),
            baseline=lambda count=count: count("floor"),
            baseline_name="page floor: ceil(rows / row limit)",
            # Lower is better, so the ratio is floor / ours: at most 1.15x the floor.
            target=1 / FLOOR_TARGET_MAX if days >= 250 else None,
            curve="sync calls: ours vs page floor" if curve else None,
            note=f"target: at most {FLOOR_TARGET_MAX}x the floor; {HOW_COUNTED}",
            **common,
        )
        yield Figure(
            id=call_figure_id("zquant_per_stock", days),
            title=f"API calls, whole market, {days} trading days",
            ours=lambda count=count: count("ours"),
            baseline=lambda count=count: count("zquant_per_stock"),
            baseline_name="zquant per stock: one call per stock over the range",
            target=ZQUANT_TARGET if days >= 1_000 else None,
            curve="sync calls: ours vs zquant per stock" if curve else None,
            note=HOW_COUNTED,
            **common,
        )
        if curve:
            yield Figure(
                id=call_figure_id("zquant_bulk_per_day", days),
                title=f"API calls, whole market, {days} trading days",
                ours=lambda count=count: count("ours"),
                baseline=lambda count=count: count("zquant_bulk_per_day"),
                baseline_name="zquant bulk: one call per day",
                curve="sync calls: ours vs zquant bulk per day",
                note=f"{HOW_COUNTED}; minutes at {CURVE_CALLS_PER_MINUTE} calls/min:"
                f" ours {point['ours_minutes']:.1f}, zquant bulk"
                f" {point['zquant_bulk_per_day_minutes']:.1f}, zquant per stock"
                f" {point['zquant_per_stock_minutes']:.1f}",
                **common,
            )


def write_figures(bench: Bench, market, days: int, wanted: Wanted):
    trade_dates = last_open_days(market, days)
    client = bench.client()
    frames = [client.query("daily", trade_date=to_tushare_date(day)) for day in trade_dates]
    rows = sum(len(frame) for frame in frames)
    csv = copy_csv(pd.concat(frames, ignore_index=True))
    problems: list[str] = []

    def rows_per_second(write: Callable[[Warehouse], None]) -> Sample:
        """``write`` into empty tables of the warehouse's shape, in rows/s."""
        warehouse = bench.empty_warehouse()
        started = time.perf_counter()
        write(warehouse)
        seconds = time.perf_counter() - started
        problems.append(landed(warehouse, rows))
        warehouse.dispose()
        return Sample(rows / seconds)

    yield Figure(
        id=WRITE_ID,
        title=f"write path, daily rows of {days} days, rows/s",
        ours=lambda: rows_per_second(lambda warehouse: write_days(warehouse, trade_dates, frames)),
        baseline=lambda: rows_per_second(
            lambda warehouse: copy_rows(bench.database_url, f"{warehouse.db_schema}.daily", csv)
        ),
        baseline_name="raw psycopg2 COPY of a pre-built CSV, one transaction",
        target=WRITE_TARGET,
        unit="rows/s",
        higher_is_better=True,
        check=lambda: "; ".join(filter(None, problems)),
        note=f"{rows:,} rows; ours includes validation and serialisation",
    )

    if not wanted(RESYNC_ID):
        return
    stored = bench.empty_warehouse()
    write_days(stored, trade_dates, frames)
    resyncs = iter(range(1, 1_000_000))

    # Each side times its writes only: the changed frames of a re-sync, like the frames of a
    # first load, arrive from the sync, and the empty tables of a first load exist already.
    def resync() -> Sample:
        changed = changed_frames(frames, RESYNC_CHANGED_SHARE, next(resyncs))
        return timed_write(stored, trade_dates, changed)

    def first_load() -> Sample:
        warehouse = bench.empty_warehouse()
        try:
            return timed_write(warehouse, trade_dates, frames)
        finally:
            warehouse.dispose()

    yield Figure(
        id=RESYNC_ID,
        title=f"re-sync of {days} days with 1% of rows changed",
        ours=resync,
        baseline=first_load,
        baseline_name="first load of the same days into empty tables",
        target=RESYNC_TARGET,
        check=lambda: landed(stored, rows),
        note=f"{rows:,} rows, {RESYNC_CHANGED_SHARE:.0%} of them changed per re-sync",
    )


def throttled_figure(bench: Bench, market, ts_codes: list[str]):
    trade_dates = last_open_days(market, THROTTLED_DAYS)
    throttle = (THROTTLE_CALLS, THROTTLE_WINDOW_SECONDS)

    def timed(case: str, **extra) -> Sample:
        result = bench.run_case(case, trade_dates, throttle, **extra)
        return Sample(result["seconds"], result["peak_rss_mib"])

    yield Figure(
        id=THROTTLED_ID,
        title=f"throttled daily sync time ({THROTTLE_CALLS} calls per"
        f" {THROTTLE_WINDOW_SECONDS:g} s), {THROTTLED_DAYS} days",
        ours=lambda: timed("ours"),
        baseline=lambda: timed("zquant", ts_codes=ts_codes, write=True),
        baseline_name="zquant's way: per-stock calls + to_sql, same budget",
        target=20,
        repeats=3,
        long=True,
        note="tushare's minute scaled down 5x; daily API only on both sides",
    )


def figures(size: str = "default", wanted: Wanted = every_figure) -> Iterator[Figure]:
    """The sync and write figures at ``size`` (see the module docstring); the market, the
    server and the database only for wanted figures, the call counts only of wanted sizes."""
    sizes, curve = SIZES[size], size == "full"
    call_days = [
        days
        for days in sizes["call_days"]
        if any(wanted(call_figure_id(series, days)) for series in call_baselines(curve))
    ]
    writes = wanted(WRITE_ID) or wanted(RESYNC_ID)
    throttled = size == "full" and wanted(THROTTLED_ID)
    if not (call_days or writes or throttled):
        return
    market = sample_market(n_stocks=sizes["stocks"], as_of=DEFAULT_AS_OF)
    yield from call_figures(market, call_days, curve)
    if not (writes or throttled):
        return
    ts_codes = sorted(market.query("stock_basic", list_status=",".join(LIST_STATUSES))["ts_code"])
    database_url = create_pg_database(PG_ADMIN_URL, "zq_bench_sync")
    try:
        with TushareWireServer(market) as server, tempfile.TemporaryDirectory() as scratch:
            bench = Bench(server, database_url, Path(scratch))
            if writes:
                yield from write_figures(bench, market, sizes["write_days"], wanted)
            if throttled:
                yield from throttled_figure(bench, market, ts_codes)
    finally:
        drop_pg_database(PG_ADMIN_URL, database_url)


if __name__ == "__main__":
    child_main()
