"""Warehouse rows as tests compare them: a table's contents as plain dicts (None for NULL),
and a ``daily`` frame of made-up bars for a day; shared by the warehouse tests and the lock
tests (resources/test_warehouse.py, resources/test_warehouse_locks.py)."""

import datetime as dt

import pandas as pd

from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.resources.warehouse_schema import TABLE_COLUMNS


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts with None for every NULL, for exact comparison."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def contents(warehouse: Warehouse, table: str) -> list[dict]:
    return records(warehouse.read_table(table))


def daily_frame(day: dt.date, stocks: range, close: float = 10.0) -> pd.DataFrame:
    frame = pd.DataFrame(
        {column: close for column in TABLE_COLUMNS["daily"]},
        index=range(len(stocks)),
    )
    frame["ts_code"] = [f"{600000 + stock}.SH" for stock in stocks]
    frame["trade_date"] = day
    frame["close"] = [close + stock for stock in stocks]
    return frame
