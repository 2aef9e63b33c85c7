"""The factor_daily table: read the look-back window from the warehouse, compute, store.

Plain functions (no Dagster). The factor formulas and the registry live in
``zquant_pipelines.factors``; this module moves their inputs and outputs, in bulk: it reads
only the columns the chosen factors need (``required_inputs``; COPY into Arrow on
PostgreSQL), over their look-back, and writes every day in one transaction (COPY straight
into the table when none of the days is stored yet). A selection of some factors keeps the
other stored columns of the rows it writes.
"""

import datetime as dt
from collections.abc import Iterable, Sequence

import pandas as pd

from zquant_pipelines.constants import FACTOR_TABLE
from zquant_pipelines.factors.library import FACTOR_COLUMNS, REGISTRY, compute_factors
from zquant_pipelines.factors.panel import KEY_COLUMNS
from zquant_pipelines.factors.registry import Factor, lookback, required_inputs
from zquant_pipelines.sync.market import SyncResult, open_days, recent_open_days
from zquant_pipelines.sync.progress import DayCounter, ProgressCallback


def select_factors(selection: Sequence[str | int] | None = None) -> list[Factor]:
    """The registered factors a selection names (see ``Registry.select``; None: all)."""
    return REGISTRY.select(selection)


def lookback_start(warehouse, first_day: dt.date, trading_days: int) -> dt.date:
    """The open day ``trading_days`` market days before ``first_day`` (or the first known)."""
    days = recent_open_days(warehouse, first_day, trading_days + 1)
    return days[0] if days else first_day


def read_factor_inputs(
    warehouse,
    start: dt.date,
    end: dt.date,
    ts_codes: Sequence[str] | None = None,
    columns: dict[str, list[str]] | None = None,
) -> dict:
    """The input tables over [start, end], ``columns`` of each ({table: [columns]}, from
    ``required_inputs``; default: every factor's), optionally for some stocks only."""
    columns = columns or required_inputs(REGISTRY.factors.values())
    return {
        table: warehouse.read_columns(table, selected, start, end, ts_codes or None)
        for table, selected in columns.items()
    }


def compute_and_store_factors(
    warehouse,
    trade_dates: Iterable[dt.date],
    ts_codes: Sequence[str] | None = None,
    factors: Sequence[Factor] | None = None,
    zquant_literal: bool = False,
    progress: ProgressCallback | None = None,
    written_through: dt.date | None = None,
) -> SyncResult:
    """Factors of ``trade_dates`` (all stocks, or ``ts_codes``) into ``factor_daily``.

    ``factors`` (default: every registered one) are computed and written; the other stored
    columns of those rows stay. A factor with a window factor_daily lacks a column for
    (``ma120_tr``) gets one. ``zquant_literal`` stores zquant's literal behaviour
    (docs/factors.md). With all stocks the days are replaced in one transaction (all or
    none; a day without any factor row is refused before anything is written); for a subset
    the rows are upserted so other stocks' factors stay. Stocks whose window reaches before
    the stored history get NULL for that factor (the window is not full), never a value from
    a shorter window. ``progress`` hears of each day once stored; open days up to
    ``written_through`` (stored by an earlier attempt) are not computed again.
    """
    factors = list(REGISTRY.factors.values()) if factors is None else list(factors)
    days = sorted(set(trade_dates))
    result = SyncResult(table=FACTOR_TABLE)
    if not days:
        return result
    is_open = open_days(warehouse, days[0], days[-1])
    counter = DayCounter(
        FACTOR_TABLE, [day for day in days if is_open[day]], progress, written_through
    )
    targets = counter.pending
    result.closed_dates = [day for day in days if not is_open[day]]
    result.resumed_dates = list(counter.resumed)
    result.trade_dates = list(counter.resumed)
    if not targets:
        return result
    trading_days, calendar_days = lookback(factors)
    start = min(
        lookback_start(warehouse, targets[0], trading_days),
        targets[0] - dt.timedelta(days=calendar_days),
    )
    inputs = read_factor_inputs(warehouse, start, targets[-1], ts_codes, required_inputs(factors))
    computed = compute_factors(inputs, factors, trade_dates=targets, zquant_literal=zquant_literal)
    del inputs  # freed before the write builds its CSV
    new_columns = [f.name for f in factors if f.name not in FACTOR_COLUMNS]
    table_columns = warehouse.add_columns(FACTOR_TABLE, new_columns)
    rows = with_stored_columns(warehouse, computed, targets, table_columns)
    if ts_codes:
        warehouse.upsert(FACTOR_TABLE, rows)
    else:
        empty = sorted(set(targets) - set(rows["trade_date"]))
        if empty:
            raise ValueError(
                f"factor_daily for {empty[0]:%Y-%m-%d}: no stock has market data that open day;"
                " sync its daily, adj_factor and daily_basic first (stored factors kept)"
            )
        warehouse.replace_partitions(FACTOR_TABLE, rows, targets)
    rows_by_day = rows.groupby("trade_date").size()
    for day in targets:
        day_rows = int(rows_by_day.get(day, 0))
        result.add_day(day, day_rows, api_calls=0)
        counter.written(day, day_rows)
    return result


def with_stored_columns(
    warehouse, computed: pd.DataFrame, days: list[dt.date], table_columns: list[str]
) -> pd.DataFrame:
    """``computed`` with every column of factor_daily: those it lacks as stored for its rows
    (NULL for rows not stored yet), so writing it changes only the computed columns."""
    missing = [column for column in table_columns if column not in computed.columns]
    if not missing or computed.empty:
        return computed.reindex(columns=[*computed.columns, *missing])
    stored = warehouse.read_columns(FACTOR_TABLE, [*KEY_COLUMNS, *missing], min(days), max(days))
    return computed.merge(stored, on=list(KEY_COLUMNS), how="left")
