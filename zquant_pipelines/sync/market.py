"""Market-data syncs: tushare API -> warehouse table, for every declared dataset.

A reference dataset has its own sync (``sync_stock_basic``, ``sync_trade_cal``); every
trading-day dataset is
synced by ``sync_trading_days`` from its declaration (zquant_pipelines/datasets/): fields,
row limit per call, the share of listed stocks a published day holds.

Plain functions (no Dagster): assets and task actions both call them. A source is anything
with ``query(api_name, **params) -> DataFrame`` in tushare's wire format (the tushare client
or the sample market); a warehouse is a ``Warehouse``. Trading-day syncs ask for the open
days (none on a closed day) in the shape that needs fewer calls (``plan_calls``): one call
per day, as tushare recommends, or for longer ranges the listed stocks' codes over windows
of days, whose replies fill every page (the source pages past the row limit) where a day of
about 5,400 rows leaves a 6,000-row page 10% empty. Either way every day is checked and
written on its own (``store_day``), so the stored tables are the same whichever shape ran.
A day's rows far fewer than the stocks listed that day (MIN_LISTED_SHARE), or none, is a day
tushare has not published yet: it is refused and the stored day stays as it was.
"""

import datetime as dt
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import pandas as pd

from zquant_pipelines.constants import (
    API_FIELDS,
    API_ROW_LIMITS,
    CALENDAR_EXCHANGES,
    DATASETS,
    DATE_COLUMNS,
    DEFAULT_ROW_LIMIT,
    LIST_STATUSES,
    MIN_LISTED_SHARE,
    TRADING_DAY_APIS,
)
from zquant_pipelines.datasets import SqlType
from zquant_pipelines.dates import to_tushare_date
from zquant_pipelines.sync.progress import DayCounter, ProgressCallback

# The calendar every trading-day decision reads; SSE and SZSE share their open days.
REFERENCE_EXCHANGE = "SSE"
T = TypeVar("T")
R = TypeVar("R")


class DayNotPublishedError(RuntimeError):
    """An open day's reply has no rows, or far fewer than the stocks listed that day: tushare
    has not (fully) published the day yet. Nothing of that day was written."""


@dataclass(frozen=True)
class DayWritten:
    """What a sync wrote for one open day (a ranged run's partition shows these)."""

    rows: int
    api_calls: int


@dataclass
class SyncResult:
    """What one sync wrote: rows per table, logical API calls, the trading days touched,
    and, for syncs by day, each day's own figures (``by_day``).

    ``trade_dates`` are the open days the table now holds for the range, ``resumed_dates``
    those of them an earlier attempt wrote (not fetched again: no call, no rows counted).
    """

    table: str
    rows: int = 0
    api_calls: int = 0
    trade_dates: list[dt.date] = field(default_factory=list)
    closed_dates: list[dt.date] = field(default_factory=list)
    resumed_dates: list[dt.date] = field(default_factory=list)
    by_day: dict[dt.date, DayWritten] = field(default_factory=dict)

    def add_day(self, day: dt.date, rows: int, api_calls: int) -> None:
        """One open day written: its own figures, and the totals."""
        self.by_day[day] = DayWritten(rows, api_calls)
        self.rows += rows
        self.api_calls += api_calls
        self.trade_dates.append(day)

    def day_figures(self, day: dt.date) -> dict:
        """What the page of ``day``'s partition shows: that day's rows and API calls (not
        the totals of a ranged run), and whether the market was open."""
        if day in self.closed_dates:
            return {"rows": 0, "api_calls": 0, "market": "closed"}
        if day in self.resumed_dates:
            # Written by an earlier attempt whose materialization carries its figures.
            return {"api_calls": 0, "market": "open", "written_by": "an earlier attempt"}
        written = self.by_day.get(day, DayWritten(rows=0, api_calls=0))
        return {"rows": written.rows, "api_calls": written.api_calls, "market": "open"}


