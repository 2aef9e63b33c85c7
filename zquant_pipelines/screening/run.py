"""Screens run over a trading day of the warehouse: the stock_screen table.

Plain functions (no Dagster): the asset, the ``batch_stock_filter`` action and ``zquant
screen`` all call them. A day's input is one row per stock traded that day (``daily``), with
that day's daily_basic and factor_daily rows and the stock's stock_basic row joined on, in
columns named ``table.column``. Each screen keeps the rows where every condition holds.
"""

import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from zquant_pipelines.resources.warehouse_schema import SCREEN_COLUMNS, SCREEN_TABLE
from zquant_pipelines.screening.expressions import (
    DATE,
    NUMBER,
    ColumnCatalog,
    ConditionError,
    evaluate,
)
from zquant_pipelines.screening.screens import SCREEN_INPUT_TABLES, Screen, screen_catalog
from zquant_pipelines.sync.market import SyncResult, latest_open_day, open_days

# The table whose rows are the day's stocks: those that traded.
BASE_TABLE = "daily"


class InputsMissingError(ValueError):
    """A table a screen reads holds no row of the day: screening it would select nothing."""


def read_screen_frame(warehouse, day: dt.date, tables: Iterable[str] = SCREEN_INPUT_TABLES):
    """The day's stocks with the columns of ``tables`` as ``table.column`` (numbers as
    floats, dates as datetime64). InputsMissingError names a table with no row that day."""
    wanted = [BASE_TABLE, *(table for table in tables if table != BASE_TABLE)]
    merged = None
    for table in wanted:
        where = None if table == "stock_basic" else {"trade_date": day}
        frame = warehouse.read_table(table, where=where)
        if frame.empty:
            hint = (
                "sync the stock list first"
                if table == "stock_basic"
                else f"materialize {table} for that day first"
            )
            raise InputsMissingError(f"{table} holds no row for {day:%Y-%m-%d}: {hint}")
        frame = frame.add_prefix(f"{table}.")
        if merged is None:
            merged = frame
            continue
        merged = merged.merge(
            frame.drop(columns=[f"{table}.trade_date"], errors="ignore"),
            how="left",
            left_on=f"{BASE_TABLE}.ts_code",
            right_on=f"{table}.ts_code",
        )
    # The keys mean the same in every table: the base's values, also where a join missed.
    for table in wanted:
        merged[f"{table}.ts_code"] = merged[f"{BASE_TABLE}.ts_code"]
        if table != "stock_basic":
            merged[f"{table}.trade_date"] = merged[f"{BASE_TABLE}.trade_date"]
    return typed_frame(merged, screen_catalog())


def typed_frame(frame: pd.DataFrame, catalog: ColumnCatalog) -> pd.DataFrame:
    """Columns in the form the evaluator compares: numbers float64 (an all-NULL column reads
    back as objects), dates datetime64."""
    for column in frame.columns:
        kind = catalog.kinds.get(column)
        if kind == NUMBER:
            frame[column] = pd.to_numeric(frame[column]).astype("float64")
        elif kind == DATE:
            frame[column] = pd.to_datetime(frame[column])
    return frame


def display_name(qualified: str, catalog: ColumnCatalog) -> str:
    """A column as a condition writes it: bare where that resolves to it."""
    bare = qualified.split(".", 1)[1]
    try:
        return bare if catalog.resolve(bare) == qualified else qualified
    except ConditionError:
        return qualified


def json_value(value):
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.date().isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return None if value is None or value is pd.NaT else value


