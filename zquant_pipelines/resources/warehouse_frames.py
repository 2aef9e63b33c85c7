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
import pyarrow.compute as pc
import sqlalchemy as sa

from zquant_pipelines.constants import DATE_COLUMNS
from zquant_pipelines.resources.warehouse_changes import key_codes


def is_plain_date(value) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def to_date(value, label: str) -> dt.date:
    """One date from a datetime.date, a Timestamp or ISO text, or a ValueError naming it."""
    if is_plain_date(value):
        return value
    if value is None or (not isinstance(value, str | dt.date) and pd.isna(value)):
        raise ValueError(f"{label} is missing: give a date")
    return dt.date.fromisoformat(iso_dates(label, pd.Series([value], dtype=object))[0].as_py())


def with_date_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn ISO-text columns named like date columns (SQLite's dates) into datetime.date."""
    for column in DATE_COLUMNS.intersection(frame.columns):
        values = frame[column]
        if pd.api.types.infer_dtype(values, skipna=True) == "string":
            parsed = pd.to_datetime(values, format="%Y-%m-%d")
            frame[column] = pd.Series(parsed.dt.date, dtype=object).where(parsed.notna(), None)
    return frame


def load_type(column: sa.Column) -> pa.DataType:
    """The Arrow type of a column in load form: dates as ISO text, integers as int64."""
    if isinstance(column.type, sa.Date | sa.String):
        return pa.string()
    if isinstance(column.type, sa.Integer):
        return pa.int64()
    return pa.float64()


def prepare_rows(target: sa.Table, frame: pd.DataFrame) -> pa.Table:
    """Validate ``frame`` against the table and return it in load form.

    Load form: an Arrow table of the table's columns in order, typed by ``load_type``: dates
    as ISO text, text with '' as NULL, floats, integers; NaN and NA as NULL; one row per
    primary key.
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
    rows = pa.Table.from_arrays(
        [load_form(table, column, frame[column.name]) for column in target.columns],
        schema=pa.schema([(column.name, load_type(column)) for column in target.columns]),
    )
    keys = [column.name for column in target.primary_key]
    for key in keys:
        if rows[key].null_count:
            empty = rows[key].is_null().to_numpy(zero_copy_only=False)
            raise ValueError(
                f"{table}.{key} is a key column but is empty in {int(empty.sum())} row(s),"
                f" first at frame row {int(np.flatnonzero(empty)[0])}"
            )
    codes = key_codes([rows[key] for key in keys])
    _, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    if len(counts) < rows.num_rows:
        duplicated = counts[inverse] > 1
        position = int(np.flatnonzero(duplicated)[0])
        first = ", ".join(f"{key}={rows[key][position].as_py()!r}" for key in keys)
        raise ValueError(
            f"frame for table {table!r} has {int(duplicated.sum())} rows sharing a primary key"
            f" ({', '.join(keys)}); first duplicate: {first}"
        )
    return rows


def load_form(table: str, column: sa.Column, values: pd.Series) -> pa.Array:
    label = f"{table}.{column.name}"
    if isinstance(column.type, sa.Date):
        return iso_dates(label, values)
    if isinstance(column.type, sa.String):
        return text_values(label, values)
    numbers = float_values(label, values)
    if isinstance(column.type, sa.Integer):
        return pa.array(integer_values(label, numbers), pa.int64())
    return pa.array(numbers.to_numpy(), pa.float64(), from_pandas=True)


def reject_values(label: str, values: pd.Series, bad: pd.Series, expected: str) -> None:
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"{label} value {values.iloc[position]!r} at frame row {position} is not {expected}"
            f" ({int(bad.sum())} such value(s))"
        )


def iso_dates(label: str, values: pd.Series) -> pa.Array:
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "date":
        # datetime.date objects (warehouse form): each distinct date formatted once (a day's
        # rows share one trade_date), by Arrow in C++; code -1 (missing) takes the None.
        codes, dates = pd.factorize(values)
        iso = pa.array(dates, type=pa.date32()).cast(pa.string())
        return iso.take(pa.array(codes, mask=codes < 0))
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
    return pa.array(parsed.dt.strftime("%Y-%m-%d"), pa.string(), from_pandas=True)


def text_values(label: str, values: pd.Series) -> pa.Array:
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        # Texts and missing values only; Arrow reads each missing kind as NULL itself (no
        # separate notna pass over the objects).
        texts = pa.array(values.to_numpy(dtype=object), pa.string(), from_pandas=True)
    else:
        present = values.notna()
        reject_values(label, values, present & ~values.map(is_text), "text")
        # Masked values are not converted: a missing value of any kind is NULL.
        texts = pa.array(values.to_numpy(dtype=object), pa.string(), mask=~present.to_numpy())
    # COPY's CSV cannot tell '' from NULL; both dialects store an empty text as NULL.
    empty = pc.equal(texts, "")
    if pc.any(empty).as_py():
        texts = pc.if_else(empty, pa.scalar(None, pa.string()), texts)
    return texts


def is_text(value) -> bool:
    return isinstance(value, str)


def float_values(label: str, values: pd.Series) -> pd.Series:
    if values.dtype == np.float64:
        return values  # read only: no copy
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    parsed = pd.to_numeric(values, errors="coerce")
    reject_values(label, values, values.notna() & parsed.isna(), "a number")
    return parsed.astype("float64")


def integer_values(label: str, numbers: pd.Series) -> pd.Series:
    reject_values(label, numbers, numbers.notna() & (numbers % 1 != 0), "a whole number")
    return numbers.astype("Int64")
