"""The projected bulk read ``Warehouse.read_columns`` on real SQLite and PostgreSQL (COPY
into Arrow there): the same rows, columns and values as a plain SELECT, NULLs, dates, every
float digit, a code filter, an empty range, bad arguments."""

import datetime as dt

import pandas as pd
import pytest

from zquant_pipelines.resources.warehouse_schema import TABLE_COLUMNS
from zquant_pipelines_tests.support.warehouse_rows import records

DAYS = [dt.date(1999, 12, 31), dt.date(2026, 2, 26), dt.date(2026, 2, 27)]
# Values whose decimal text must keep every digit (or whose size stresses the parser).
FLOATS = [0.1, 1 / 3, 2 / 7 * 1e-300, 1.7976931348623157e308, -0.0, 123456789.12345679, 5e-324]
COLUMNS = ["ts_code", "trade_date", "close", "pct_chg", "amount"]


def stored_daily(warehouse) -> pd.DataFrame:
    """Daily rows over DAYS: FLOATS spread over the columns, NULLs in every numeric one."""
    rows = []
    for day_index, day in enumerate(DAYS):
        for stock in range(5):
            row = {column: None for column in TABLE_COLUMNS["daily"]}
            row |= {"ts_code": f"{600000 + stock}.SH", "trade_date": day}
            for position, column in enumerate(TABLE_COLUMNS["daily"][2:]):
                slot = stock + position + day_index
                row[column] = None if slot % 4 == 3 else FLOATS[slot % len(FLOATS)]
            rows.append(row)
    frame = pd.DataFrame(rows, columns=list(TABLE_COLUMNS["daily"]))
    warehouse.upsert("daily", frame)
    return frame


def plain_select(warehouse, columns, start, end, codes=None) -> list[dict]:
    sql = f"SELECT {', '.join(columns)} FROM daily WHERE trade_date BETWEEN :start AND :end"
    params = {"start": start, "end": end}
    if codes:
        names = [f"c{i}" for i in range(len(codes))]
        sql += f" AND ts_code IN ({', '.join(':' + name for name in names)})"
        params |= dict(zip(names, codes, strict=True))
    return sorted_records(warehouse.read_frame(sql, params))


def sorted_records(frame: pd.DataFrame) -> list[dict]:
    return records(frame.sort_values(["trade_date", "ts_code"], ignore_index=True))


def test_read_columns_returns_what_a_plain_select_returns(warehouse):
    stored_daily(warehouse)

    frame = warehouse.read_columns("daily", COLUMNS, DAYS[0], DAYS[1])

    assert list(frame.columns) == COLUMNS
    got = sorted_records(frame)
    assert got == plain_select(warehouse, COLUMNS, DAYS[0], DAYS[1])
    assert {row["trade_date"] for row in got} == set(DAYS[:2])
    assert all(type(row["trade_date"]) is dt.date for row in got)
    values = [row[column] for row in got for column in COLUMNS[2:]]
    assert None in values and len(set(FLOATS) & set(values)) >= 5
    assert all(frame[column].dtype == "float64" for column in COLUMNS[2:])


def test_read_columns_keeps_to_the_codes_asked(warehouse):
    stored_daily(warehouse)
    codes = ["600001.SH", "600003.SH", "not-stored"]

    frame = warehouse.read_columns(
        "daily", ["trade_date", "ts_code", "vol"], DAYS[1], DAYS[2], codes
    )

    assert sorted_records(frame) == plain_select(
        warehouse, ["trade_date", "ts_code", "vol"], DAYS[1], DAYS[2], codes
    )
    assert sorted(set(frame["ts_code"])) == codes[:2]


def test_read_columns_of_an_empty_range_is_an_empty_frame_with_the_columns(warehouse):
    stored_daily(warehouse)

    frame = warehouse.read_columns("daily", COLUMNS, dt.date(2026, 3, 1), dt.date(2026, 3, 31))

    assert frame.empty and list(frame.columns) == COLUMNS
    assert warehouse.read_columns("daily", COLUMNS, DAYS[0], DAYS[2], []).empty


def test_read_columns_names_a_column_the_table_lacks(warehouse):
    with pytest.raises(ValueError, match=r"table 'daily' has no columns \['turnover_rate'\]"):
        warehouse.read_columns("daily", ["ts_code", "turnover_rate"], DAYS[0], DAYS[1])
    with pytest.raises(ValueError, match="read_columns of table 'daily': name at least one"):
        warehouse.read_columns("daily", [], DAYS[0], DAYS[1])
    with pytest.raises(ValueError, match="unknown warehouse table 'dayly'"):
        warehouse.read_columns("dayly", ["ts_code"], DAYS[0], DAYS[1])