def screen_frame(frame: pd.DataFrame, screens: Sequence[Screen], day: dt.date) -> pd.DataFrame:
    """The stock_screen rows of ``day``: per screen the stocks passing every condition, with
    the values of the columns its conditions name (JSON), by screen then ts_code."""
    catalog = screen_catalog()
    parts = []
    for screen in screens:
        passed = pd.Series(True, index=frame.index)
        for tree in screen.trees:
            passed &= evaluate(tree, frame)
        chosen = frame.loc[passed, [f"{BASE_TABLE}.ts_code", *screen.columns]]
        names = [display_name(column, catalog) for column in screen.columns]
        values = [
            json.dumps(
                {name: json_value(value) for name, value in zip(names, row, strict=True)},
                ensure_ascii=False,
                allow_nan=False,
            )
            for row in chosen[screen.columns].itertuples(index=False, name=None)
        ]
        parts.append(
            pd.DataFrame(
                {
                    "trade_date": day,
                    "screen": screen.name,
                    "ts_code": chosen[f"{BASE_TABLE}.ts_code"].to_numpy(),
                    "screen_values": values,
                },
                columns=list(SCREEN_COLUMNS),
            ).sort_values("ts_code")
        )
    if not parts:
        return pd.DataFrame(columns=list(SCREEN_COLUMNS))
    return pd.concat(parts, ignore_index=True)


def input_tables(screens: Sequence[Screen]) -> list[str]:
    """The input tables the screens read (the base table always)."""
    read = {column.split(".")[0] for screen in screens for column in screen.columns}
    return [table for table in SCREEN_INPUT_TABLES if table in read or table == BASE_TABLE]


def screen_day(warehouse, screens: Sequence[Screen], day: dt.date) -> pd.DataFrame:
    """``day``'s stock_screen rows, computed from the warehouse (nothing written)."""
    return screen_frame(read_screen_frame(warehouse, day, input_tables(screens)), screens, day)


def screen_days(warehouse, screens: Sequence[Screen], days: Iterable[dt.date]) -> SyncResult:
    """Every screen over each open day of ``days``, each day replaced in stock_screen (a
    screen no longer in the file loses its rows of the days run again)."""
    days = sorted(set(days))
    result = SyncResult(table=SCREEN_TABLE)
    if not days:
        return result
    for day, is_open in open_days(warehouse, days[0], days[-1]).items():
        if day not in days:
            continue
        if not is_open:
            result.closed_dates.append(day)
            continue
        rows = screen_day(warehouse, screens, day)
        # A day where no stock passes any screen is a genuine answer, not a missing one.
        written = warehouse.replace_partition(SCREEN_TABLE, rows, day, empty_day_is_genuine=True)
        result.add_day(day, written, api_calls=0)
    return result


LISTED_FIRST = ("ts_code", "name")


class NotATradingDayError(ValueError):
    """A day the exchanges were closed: it has no list."""


@dataclass(frozen=True)
class ScreenList:
    """One screen's stocks on one day, as `zquant screen` prints them."""

    screen: str
    trade_date: dt.date
    columns: list[str]  # the values that decided, as the conditions name them
    stocks: list[dict]  # ts_code, name, then each column's value

    def to_dict(self) -> dict:
        return {
            "screen": self.screen,
            "trade_date": self.trade_date.isoformat(),
            "columns": self.columns,
            "stocks": self.stocks,
        }


def screen_list(warehouse, screen: Screen, day: dt.date | None, today: dt.date) -> ScreenList:
    """``screen``'s stocks on ``day`` (default: the latest trading day up to ``today``),
    computed from the warehouse as the stock_screen asset computes them."""
    if day is None:
        day = latest_open_day(warehouse, today)
    elif not open_days(warehouse, day, day)[day]:
        raise NotATradingDayError(
            f"{day:%Y-%m-%d} is not a trading day (the exchanges were closed)"
        )
    rows = screen_day(warehouse, [screen], day)
    names = warehouse.read_frame("SELECT ts_code, name FROM stock_basic")
    stock_names = dict(zip(names["ts_code"], names["name"], strict=True))
    stocks = [
        {"ts_code": ts_code, "name": stock_names.get(ts_code), **json.loads(values)}
        for ts_code, values in zip(rows["ts_code"], rows["screen_values"], strict=True)
    ]
    catalog = screen_catalog()
    shown = [display_name(column, catalog) for column in screen.columns]
    # Every line starts with the stock's code and name; a condition on them adds nothing.
    columns = [name for name in shown if name not in LISTED_FIRST]
    return ScreenList(screen.name, day, columns, stocks)
