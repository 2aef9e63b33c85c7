"""Table statistics (zquant's statistics_table_data): per trading-day table and open day,
its rows, distinct stocks, NULLs per column and coverage of the listed stocks.

Plain functions (no Dagster). The tables covered are every warehouse table keyed by
(ts_code, trade_date): the market tables and factor_daily, and any such table added later.
Each table costs one aggregate query over the days asked for.
"""

import datetime as dt
import json
from collections.abc import Iterable

import pandas as pd

from zquant_pipelines.constants import TABLE_KEYS
from zquant_pipelines.resources.warehouse_schema import (
    STATISTICS_COLUMNS,
    STATISTICS_TABLE,
    TABLES,
)
from zquant_pipelines.sync.market import SyncResult, listed_stock_count, open_days

STOCK_DAY_KEY = ("ts_code", "trade_date")


def statistics_tables() -> list[str]:
    return [table for table, keys in TABLE_KEYS.items() if keys == STOCK_DAY_KEY]


def value_columns(table: str) -> list[str]:
    return [column.name for column in TABLES[table].columns if not column.primary_key]


def table_day_counts(warehouse, table: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Per day of [start, end] holding rows: rows, distinct stocks, NULLs per value column
    (columns ``null_0``, ``null_1``, ... in ``value_columns`` order)."""
    nulls = "".join(
        f', COUNT(*) - COUNT("{column}") AS null_{position}'
        for position, column in enumerate(value_columns(table))
    )
    return warehouse.read_frame(
        f"SELECT trade_date, COUNT(*) AS row_count, COUNT(DISTINCT ts_code) AS distinct_stocks"
        f"{nulls} FROM {table} WHERE trade_date BETWEEN :start AND :end GROUP BY trade_date",
        {"start": start, "end": end},
    )


def statistics_frame(warehouse, days: list[dt.date]) -> pd.DataFrame:
    """The table_statistics rows of ``days`` (open days): one per table and day; a day a
    table has no row of counts zero rows."""
    listed = {day: listed_stock_count(warehouse, day) for day in days}
    rows = []
    for table in statistics_tables():
        columns = value_columns(table)
        counts = table_day_counts(warehouse, table, days[0], days[-1]).set_index("trade_date")
        for day in days:
            found = day in counts.index
            null_counts = {
                column: int(counts.at[day, f"null_{position}"]) if found else 0
                for position, column in enumerate(columns)
            }
            stocks = int(counts.at[day, "distinct_stocks"]) if found else 0
            rows.append(
                {
                    "trade_date": day,
                    "table_name": table,
                    "row_count": int(counts.at[day, "row_count"]) if found else 0,
                    "distinct_stocks": stocks,
                    "listed_stocks": listed[day],
                    "coverage": stocks / listed[day] if listed[day] else None,
                    "null_cells": sum(null_counts.values()),
                    "null_counts": json.dumps(null_counts),
                }
            )
    return pd.DataFrame(rows, columns=list(STATISTICS_COLUMNS))


def compute_table_statistics(warehouse, days: Iterable[dt.date]) -> tuple[SyncResult, pd.DataFrame]:
    """Statistics of each open day of ``days`` into table_statistics, each day replaced;
    returns what was written and the rows."""
    days = sorted(set(days))
    result = SyncResult(table=STATISTICS_TABLE)
    frame = pd.DataFrame(columns=list(STATISTICS_COLUMNS))
    if not days:
        return result, frame
    is_open = open_days(warehouse, days[0], days[-1])
    targets = [day for day in days if is_open[day]]
    result.closed_dates = [day for day in days if not is_open[day]]
    if not targets:
        return result, frame
    frame = statistics_frame(warehouse, targets)
    for day, rows in frame.groupby("trade_date", sort=True):
        result.add_day(day, warehouse.replace_partition(STATISTICS_TABLE, rows, day), api_calls=0)
    return result, frame
