"""Report-period syncs: tushare's financial statements, every version kept (point in time).

Plain functions (no Dagster). A period (quarter end) of one of ``income``, ``balancesheet``,
``cashflow`` and ``fina_indicator`` is fetched

- for the whole market with ``<api>_vip(period=...)`` (the source pages at the row limit),
  when the account has the permission; or
- when tushare refuses it (its message 没有访问该接口的权限: the client's
  TusharePermissionError), per stock with
  ``<api>(ts_code=..., period=...)`` for the stocks listed at the period end (stock_basic),
  through the same source and so the same shared rate budget.

Either way the same rows are stored. Rows are only ever added: the key of a table holds the
announcement dates, the report type and the update flag (datasets/financials.py), so a
restatement, or tushare flagging a version superseded (update_flag 1 -> 0), adds a row and
never replaces one; a row tushare no longer sends stays. Re-syncing the same data writes
nothing. A row whose key is stored with other values (tushare corrected its own copy of the
same announcement) is updated and counted as changed, which the revision check reports.

Point in time: a version is known from the later of its ann_date and f_ann_date (tushare's
docs and its users disagree on which of the two a restatement moves, so neither alone is
trusted); ``statements_as_of`` gives each stock's latest known version of each period on a
day, never one announced after it. ``update_flag`` is tushare's flag as of the sync, so it
says nothing about what was known on that day: do not select on it.
"""

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from zquant_pipelines.constants import ENV_REVISED_PERIODS, TUSHARE_NO_PERMISSION_TEXT
from zquant_pipelines.datasets import financials as fd
from zquant_pipelines.dates import is_quarter_end, quarter_end, to_tushare_date
from zquant_pipelines.sync.market import (
    listed_on,
    listing_spans,
    pages_for,
    to_warehouse_frame,
)

WHOLE_MARKET = "whole_market"
PER_STOCK = "per_stock"
MODES = (WHOLE_MARKET, PER_STOCK)
# Revisions: announcements for a quarter arrive over months, so the last four are re-checked
# unless ZQUANT_REVISED_PERIODS says otherwise (at most three years of quarters).
DEFAULT_RECHECKED_PERIODS = 4
MAX_RECHECKED_PERIODS = 12
# The column statements_as_of adds: the day a version became known.
KNOWN_DATE = "known_date"


@dataclass
class PeriodSynced:
    """What one sync of one period of one API did.

    ``api_calls`` counts the source's calls (pages included, a refused vip call too);
    ``added`` rows are new versions (or new flags of one), ``changed`` stored versions whose
    values tushare changed, ``unchanged`` rows already stored as sent; ``not_sent`` stored
    rows of the period the reply lacked (kept)."""

    table: str
    period: dt.date
    mode: str
    api_calls: int = 0
    rows: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    not_sent: int = 0
    stocks_asked: int = 0
    vip_refused: bool = False

    def figures(self) -> dict:
        """The figures a materialization or a log line shows."""
        return {
            "period": f"{self.period:%Y-%m-%d}",
            "mode": self.mode,
            "api_calls": self.api_calls,
            "rows_sent": self.rows,
            "rows_added": self.added,
            "rows_changed": self.changed,
            "rows_unchanged": self.unchanged,
            "rows_not_sent": self.not_sent,
            "stocks_asked": self.stocks_asked,
        }


def check_api(api_name: str) -> None:
    if api_name not in fd.REPORT_PERIOD_APIS:
        raise ValueError(
            f"api_name {api_name!r} is not a report-period API {fd.REPORT_PERIOD_APIS}"
        )


def check_period(period: dt.date) -> None:
    if not is_quarter_end(period):
        raise ValueError(
            f"period {period:%Y-%m-%d} is not a report period: give a quarter end"
            " (03-31, 06-30, 09-30 or 12-31)"
        )


def report_periods(first: dt.date, last: dt.date) -> list[dt.date]:
    """The quarter ends in [first, last], oldest first."""
    periods = []
    year, quarter = first.year, (first.month - 1) // 3
    while (period := quarter_end(year, quarter)) <= last:
        if period >= first:
            periods.append(period)
        year, quarter = (year + 1, 0) if quarter == 3 else (year, quarter + 1)
    return periods


