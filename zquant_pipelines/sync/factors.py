"""The factor_daily table: read the look-back window from the warehouse, compute, store.

Plain functions (no Dagster). The factor formulas live in ``zquant_pipelines.factors``; this
module only moves their inputs and outputs, in bulk: it reads only the input columns the
factors need (``FACTOR_INPUT_COLUMNS``; COPY into Arrow on PostgreSQL) and writes every day
in one transaction (COPY straight into the table when none of the days is stored yet).
"""

import datetime as dt
from collections.abc import Iterable, Sequence

from zquant_pipelines.factors.library import (
    DAILY_INPUT_COLUMNS,
    FACTOR_LOOKBACK_TRADING_DAYS,
    compute_factor_daily,
)
from zquant_pipelines.sync.market import SyncResult, open_days, recent_open_days

# The columns compute_factor_daily reads from each input table, keys first: the only ones
# fetched. (The factor registry will derive them from the chosen factors' declared inputs.)
FACTOR_INPUT_COLUMNS: dict[str, tuple[str, ...]] = {
    "daily": ("ts_code", "trade_date", *DAILY_INPUT_COLUMNS),
    "adj_factor": ("ts_code", "trade_date", "adj_factor"),
    "daily_basic": ("ts_code", "trade_date", "turnover_rate"),
}


def lookback_start(warehouse, first_day: dt.date, trading_days: int) -> dt.date:
    """The open day ``trading_days`` market days before ``first_day`` (or the first known)."""
    days = recent_open_days(warehouse, first_day, trading_days + 1)
    return days[0] if days else first_day


def read_factor_inputs(
    warehouse, start: dt.date, end: dt.date, ts_codes: Sequence[str] | None = None
) -> dict:
    """The factors' input columns of the three tables over [start, end] (of some stocks)."""
    return {
        table: warehouse.read_columns(table, columns, start, end, ts_codes or None)
        for table, columns in FACTOR_INPUT_COLUMNS.items()
    }


def compute_and_store_factors(
    warehouse, trade_dates: Iterable[dt.date], ts_codes: Sequence[str] | None = None
) -> SyncResult:
    """Factors of ``trade_dates`` (all stocks, or ``ts_codes``) into ``factor_daily``.

    With all stocks the days are replaced in one transaction (all or none; a day without
    any factor row is refused before anything is written); for a subset the rows are
    upserted so other stocks' factors stay. Stocks whose window reaches before the stored
    history get NULL for that factor (the window is not full), never a value from a shorter
    window.
    """
    days = sorted(set(trade_dates))
    result = SyncResult(table="factor_daily")
    if not days:
        return result
    is_open = open_days(warehouse, days[0], days[-1])
    targets = [day for day in days if is_open[day]]
    result.closed_dates = [day for day in days if not is_open[day]]
    if not targets:
        return result
    start = lookback_start(warehouse, targets[0], FACTOR_LOOKBACK_TRADING_DAYS)
    inputs = read_factor_inputs(warehouse, start, targets[-1], ts_codes)
    # Popped so the input frames are freed once computed, before the write builds its CSV.
    factors = compute_factor_daily(
        inputs.pop("daily"),
        inputs.pop("adj_factor"),
        inputs.pop("daily_basic"),
        trade_dates=targets,
    )
    if ts_codes:
        result.rows = warehouse.upsert("factor_daily", factors)
    else:
        computed = set(factors["trade_date"])
        empty = [day for day in targets if day not in computed]
        if empty:
            raise ValueError(
                f"factor_daily for {empty[0]:%Y-%m-%d}: no stock has market data that open day;"
                " sync its daily, adj_factor and daily_basic first (stored factors kept)"
            )
        result.rows = warehouse.replace_partitions("factor_daily", factors, targets)
    result.trade_dates = list(targets)
    return result
