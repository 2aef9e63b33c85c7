"""The market panel in trading-day form: each stock's own trading days, as numpy matrices.

A stock's trading days are the days it has a ``daily`` row; a suspended day has none and is
simply not in its sequence. ``DailyPanel`` indexes the rows of a long ``daily`` frame by
stock and by the stock's own trading-day ordinal, so a window of "the last N trading days"
is N adjacent cells of a (stock x ordinal) matrix and every factor is a numpy operation over
the whole market at once. Other tables (``adj_factor``, ``daily_basic``) are aligned onto the
``daily`` rows by (ts_code, trade_date); their rows on days without a ``daily`` row are
ignored.

Also here: the rolling-window primitives on such matrices, with the one rule every factor
follows: a window that is not full (fewer than N rows, or a missing value in it) is NaN.
"""

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

KEY_COLUMNS = ("ts_code", "trade_date")


def as_date(value, field: str) -> dt.date:
    """``value`` as a ``datetime.date``: a date, a datetime/Timestamp, datetime64 or ISO text."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, np.datetime64) and not np.isnat(value):
        return pd.Timestamp(value).date()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{field} {value!r} is not a date (datetime.date or YYYY-MM-DD)")


def require_columns(frame: pd.DataFrame, table: str, columns: Iterable[str]) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{table} lacks columns {missing}; it has {list(frame.columns)}")


def float_column(frame: pd.DataFrame, table: str, column: str) -> np.ndarray:
    """A numeric column as float64 (None becomes NaN), naming the first value that is not."""
    try:
        return np.asarray(frame[column], dtype=np.float64)
    except (TypeError, ValueError):
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = numbers.isna() & frame[column].notna()
        raise ValueError(
            f"{table}.{column} holds a value that is not a number: "
            f"{frame[column][bad].iloc[0]!r} (ts_code {frame['ts_code'][bad].iloc[0]!r})"
        ) from None


def key_codes(frame: pd.DataFrame, table: str) -> tuple[np.ndarray, list, np.ndarray, list]:
    """Factorized ts_code and trade_date of ``frame``, with uniques as str and date."""
    require_columns(frame, table, KEY_COLUMNS)
    stock_codes, stocks = pd.factorize(frame["ts_code"])
    date_codes, dates = pd.factorize(frame["trade_date"])
    for codes, column in ((stock_codes, "ts_code"), (date_codes, "trade_date")):
        if (codes < 0).any():
            row = frame.index[np.argmax(codes < 0)]
            raise ValueError(f"{table}.{column} is null in row {row!r}")
    bad_codes = [code for code in stocks if not isinstance(code, str)]
    if bad_codes:
        raise ValueError(f"{table}.ts_code {bad_codes[0]!r} is not a text code like 000001.SZ")
    return (
        stock_codes,
        list(stocks),
        date_codes,
        [as_date(value, f"{table}.trade_date") for value in dates],
    )


class DailyPanel:
    """The rows of a ``daily`` frame indexed by stock and by trading-day ordinal.

    ``stocks`` (sorted codes) and ``dates`` (sorted dates) are the panel's axes; for the
    i-th row of ``daily``, ``stock_ids[i]`` and ``date_ids[i]`` index them, and
    ``positions[i]`` is the row's ordinal among that stock's trading days (0 = its first
    row in the frame). Matrices from ``to_matrix`` are (stock x ordinal), NaN-padded after
    each stock's last row.
    """

    def __init__(self, daily: pd.DataFrame):
        stock_codes, stocks, date_codes, dates = key_codes(daily, "daily")
        # Sorted axes make ids comparable across panels and outputs deterministic.
        stock_order = np.argsort(np.asarray(stocks, dtype=object))
        date_order = np.argsort(np.asarray(dates, dtype=object))
        self.stocks = [stocks[i] for i in stock_order]
        self.dates = [dates[i] for i in date_order]
        if len(set(self.dates)) != len(self.dates):
            # Two spellings of one day (a date and its ISO text) would split the day in two.
            raise ValueError("daily.trade_date mixes value types that name the same day")
        self.stock_ids = np.argsort(stock_order)[stock_codes]
        self.date_ids = np.argsort(date_order)[date_codes]
        self._stock_index = pd.Index(self.stocks, dtype=object)
        self._date_index = pd.Index(self.dates, dtype=object)
        has_row = self._unique_cells(self.stock_ids, self.date_ids, daily, "daily") >= 0
        ordinals = np.cumsum(has_row, axis=1) - 1
        self.positions = ordinals[self.stock_ids, self.date_ids]
        self.n_positions = int(has_row.sum(axis=1).max()) if len(daily) else 0

    def _unique_cells(
        self, stock_ids: np.ndarray, date_ids: np.ndarray, frame: pd.DataFrame, table: str
    ) -> np.ndarray:
        """A (stock x date) matrix of row numbers in ``frame`` (-1: none); raises on duplicates."""
        cells = np.full((len(self.stocks), len(self.dates)), -1, dtype=np.int64)
        rows = np.arange(len(stock_ids))
        cells[stock_ids, date_ids] = rows
        # Of two rows on one cell only the last is kept: any other row is a duplicate.
        overwritten = cells[stock_ids, date_ids] != rows
        if overwritten.any():
            row = np.argmax(overwritten)
            raise ValueError(
                f"{table} has more than one row for ts_code {self.stocks[stock_ids[row]]!r}, "
                f"trade_date {self.dates[date_ids[row]].isoformat()}"
            )
        return cells

    def stock_ids_of(self, codes: list) -> np.ndarray:
        """Panel ids of ``codes`` (-1 for a stock without ``daily`` rows)."""
        return self._stock_index.get_indexer(pd.Index(codes, dtype=object))

    def align(self, frame: pd.DataFrame, table: str, columns: Iterable[str]) -> dict:
        """Columns of another table as float arrays aligned with the ``daily`` rows.

        A ``daily`` row without a matching (ts_code, trade_date) row in ``frame`` gets NaN;
        rows of ``frame`` for other stocks or days are ignored.
        """
        columns = list(columns)
        require_columns(frame, table, columns)
        stock_codes, stocks, date_codes, dates = key_codes(frame, table)
        stock_ids = self.stock_ids_of(stocks)[stock_codes]
        date_ids = self._date_index.get_indexer(pd.Index(dates, dtype=object))[date_codes]
        on_panel = (stock_ids >= 0) & (date_ids >= 0)
        cell_rows = self._unique_cells(stock_ids[on_panel], date_ids[on_panel], frame, table)
        source_rows = np.flatnonzero(on_panel)
        matched = cell_rows[self.stock_ids, self.date_ids]
        aligned = {}
        for column in columns:
            values = float_column(frame, table, column)[source_rows]
            row_values = np.full(len(self.stock_ids), np.nan)
            row_values[matched >= 0] = values[matched[matched >= 0]]
            aligned[column] = row_values
        return aligned

    def to_matrix(self, row_values: np.ndarray) -> np.ndarray:
        """Per-row values as a (stock x trading-day ordinal) matrix, NaN-padded."""
        matrix = np.full((len(self.stocks), self.n_positions), np.nan)
        matrix[self.stock_ids, self.positions] = row_values
        return matrix

    def rows_on(self, trade_dates: Iterable[dt.date] | None) -> np.ndarray:
        """Indices of the ``daily`` rows on ``trade_dates`` (all rows for None), by date, stock."""
        if trade_dates is None:
            selected = np.ones(len(self.stock_ids), dtype=bool)
        else:
            wanted = pd.Index({as_date(day, "trade_dates") for day in trade_dates}, dtype=object)
            selected = np.isin(self.date_ids, self._date_index.get_indexer(wanted))
        rows = np.flatnonzero(selected)
        return rows[np.lexsort((self.stock_ids[rows], self.date_ids[rows]))]


def rolling_sums(matrix: np.ndarray, windows: Iterable[int]) -> dict[int, np.ndarray]:
    """Sum of the last N cells along axis 1 for each N in ``windows``; NaN unless all N present.

    Differences of cumulative sums, shared by the windows: O(cells) whatever the window.
    Each stock's row is summed separately, so rounding stays at the scale of its own values.
    """
    missing = np.isnan(matrix)
    value_sums = _cumulative(np.where(missing, 0.0, matrix))
    gap_counts = _cumulative(missing)
    width = matrix.shape[1]
    sums = {}
    for window in windows:
        result = np.full(matrix.shape, np.nan)
        if window <= width:
            full = gap_counts[:, window:] == gap_counts[:, : width + 1 - window]
            window_sums = value_sums[:, window:] - value_sums[:, : width + 1 - window]
            result[:, window - 1 :] = np.where(full, window_sums, np.nan)
        sums[window] = result
    return sums


def _cumulative(matrix: np.ndarray) -> np.ndarray:
    """Cumulative sums along axis 1 after a leading 0 column (column k: sum of the first k)."""
    cumulative = np.zeros((matrix.shape[0], matrix.shape[1] + 1), dtype=np.result_type(matrix, 0))
    np.cumsum(matrix, axis=1, out=cumulative[:, 1:])
    return cumulative


def rolling_sum(matrix: np.ndarray, window: int) -> np.ndarray:
    """Sum of the last ``window`` cells along axis 1; NaN unless all ``window`` are present."""
    return rolling_sums(matrix, (window,))[window]


def rolling_mean(matrix: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` cells along axis 1; NaN unless all ``window`` are present."""
    return rolling_sum(matrix, window) / window