def rechecked_periods(text: str | None = None) -> int:
    """How many recent periods a revisions run re-syncs: ``text`` or ZQUANT_REVISED_PERIODS."""
    if text is None:
        text = os.environ.get(ENV_REVISED_PERIODS) or str(DEFAULT_RECHECKED_PERIODS)
    count = int(text) if text.strip().isdigit() else 0
    if not 1 <= count <= MAX_RECHECKED_PERIODS:
        raise ValueError(
            f"{ENV_REVISED_PERIODS} {text!r} is not a whole number of report periods from 1"
            f" to {MAX_RECHECKED_PERIODS} (default {DEFAULT_RECHECKED_PERIODS})"
        )
    return count


def recent_periods(today: dt.date, count: int = DEFAULT_RECHECKED_PERIODS) -> list[dt.date]:
    """The last ``count`` quarter ends on or before ``today``, oldest first."""
    if count < 1:
        raise ValueError(f"count {count!r} must be >= 1")
    first = dt.date(today.year - (count // 4 + 1), 1, 1)
    return report_periods(first, today)[-count:]


def sync_report_period(
    source,
    warehouse,
    api_name: str,
    period: dt.date,
    *,
    mode: str | None = None,
    row_limit: int | None = None,
) -> PeriodSynced:
    """Fetch every version of ``period``'s statements of ``api_name`` and add the new ones.

    ``mode`` None tries the whole market first and falls back to per stock when tushare
    refuses the vip permission; WHOLE_MARKET never falls back, PER_STOCK never tries the vip
    endpoint. ``row_limit`` (default financial_datasets.ROW_LIMITS) only counts the calls:
    the source pages by its own.
    """
    fd.check_api(api_name)
    check_period(period)
    if mode not in (None, *MODES):
        raise ValueError(f"mode {mode!r} is not None, {WHOLE_MARKET!r} or {PER_STOCK!r}")
    limit = row_limit or fd.ROW_LIMITS[api_name]
    result = PeriodSynced(table=api_name, period=period, mode=mode or WHOLE_MARKET)
    reply = None
    if mode in (None, WHOLE_MARKET):
        try:
            reply = source.query(fd.vip_api(api_name), period=to_tushare_date(period))
        except Exception as error:
            if mode == WHOLE_MARKET or not is_permission_refusal(error):
                raise
            result.vip_refused = True
            result.api_calls += 1
            result.mode = PER_STOCK
        else:
            result.api_calls += pages_for(len(reply), limit)
    if reply is None:
        reply, calls, asked = fetch_per_stock(source, warehouse, api_name, period, limit)
        result.api_calls += calls
        result.stocks_asked = asked
    frame = statement_frame(api_name, reply, period)
    result.rows = len(frame)
    compare_with_stored(warehouse, api_name, period, frame, result)
    if result.added or result.changed:
        warehouse.upsert(api_name, frame)
    return result


def is_permission_refusal(error: Exception) -> bool:
    """Whether tushare refused the API for want of permission: the client's
    TusharePermissionError, or the SDK's bare exception, both carry tushare's text."""
    return TUSHARE_NO_PERMISSION_TEXT in str(error)


def fetch_per_stock(
    source, warehouse, api_name: str, period: dt.date, row_limit: int
) -> tuple[pd.DataFrame, int, int]:
    """(every listed stock's rows of ``period``, calls made, stocks asked): one query per
    stock listed at the period end per stock_basic, in code order."""
    stocks = listing_spans(warehouse)
    codes = sorted(stocks.loc[listed_on(stocks, period), "ts_code"])
    if not codes:
        raise ValueError(
            f"stock_basic lists no stock at {period:%Y-%m-%d}: sync stock_basic before"
            f" {api_name} per stock"
        )
    replies, calls = [], 0
    for code in codes:
        reply = source.query(api_name, ts_code=code, period=to_tushare_date(period))
        calls += pages_for(len(reply), row_limit)
        if len(reply):
            replies.append(reply)
    if not replies:
        return source_empty(api_name), calls, len(codes)
    # As objects: a bank's reply has all-NULL lines, which would blur concat's dtypes.
    frame = pd.concat([reply.astype(object) for reply in replies], ignore_index=True)
    return frame, calls, len(codes)


def source_empty(api_name: str) -> pd.DataFrame:
    return pd.DataFrame(columns=list(fd.field_names(api_name)))


def statement_frame(api_name: str, reply: pd.DataFrame, period: dt.date) -> pd.DataFrame:
    """The reply in warehouse form; a row of another period is an error naming it."""
    frame = to_warehouse_frame(api_name, reply)
    stray = frame["end_date"] != period
    if stray.any():
        raise ValueError(
            f"{api_name} reply for period {period:%Y-%m-%d} holds {int(stray.sum())} row(s) of"
            f" end_date {frame.loc[stray, 'end_date'].iloc[0]!r}; nothing was written"
        )
    return frame.reset_index(drop=True)


def compare_with_stored(
    warehouse, api_name: str, period: dt.date, frame: pd.DataFrame, result: PeriodSynced
) -> None:
    """Count ``frame``'s rows new to the table, changed and unchanged, and the stored rows
    of the period it lacks, into ``result``."""
    keys = list(fd.KEYS[api_name])
    stored = warehouse.read_table(api_name, where={"end_date": period})
    both = frame.merge(stored, on=keys, how="outer", suffixes=("", "_stored"), indicator=True)
    result.added = int((both["_merge"] == "left_only").sum())
    result.not_sent = int((both["_merge"] == "right_only").sum())
    matched = both[both["_merge"] == "both"]
    values = [name for name in fd.field_names(api_name) if name not in keys]
    differs = pd.Series(False, index=matched.index)
    for name in values:
        differs |= ~same_values(matched[name], matched[f"{name}_stored"])
    result.changed = int(differs.sum())
    result.unchanged = len(matched) - result.changed


def same_values(left: pd.Series, right: pd.Series) -> pd.Series:
    """Element-wise equality with NULL equal to NULL (None and NaN alike)."""
    left_null, right_null = left.isna(), right.isna()
    equal = left.astype(object).where(~left_null) == right.astype(object).where(~right_null)
    return (left_null & right_null) | (~left_null & ~right_null & equal)


def known_dates(api_name: str, frame: pd.DataFrame) -> pd.Series:
    """The day each version became known: the latest of its announcement dates."""
    dates = frame.loc[:, list(fd.ANNOUNCEMENT_COLUMNS[api_name])]
    return dates.apply(lambda column: pd.to_datetime(column)).max(axis=1).dt.date


def statements_as_of(
    warehouse, api_name: str, day: dt.date, ts_codes: Sequence[str]
) -> pd.DataFrame:
    """For each of ``ts_codes`` and each period, its latest statement known on ``day``.

    The version announced last on or before ``day`` (``known_dates``), a later one never;
    of two known the same day, the one tushare flags latest. The table's columns plus
    ``known_date``, ordered by ts_code and end_date; a stock with nothing announced by then
    has no row.
    """
    fd.check_api(api_name)
    if not ts_codes:
        raise ValueError("ts_codes is empty: name at least one stock")
    dates = fd.ANNOUNCEMENT_COLUMNS[api_name]
    # Each date bounds the version's known day from below: a SQL pre-filter on both.
    where = " AND ".join(f"{column} <= :day" for column in dates)
    codes = {f"code{position}": code for position, code in enumerate(ts_codes)}
    rows = warehouse.read_frame(
        f"SELECT * FROM {api_name} WHERE {where}"
        f" AND ts_code IN ({', '.join(f':{name}' for name in codes)})",
        {"day": day, **codes},
    )
    if rows.empty:
        return rows.assign(**{KNOWN_DATE: pd.Series(dtype=object)})
    rows[KNOWN_DATE] = known_dates(api_name, rows)
    statement = list(fd.STATEMENT_COLUMNS[api_name])
    latest = rows.sort_values([*statement, KNOWN_DATE, "update_flag"]).groupby(statement).tail(1)
    return latest.sort_values(statement).reset_index(drop=True)


def calls_per_period(mode: str, rows: int, listed: int, row_limit: int) -> int:
    """The calls one period of one API costs: the pages of ``rows`` (whole market), or one
    per listed stock (a stock's reply, a few versions, fits one page)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not {WHOLE_MARKET!r} or {PER_STOCK!r}")
    return pages_for(rows, row_limit) if mode == WHOLE_MARKET else listed


def calls_per_year(mode: str, listed: int, rows_per_period: int) -> int:
    """The calls four periods of the four statements cost with ``listed`` stocks and
    ``rows_per_period`` rows a period (versions included), at the declared row limits."""
    return sum(
        4 * calls_per_period(mode, rows_per_period, listed, fd.ROW_LIMITS[api])
        for api in fd.REPORT_PERIOD_APIS
    )
