"""A warehouse for the freshness tests: a trading calendar with the holidays a test names,
a few listed stocks, and complete days of the trading-day tables stored on demand."""

import datetime as dt

import pandas as pd

from zquant_pipelines.constants import API_FIELDS, CALENDAR_EXCHANGES, FRESHNESS_DATASETS
from zquant_pipelines.dates import market_today
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.resources.warehouse_schema import TABLE_COLUMNS

STOCKS = 10
TEXT_COLUMNS = {"ts_code", "symbol", "name", "area", "industry", "market", "exchange", "is_hs"}


def calendar_frame(first: dt.date, last: dt.date, holidays: set[dt.date]) -> pd.DataFrame:
    """trade_cal rows of both exchanges: weekdays open except ``holidays``."""
    days = pd.date_range(first, last, freq="D").date
    is_open = [int(day.weekday() < 5 and day not in holidays) for day in days]
    rows = []
    for exchange in CALENDAR_EXCHANGES:
        previous = None
        for day, open_flag in zip(days, is_open, strict=True):
            rows.append((exchange, day, open_flag, previous))
            previous = day if open_flag else previous
    return pd.DataFrame(rows, columns=list(API_FIELDS["trade_cal"]))


def stock_frame() -> pd.DataFrame:
    frame = pd.DataFrame({column: "x" for column in TABLE_COLUMNS["stock_basic"]}, index=[0])
    frame = pd.concat([frame] * STOCKS, ignore_index=True)
    frame["ts_code"] = [f"{600000 + stock}.SH" for stock in range(STOCKS)]
    frame["list_status"] = "L"
    frame["list_date"] = dt.date(2000, 1, 4)
    frame["delist_date"] = None
    return frame


def day_frame(table: str, day: dt.date) -> pd.DataFrame:
    """A complete day of ``table``: a row per listed stock."""
    columns = TABLE_COLUMNS[table]
    frame = pd.DataFrame({c: 1.0 for c in columns if c not in TEXT_COLUMNS}, index=range(STOCKS))
    frame["ts_code"] = [f"{600000 + stock}.SH" for stock in range(STOCKS)]
    frame["trade_date"] = day
    return frame[list(columns)]


def freshness_warehouse(
    url: str, first: dt.date, last: dt.date, holidays: set[dt.date] = frozenset()
) -> Warehouse:
    warehouse = Warehouse(url=url)
    warehouse.ensure_schema()
    warehouse.upsert("trade_cal", calendar_frame(first, last, set(holidays)))
    warehouse.upsert("stock_basic", stock_frame())
    return warehouse


def weekdays_up_to(last: dt.date, count: int) -> list[dt.date]:
    """The ``count`` weekdays up to ``last``, oldest first (a calendar with no holiday)."""
    days, day = [], last
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= dt.timedelta(days=1)
    return sorted(days)


def today_world(url: str, late: tuple[str, ...]) -> tuple[Warehouse, dt.date, dt.date]:
    """A warehouse whose calendar (weekdays open) reaches past today: every dataset stored
    over the four weekdays before the latest one up to today, and on that latest one too
    but the ``late`` datasets; the warehouse, the weekday before and the latest."""
    today = market_today()
    warehouse = freshness_warehouse(
        url, today - dt.timedelta(days=40), today + dt.timedelta(days=10)
    )
    *earlier, latest = weekdays_up_to(today, 5)
    store_days(warehouse, FRESHNESS_DATASETS, earlier)
    store_days(warehouse, [t for t in FRESHNESS_DATASETS if t not in late], [latest])
    return warehouse, earlier[-1], latest


def store_days(warehouse: Warehouse, tables, days) -> None:
    for table in tables:
        for day in days:
            warehouse.replace_partition(table, day_frame(table, day), day)