def rolling_std(matrix: np.ndarray, window: int) -> np.ndarray:
    """Sample standard deviation (ddof 1) of the last ``window`` cells; NaN unless full.

    Two passes: the window mean, then the squared deviations from it summed over the
    window's offsets. A running sum of squares would cancel badly when the mean is large
    against the spread (a run of limit-up days).
    """
    mean = rolling_mean(matrix, window)
    width = matrix.shape[1]
    squared_deviations = np.zeros(matrix.shape)
    for offset in range(min(window, width)):
        # Cell t gets (x[t - offset] - mean[t])^2; cells before the first full window are
        # NaN through ``mean``.
        squared_deviations[:, offset:] += (matrix[:, : width - offset] - mean[:, offset:]) ** 2
    return np.sqrt(squared_deviations / (window - 1))


def lag(matrix: np.ndarray, periods: int) -> np.ndarray:
    """The value ``periods`` cells earlier along axis 1 (NaN where there is none)."""
    result = np.full(matrix.shape, np.nan)
    if periods < matrix.shape[1]:
        result[:, periods:] = matrix[:, : matrix.shape[1] - periods]
    return result


def calendar_window_starts(day_numbers: np.ndarray, calendar_days: int) -> np.ndarray:
    """Per cell, the first ordinal of the stock on or after its day minus ``calendar_days``.

    ``day_numbers`` is a (stock x ordinal) matrix of each row's date as a day number (NaN
    padded), rising along each stock's row. One ``searchsorted`` over the whole market:
    each stock's days are shifted into a band of their own so the flattened keys are sorted.
    """
    n_stocks, width = day_numbers.shape
    if not day_numbers.size or np.isnan(day_numbers).all():
        return np.zeros(day_numbers.shape, dtype=np.int64)
    first = int(np.nanmin(day_numbers))
    band = int(np.nanmax(day_numbers)) - first + calendar_days + 2
    bands = np.arange(n_stocks, dtype=np.int64)[:, None] * band
    # Padding sorts after every real day of its stock and before the next stock's band.
    days = np.where(np.isnan(day_numbers), band - 1, day_numbers - first).astype(np.int64)
    keys = (days + bands).ravel()
    wanted = np.maximum(days - calendar_days, 0) + bands
    flat = np.searchsorted(keys, wanted.ravel(), side="left").reshape(day_numbers.shape)
    return flat - np.arange(n_stocks, dtype=np.int64)[:, None] * width


