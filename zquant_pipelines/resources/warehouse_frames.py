"""Frames in warehouse form: checking a frame against its table, converting dates.

``prepare_rows`` refuses a frame whose columns differ from the table's, whose key columns
are empty or repeated, or whose values do not fit a column's type, with an error naming the
table, the column and the value; it returns the rows in load form. ``to_date`` and
``with_date_objects`` turn filter values and SQLite's ISO text into ``datetime.date``.
"""

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from zquant_pipelines.constants import DATE_COLUMNS


def is_plain_date(value) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def to_date(value, label: str) -> dt.date:
    """One date from a datetime.date, a Timestamp or ISO text, or a ValueError naming it."""
    if is_plain_date(value):
        return value
    if value is None or (not isinstance(value, str | dt.date) and pd.isna(value)):
        raise ValueError(f"{label} is missing: give a date")
    return dt.date.fromisoformat(iso_dates(label, pd.Series([value], dtype=object)).iloc[0])


def with_date_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn ISO-text columns named like date columns (SQLite's dates) into datetime.date."""
    for column in DATE_COLUMNS.intersection(frame.columns):
        values = frame[column]
        if pd.api.types.infer_dtype(values, skipna=True) == "string":
            parsed = pd.to_datetime(values, format="%Y-%m-%d")
            frame[column] = pd.Series(parsed.dt.date, dtype=object).where(parsed.notna(), None)
    return frame


def prepare_rows(target: sa.Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Validate ``frame`` against the table and return it in load form.

    Load form: the table's columns in order, dates as ISO text, text with '' as NULL,
    floats, nullable integers; one row per primary key.
    """
    table = target.name
    expected = [column.name for column in target.columns]
    given = list(frame.columns)
    missing = [name for name in expected if name not in given]
    unknown = [name for name in given if name not in expected]
    repeated = sorted({name for name in given if given.count(name) > 1})
    if missing or unknown or repeated:
        problems = [
            f"{label} {names}"
            for label, names in (
                ("missing columns", missing),
                ("unknown columns", unknown),
                ("repeated columns", repeated),
            )
            if names
        ]
        raise ValueError(f"frame for table {table!r} has {'; '.join(problems)}")
    # Column by column: resetting the whole frame's index would first merge its float
    # columns into one block, a copy of the frame.
    rows = pd.DataFrame(
        {
            column.name: load_form(table, column, frame[column.name].reset_index(drop=True))
            for column in target.columns
        }
    )
    keys = [column.name for column in target.primary_key]
    for key in keys:
        empty = rows[key].isna()
        if empty.any():
            raise ValueError(
                f"{table}.{key} is a key column but is empty in {int(empty.sum())} row(s),"
                f" first at frame row {int(np.flatnonzero(empty)[0])}"
            )
    duplicated = rows.duplicated(keys, keep=False)
    if duplicated.any():
        first = ", ".join(f"{k}={v!r}" for k, v in rows.loc[duplicated, keys].iloc[0].items())
        raise ValueError(
            f"frame for table {table!r} has {int(duplicated.sum())} rows sharing a primary key"
            f" ({', '.join(keys)}); first duplicate: {first}"
        )
    return rows


def load_form(table: str, column: sa.Column, values: pd.Series) -> pd.Series:
    label = f"{table}.{column.name}"
    if isinstance(column.type, sa.Date):
        return iso_dates(label, values)
    if isinstance(column.type, sa.String):
        return text_values(label, values)
    numbers = float_values(label, values)
    if isinstance(column.type, sa.Integer):
        return integer_values(label, numbers)
    return numbers


def reject_values(label: str, values: pd.Series, bad: pd.Series, expected: str) -> None:
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"{label} value {values.iloc[position]!r} at frame row {position} is not {expected}"
            f" ({int(bad.sum())} such value(s))"
        )


def iso_dates(label: str, values: pd.Series) -> pd.Series:
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "date":
        # datetime.date objects (warehouse form): each distinct date formatted once (a day's
        # rows share one trade_date), by Arrow in C++; code -1 (missing) takes the None.
        codes, dates = pd.factorize(values)
        iso = pa.array(dates, type=pa.date32()).cast(pa.string())
        texts = np.append(iso.to_numpy(zero_copy_only=False), None)
        return pd.Series(texts[codes], index=values.index, dtype=object)
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
        reject_values(
            label,
            values,
            values.notna() & parsed.isna(),
            "a date (datetime.date, Timestamp or ISO text)",
        )
    return parsed.dt.strftime("%Y-%m-%d")


def text_values(label: str, values: pd.Series) -> pd.Series:
    present = values.notna()
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        reject_values(label, values, present & ~values.map(is_text), "text")
    # COPY's CSV cannot tell '' from NULL; both dialects store an empty text as NULL.
    return values.where(present & values.ne(""), None).astype(object)


def is_text(value) -> bool:
    return isinstance(value, str)


def float_values(label: str, values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    parsed = pd.to_numeric(values, errors="coerce")
    reject_values(label, values, values.notna() & parsed.isna(), "a number")
    return parsed.astype("float64")


def integer_values(label: str, numbers: pd.Series) -> pd.Series:
    reject_values(label, numbers, numbers.notna() & (numbers % 1 != 0), "a whole number")
    return numbers.astype("Int64")
