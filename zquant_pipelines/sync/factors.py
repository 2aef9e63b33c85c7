"""The factor_daily table: read the look-back window from the warehouse, compute, store per day.

Plain functions (no Dagster). The factor formulas live in ``zquant_pipelines.factors``; this
module only moves their inputs and outputs.
"""

import datetime as dt
from collections.abc import Iterable, Sequence

from zquant_pipelines.factors.library import FACTOR_LOOKBACK_TRADING_DAYS, compute_factor_daily
from zquant_pipelines.sync.market import SyncResult, open_days, recent_open_days
from zquant_pipelines.sync.progress import DayCounter, ProgressCallback

FACTOR_INPUT_TABLES = ("daily", "adj_factor", "daily_basic")


def lookback_start(warehouse, first_day: dt.date, trading_days: int) -> dt.date:
    """The open day ``trading_days`` market days before ``first_day`` (or the first known)."""
    days = recent_open_days(warehouse, first_day, trading_days + 1)
    return days[0] if days else first_day


def read_factor_inputs(
    warehouse, start: dt.date, end: dt.date, ts_codes: Sequence[str] | None = None
) -> dict:
    """The three input tables over [start, end], optionally for some stocks only."""
    params: dict = {"start": start, "end": end}
    code_filter = ""
    if ts_codes:
        names = [f"c{i}" for i in range(len(ts_codes))]
        code_filter = f" AND ts_code IN ({', '.join(':' + n for n in names)})"
        params.update(zip(names, ts_codes, strict=True))
    return {
        table: warehouse.read_frame(
            f"SELECT * FROM {table} WHERE trade_date BETWEEN :start AND :end{code_filter}", params
        )
        for table in FACTOR_INPUT_TABLES
    }


def compute_and_store_factors(
    warehouse,
    trade_dates: Iterable[dt.date],
    ts_codes: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    written_through: dt.date | None = None,
) -> SyncResult:
    """Factors of ``trade_dates`` (all stocks, or ``ts_codes``) into ``factor_daily``.

    With all stocks each day is replaced atomically; for a subset the rows are upserted so
    other stocks' factors stay. Stocks whose window reaches before the stored history get
    NULL for that factor (the window is not full), never a value from a shorter window.
    ``progress`` hears of each day stored; open days up to ``written_through`` (stored by
    an earlier attempt) are not computed again.
    """
    days = sorted(set(trade_dates))
    result = SyncResult(table="factor_daily")
    if not days:
        return result
    is_open = open_days(warehouse, days[0], days[-1])
    counter = DayCounter(
        "factor_daily", [day for day in days if is_open[day]], progress, written_through
    )
    targets = counter.pending
    result.closed_dates = [day for day in days if not is_open[day]]
    result.resumed_dates = list(counter.resumed)
    result.trade_dates = list(counter.resumed)
    if not targets:
        return result
    start = lookback_start(warehouse, targets[0], FACTOR_LOOKBACK_TRADING_DAYS)
    inputs = read_factor_inputs(warehouse, start, targets[-1], ts_codes)
    factors = compute_factor_daily(
        inputs["daily"], inputs["adj_factor"], inputs["daily_basic"], trade_dates=targets
    )
    by_day = dict(tuple(factors.groupby("trade_date", sort=True)))
    for day in targets:
        frame = by_day.get(day, factors.iloc[0:0])
        if ts_codes:
            rows = warehouse.upsert("factor_daily", frame)
        elif frame.empty:
            raise ValueError(
                f"factor_daily for {day:%Y-%m-%d}: no stock has market data that open day;"
                " sync its daily, adj_factor and daily_basic first (stored factors kept)"
            )
        else:
            rows = warehouse.replace_partition("factor_daily", frame, day)
        result.add_day(day, rows, api_calls=0)
        counter.written(day, rows)
    return result