class RecordWindows:
    """Each cell's window of a stock's records: ordinals ``starts[t]``..t, cells marked by
    ``is_record``.

    ``available`` is the number of records in each window; ``sums(values, last)`` sums
    ``values`` over them, only the latest ``last`` records when given. Records are packed
    to the left of each stock's row once, so "the last N records" is a difference of
    cumulative sums whatever the gaps between them; the packed sums of a values matrix are
    kept for the next window (the 5..90-day counts of one flag share them).
    """

    def __init__(self, is_record: np.ndarray, starts: np.ndarray):
        self.is_record = is_record
        n_stocks, width = is_record.shape
        cells = _cumulative(is_record)
        self._offsets = (np.arange(n_stocks, dtype=np.int64) * (width + 1))[:, None]
        self._ends = cells[:, 1:] + self._offsets
        self.available = cells[:, 1:] - np.take(cells, starts + self._offsets)
        self._order = np.argsort(~is_record, axis=1, kind="stable")
        self._packed: dict[int, tuple] = {}

    def _prefix(self, values: np.ndarray) -> tuple:
        key = id(values)
        if key not in self._packed or self._packed[key][0] is not values:
            packed = np.take_along_axis(np.where(self.is_record, values, 0.0), self._order, axis=1)
            unknown = np.isnan(packed)
            unknown_counts = _cumulative(unknown).ravel() if unknown.any() else None
            value_sums = _cumulative(np.where(unknown, 0.0, packed)).ravel()
            self._packed[key] = (values, value_sums, unknown_counts)
        return self._packed[key][1:]

    def sums(self, values: np.ndarray, last: int | None = None) -> np.ndarray:
        """Sum of ``values`` over each window's records (the latest ``last`` of them); NaN
        when a record's value in it is NaN (unknown)."""
        value_sums, unknown_counts = self._prefix(values)
        taken = self.available if last is None else np.minimum(self.available, last)
        starts = self._ends - taken
        sums = np.take(value_sums, self._ends) - np.take(value_sums, starts)
        if unknown_counts is None:
            return sums
        has_unknown = np.take(unknown_counts, self._ends) != np.take(unknown_counts, starts)
        return np.where(has_unknown, np.nan, sums)
