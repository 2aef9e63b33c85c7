"""Market-data syncs: tushare API -> warehouse table, one implementation per API.

Plain functions (no Dagster): assets and task actions both call them. A source is anything
with ``query(api_name, **params) -> DataFrame`` in tushare's wire format (the tushare client
or the sample market); a warehouse is a ``Warehouse``. Trading-day syncs make one API call
per open day (the source pages past the row limit) and none on a closed day, as tushare
recommends, instead of zquant's one call per stock. A reply with no rows, or far fewer than
the stocks listed that day (MIN_LISTED_SHARE), is a day tushare has not published yet: it is
refused and the stored day stays as it was.
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
    CALENDAR_EXCHANGES,
    DATE_COLUMNS,
    LIST_STATUSES,
    MIN_LISTED_SHARE,
    TRADING_DAY_APIS,
)
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
    """Turn a tushare-format frame into warehouse form: API_FIELDS columns, dates as date."""
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
    if api_name == "trade_cal":
        out["is_open"] = pd.to_numeric(out["is_open"]).astype(int)
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


def sync_trading_days(
    source,
    warehouse,
    api_name: str,
    trade_dates: Iterable[dt.date],
    progress: ProgressCallback | None = None,
    written_through: dt.date | None = None,
) -> SyncResult:
    """One API call per open day; each day replaced atomically; closed days cost no call.

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

    def fetch(day: dt.date) -> pd.DataFrame:
        return source.query(api_name, trade_date=to_tushare_date(day))

    for day, reply in fetched_ahead(fetch, counter.pending):
        frame = to_warehouse_frame(api_name, reply)
        check_published(api_name, frame, day, listed_stock_count(warehouse, day))
        rows = warehouse.replace_partition(api_name, frame, day)
        result.add_day(day, rows, api_calls=1)
        counter.written(day, rows)
    return result


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


def listed_stock_count(warehouse, trade_date: dt.date) -> int:
    """Stocks listed on trade_date (listed on or before it, not yet delisted)."""
    frame = warehouse.read_frame(
        "SELECT COUNT(*) AS n FROM stock_basic WHERE list_date <= :day"
        " AND (delist_date IS NULL OR delist_date > :day)",
        {"day": trade_date},
    )
    return int(frame["n"].iloc[0])


def min_published_rows(table: str, listed: int) -> int:
    """The fewest rows an open day of ``table`` holds when ``listed`` stocks are listed:
    MIN_LISTED_SHARE of them, and never fewer than one (no stock known still means a day
    with no rows is refused)."""
    return max(1, math.ceil(MIN_LISTED_SHARE[table] * listed))


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