def to_warehouse_frame(api_name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Turn a tushare-format frame into warehouse form: API_FIELDS columns, dates as date,
    integer columns (as declared) as int."""
    expected = list(API_FIELDS[api_name])
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise ValueError(f"{api_name} reply lacks columns {missing}; got {list(frame.columns)}")
    out = frame.loc[:, expected].copy()
    for column in DATE_COLUMNS.intersection(expected):
        parsed = pd.to_datetime(out[column], format="%Y%m%d", errors="coerce")
        bad = out[column].notna() & parsed.isna()
        if bad.any():
            first_bad = out.loc[bad, column].iloc[0]
            raise ValueError(f"{api_name}.{column} {first_bad!r} is not a date in YYYYMMDD form")
        out[column] = parsed.dt.date.astype(object).where(parsed.notna(), None)
    for column in DATASETS[api_name].columns:
        if column.sql_type in (SqlType.SMALLINT, SqlType.INTEGER):
            out[column.name] = pd.to_numeric(out[column.name]).astype(int)
    return out


def sync_stock_basic(source, warehouse) -> SyncResult:
    """Every stock ever listed (L, D and P), so history has no survivorship bias."""
    frames = [source.query("stock_basic", list_status=status) for status in LIST_STATUSES]
    stocks = to_warehouse_frame("stock_basic", pd.concat(frames, ignore_index=True))
    rows = warehouse.upsert("stock_basic", stocks)
    return SyncResult(table="stock_basic", rows=rows, api_calls=len(frames))


def sync_trade_cal(
    source,
    warehouse,
    start_date: dt.date,
    end_date: dt.date,
    exchanges: Sequence[str] = CALENDAR_EXCHANGES,
) -> SyncResult:
    """The exchanges' calendars over [start_date, end_date]."""
    check_date_range(start_date, end_date)
    frames = [
        source.query(
            "trade_cal",
            exchange=exchange,
            start_date=to_tushare_date(start_date),
            end_date=to_tushare_date(end_date),
        )
        for exchange in exchanges
    ]
    calendar = to_warehouse_frame("trade_cal", pd.concat(frames, ignore_index=True))
    rows = warehouse.upsert("trade_cal", calendar)
    return SyncResult(table="trade_cal", rows=rows, api_calls=len(frames))


def check_date_range(start_date: dt.date, end_date: dt.date) -> None:
    if start_date > end_date:
        raise ValueError(f"start_date {start_date:%Y%m%d} is after end_date {end_date:%Y%m%d}")


def open_days(warehouse, start_date: dt.date, end_date: dt.date) -> dict[dt.date, bool]:
    """Open/closed per calendar day from the synced calendar; a day it lacks is an error."""
    check_date_range(start_date, end_date)
    calendar = warehouse.read_frame(
        "SELECT cal_date, is_open FROM trade_cal"
        " WHERE exchange = :exchange AND cal_date BETWEEN :start AND :end",
        {"exchange": REFERENCE_EXCHANGE, "start": start_date, "end": end_date},
    )
    known = dict(zip(calendar["cal_date"], calendar["is_open"].astype(int) == 1, strict=True))
    wanted = pd.date_range(start_date, end_date, freq="D").date
    unknown = [day for day in wanted if day not in known]
    if unknown:
        raise ValueError(
            f"trade_cal has no {REFERENCE_EXCHANGE} row for {unknown[0]:%Y-%m-%d}"
            f" ({len(unknown)} day(s) in {start_date:%Y-%m-%d}..{end_date:%Y-%m-%d}):"
            " sync the trading calendar over that range first"
        )
    return {day: known[day] for day in wanted}


# Shapes of a trading-day sync's calls (see plan_calls).
PER_DAY = "per_day"
CODE_LISTS = "code_lists"
# The most pages a code-list call may need, as estimated: its reply is held in memory
# (50 pages of 6,000 rows is about 60 days of the whole market), and each window wastes at
# most its last page's empty part, so 50 keeps the waste near 2% of the calls.
WINDOW_PAGES = 50


@dataclass(frozen=True)
class CallPlan:
    """How a trading-day sync asks for its open days: ``windows`` in order, each one call
    (plus its pages): one day with ``trade_date`` (PER_DAY), or the codes listed during the
    window over its first..last day (CODE_LISTS). ``calls`` counts the pages when every
    listed stock has a row every day; a day's rows never exceed its listed stocks, so the
    sync makes at most that many calls."""

    shape: str
    windows: tuple[tuple[dt.date, ...], ...]
    calls: int


def pages_for(rows: int, row_limit: int) -> int:
    """Calls the source makes for a reply of ``rows`` rows: it pages while a page is full,
    so an exact multiple of the row limit costs one more, empty, page."""
    return rows // row_limit + 1


def plan_calls(
    days: Sequence[dt.date],
    listed: Sequence[int],
    row_limit: int,
    window_pages: int = WINDOW_PAGES,
    shape: str | None = None,
) -> CallPlan:
    """The shape that needs fewer calls for ``days`` (open, in order) with ``listed[i]``
    stocks listed on ``days[i]``, or the plan of ``shape`` if given; a tie keeps one call
    per day (less held in memory).

    Per day a day costs ``pages_for(listed)`` calls: the floor's ceil(rows / row_limit)
    only when days are full pages. Code lists fill pages across days: consecutive days go
    in one window while its rows fit ``window_pages`` pages, and each window costs
    ``pages_for`` of its rows. A range where no stock is listed stays per day (a code
    list cannot be empty).
    """
    if shape not in (None, PER_DAY, CODE_LISTS):
        raise ValueError(f"shape {shape!r} is not None, {PER_DAY!r} or {CODE_LISTS!r}")
    if len(days) != len(listed):
        raise ValueError(f"days has {len(days)} entries but listed has {len(listed)}")
    if row_limit < 1 or window_pages < 1:
        raise ValueError(f"row_limit {row_limit!r} and window_pages {window_pages!r} must be >= 1")
    per_day = CallPlan(
        PER_DAY,
        tuple((day,) for day in days),
        sum(pages_for(count, row_limit) for count in listed),
    )
    windows: list[tuple[dt.date, ...]] = []
    window_rows: list[int] = []
    for day, count in zip(days, listed, strict=True):
        if windows and window_rows[-1] + count <= window_pages * row_limit:
            windows[-1] += (day,)
            window_rows[-1] += count
        else:
            windows.append((day,))
            window_rows.append(count)
    code_lists = CallPlan(
        CODE_LISTS, tuple(windows), sum(pages_for(rows, row_limit) for rows in window_rows)
    )
    if shape is not None:
        return per_day if shape == PER_DAY else code_lists
    if not any(listed) or code_lists.calls >= per_day.calls:
        return per_day
    return code_lists


def sync_trading_days(
    source,
    warehouse,
    api_name: str,
    trade_dates: Iterable[dt.date],
    progress: ProgressCallback | None = None,
    written_through: dt.date | None = None,
    *,
    row_limit: int | None = None,
    shape: str | None = None,
) -> SyncResult:
    """The open days among ``trade_dates``, each replaced atomically; closed days cost no
    call. ``plan_calls`` picks the calls' shape for the days still to write and
    ``row_limit`` (the source's rows per call; default ``API_ROW_LIMITS``) unless ``shape``
    names one.

    Each day is its own transaction, so a failure on day k leaves days before it written
    and day k exactly as it was; a day not published yet is such a failure. ``progress``
    hears of each day written (sync/progress.py); open days up to ``written_through``, which
    an earlier attempt wrote, are not fetched again.
    """
    if api_name not in TRADING_DAY_APIS:
        raise ValueError(f"api_name {api_name!r} is not a trading-day API {TRADING_DAY_APIS}")
    days = sorted(set(trade_dates))
    result = SyncResult(table=api_name)
    if not days:
        return result
    is_open = open_days(warehouse, days[0], days[-1])
    result.closed_dates = [day for day in days if not is_open[day]]
    counter = DayCounter(api_name, [day for day in days if is_open[day]], progress, written_through)
    result.resumed_dates = list(counter.resumed)
    result.trade_dates = list(counter.resumed)
    stocks = listing_spans(warehouse)
    listed = dict(zip(counter.pending, listed_counts(stocks, counter.pending), strict=True))
    plan = plan_calls(
        counter.pending,
        list(listed.values()),
        row_limit or API_ROW_LIMITS.get(api_name, DEFAULT_ROW_LIMIT),
        shape=shape,
    )

    def fetch(window: tuple[dt.date, ...]) -> pd.DataFrame:
        return source.query(api_name, **window_params(plan.shape, stocks, window))

    for window, reply in fetched_ahead(fetch, plan.windows):
        # One call serves the window's days: a day's figures count it on the first day.
        calls = 1
        for day, frame in split_by_day(api_name, to_warehouse_frame(api_name, reply), window):
            rows = store_day(warehouse, api_name, day, frame, listed[day])
            result.add_day(day, rows, calls)
            counter.written(day, rows)
            calls = 0
    return result


def window_params(shape: str, stocks: pd.DataFrame, window: Sequence[dt.date]) -> dict:
    """The query params of one planned call: the day (PER_DAY), or the codes of ``stocks``
    (``listing_spans``) listed during the window over its first..last day (CODE_LISTS)."""
    if shape == PER_DAY:
        return {"trade_date": to_tushare_date(window[0])}
    codes = stocks.loc[listed_during(stocks, window[0], window[-1]), "ts_code"]
    return {
        "ts_code": ",".join(sorted(codes)),
        "start_date": to_tushare_date(window[0]),
        "end_date": to_tushare_date(window[-1]),
    }


def store_day(warehouse, api_name: str, day: dt.date, frame: pd.DataFrame, listed: int) -> int:
    """One open day's rows: refused if tushare has not published the day (nothing of it is
    written), else the day's partition replaced by them. Returns the rows written."""
    check_published(api_name, frame, day, listed)
    return warehouse.replace_partition(api_name, frame, day)


def split_by_day(
    api_name: str, frame: pd.DataFrame, days: Sequence[dt.date]
) -> Iterator[tuple[dt.date, pd.DataFrame]]:
    """``(day, its rows)`` for every day asked, in order (a day with no rows gets an empty
    frame, which the publication check refuses); a row of a day not asked is an error."""
    by_day = dict(iter(frame.groupby("trade_date", sort=False)))
    stray = sorted(set(by_day) - set(days))
    if stray:
        raise ValueError(
            f"{api_name} reply has rows for trade_date {stray[0]:%Y-%m-%d}, not one of the"
            f" {len(days)} day(s) asked ({days[0]:%Y-%m-%d}..{days[-1]:%Y-%m-%d})"
        )
    for day in days:
        rows = by_day.get(day)
        yield day, (frame.iloc[:0] if rows is None else rows.reset_index(drop=True))


def fetched_ahead(fetch: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[T, R]]:
    """``(item, fetch(item))`` in order, fetching the next item while the caller handles one.

    A reply mostly waits on the network (tushare's server) while a write mostly waits on
    the database, so overlapping the two takes most of the fetch time off a many-day sync.
    One fetch at a time, as before, so the rate limit and the order of calls are unchanged;
    a fetch that failed raises here when its item's turn comes, after the items before it
    were handled. If the caller stops early, at most the one fetch in flight is wasted.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetch-ahead")
    try:
        next_reply = pool.submit(fetch, items[0]) if items else None
        for position, item in enumerate(items):
            reply = next_reply
            if position + 1 < len(items):
                next_reply = pool.submit(fetch, items[position + 1])
            yield item, reply.result()
    finally:
        # A caller that stopped early (its write failed) raises now, not after the fetch in
        # flight, which may be waiting its turn in the rate limit.
        pool.shutdown(wait=False, cancel_futures=True)


def sync_stocks_over_range(
    source,
    warehouse,
    api_name: str,
    ts_codes: Sequence[str],
    start_date: dt.date,
    end_date: dt.date,
    progress: ProgressCallback | None = None,
) -> SyncResult:
    """Repair a few stocks over a range: one call per API for the whole code list.

    Upserts only (other stocks' rows on those days stay), so it never removes data. The one
    call is reported to ``progress`` as one item, named by the range's last day.
    """
    if api_name not in TRADING_DAY_APIS:
        raise ValueError(f"api_name {api_name!r} is not a trading-day API {TRADING_DAY_APIS}")
    if not ts_codes:
        raise ValueError("ts_codes is empty: name at least one stock")
    check_date_range(start_date, end_date)
    counter = DayCounter(api_name, [end_date], progress)
    frame = to_warehouse_frame(
        api_name,
        source.query(
            api_name,
            ts_code=",".join(ts_codes),
            start_date=to_tushare_date(start_date),
            end_date=to_tushare_date(end_date),
        ),
    )
    rows = warehouse.upsert(api_name, frame)
    counter.written(end_date, rows)
    written = sorted(set(frame["trade_date"]))
    return SyncResult(table=api_name, rows=rows, api_calls=1, trade_dates=written)


def listing_spans(warehouse) -> pd.DataFrame:
    """Every stock's ts_code, list_date and delist_date from stock_basic (``spans_of``)."""
    return spans_of(warehouse.read_frame("SELECT ts_code, list_date, delist_date FROM stock_basic"))


def spans_of(stock_basic: pd.DataFrame) -> pd.DataFrame:
    """ts_code, list_date and delist_date of a stock_basic frame in warehouse form, the
    dates as datetime64 (NaT if none)."""
    stocks = stock_basic.loc[:, ["ts_code", "list_date", "delist_date"]].copy()
    for column in ("list_date", "delist_date"):
        stocks[column] = pd.to_datetime(stocks[column])
    return stocks


def listed_counts(stocks: pd.DataFrame, days: Sequence[dt.date]) -> list[int]:
    """How many of ``stocks`` are listed on each of ``days``."""
    return [int(listed_on(stocks, day).sum()) for day in days]


def listed_on(stocks: pd.DataFrame, day: dt.date) -> pd.Series:
    """Which of ``stocks`` (``listing_spans``) are listed on ``day``: listed on or before
    it, not yet delisted; a stock without a list_date never is."""
    return listed_during(stocks, day, day)


def listed_during(stocks: pd.DataFrame, first: dt.date, last: dt.date) -> pd.Series:
    """Which of ``stocks`` are listed on some day of ``first``..``last``."""
    listed, delisted = stocks["list_date"], stocks["delist_date"]
    return (listed <= pd.Timestamp(last)) & (delisted.isna() | (delisted > pd.Timestamp(first)))


def listed_stock_count(warehouse, trade_date: dt.date) -> int:
    """Stocks listed on trade_date (listed on or before it, not yet delisted)."""
    return int(listed_on(listing_spans(warehouse), trade_date).sum())


def min_published_rows(table: str, listed: int) -> int:
    """The fewest rows an open day of ``table`` holds when ``listed`` stocks are listed:
    MIN_LISTED_SHARE of them, and never fewer than one (no stock known still means a day
    with no rows is refused)."""
    return max(1, math.ceil(MIN_LISTED_SHARE[table] * listed))


def day_is_complete(table: str, rows: int, listed: int | None) -> bool:
    """Whether a stored open day of ``table`` holds its listed stocks' rows: at least
    ``min_published_rows`` and at most the stocks listed (more means a stale stock list)."""
    return listed is not None and min_published_rows(table, listed) <= rows <= listed


def stored_day_counts(
    warehouse, table: str, start_date: dt.date, end_date: dt.date
) -> dict[dt.date, tuple[int, int]]:
    """(rows stored, stocks listed) per day of ``table`` holding rows in the range."""
    counts = warehouse.read_frame(
        f"SELECT d.trade_date, COUNT(*) AS rows_that_day,"
        f" (SELECT COUNT(*) FROM stock_basic s WHERE s.list_date <= d.trade_date"
        f"  AND (s.delist_date IS NULL OR s.delist_date > d.trade_date)) AS listed"
        f" FROM {table} d WHERE d.trade_date BETWEEN :start AND :end GROUP BY d.trade_date",
        {"start": start_date, "end": end_date},
    )
    return {
        day: (int(rows), int(listed))
        for day, rows, listed in zip(
            counts["trade_date"], counts["rows_that_day"], counts["listed"], strict=True
        )
    }


def check_published(api_name: str, frame: pd.DataFrame, day: dt.date, listed: int) -> None:
    """Refuse an open day's reply that is empty or far short of the listed stocks."""
    expected = min_published_rows(api_name, listed)
    if len(frame) >= expected:
        return
    basis = (
        f"{MIN_LISTED_SHARE[api_name]:.0%} of the {listed} stocks listed that day"
        if listed
        else "stock_basic lists no stock that day: sync stock_basic too"
    )
    raise DayNotPublishedError(
        f"{api_name} for {day:%Y-%m-%d} is not published yet: tushare replied {len(frame)}"
        f" rows, expected at least {expected} ({basis}); the stored day was left as it was"
    )


def recent_open_days(warehouse, on_or_before: dt.date, count: int) -> list[dt.date]:
    """The last ``count`` open days on or before ``on_or_before`` per the synced calendar,
    oldest first (fewer when the calendar starts later)."""
    frame = warehouse.read_frame(
        "SELECT cal_date FROM trade_cal WHERE exchange = :exchange AND is_open = 1"
        " AND cal_date <= :day ORDER BY cal_date DESC LIMIT :n",
        {"exchange": REFERENCE_EXCHANGE, "day": on_or_before, "n": count},
    )
    return sorted(frame["cal_date"])


def latest_open_day(warehouse, on_or_before: dt.date) -> dt.date:
    """The latest open day on or before ``on_or_before`` (a Saturday gives its Friday); the
    calendar must cover ``on_or_before`` itself, so a stale calendar is an error, not an
    old day."""
    open_days(warehouse, on_or_before, on_or_before)
    days = recent_open_days(warehouse, on_or_before, 1)
    if not days:
        raise ValueError(
            f"trade_cal has no open {REFERENCE_EXCHANGE} day on or before"
            f" {on_or_before:%Y-%m-%d}: sync the trading calendar over that range first"
        )
    return days[-1]
