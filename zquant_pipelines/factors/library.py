"""The factor library: per-stock daily factors over the whole market panel at once.

Owns the factor definitions (formulas, units, thresholds, the rule for windows that are not
full) and ``compute_factor_daily``, which turns the warehouse's ``daily``, ``adj_factor`` and
``daily_basic`` rows into ``factor_daily`` rows. Every factor is a vectorised numpy function
of (stock x trading-day ordinal) matrices (see ``panel``); there is no per-stock loop.

Windows count a stock's own trading days (its ``daily`` rows): a suspended day is not in
the window, so "the last 20 trading days" of a stock back from a suspension reach further
back in the calendar. A factor whose window is not full (fewer rows than it needs, or a
missing input value inside it) is NaN, written as NULL: never 0 or -1. The table of
definitions is docs/factors.md.
"""

import datetime as dt
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from zquant_pipelines.factors.panel import (
    KEY_COLUMNS,
    DailyPanel,
    float_column,
    lag,
    require_columns,
    rolling_std,
    rolling_sum,
    rolling_sums,
)

TURNOVER_MA_WINDOWS = (5, 10, 20, 30, 60, 90)
ACTIVITY_WINDOW = 120
MOMENTUM_PERIODS = (5, 20, 60)
VOLATILITY_WINDOW = 20

# factor_daily's value columns in table order (after ts_code, trade_date); the same names
# and order as resources/warehouse_schema.FACTOR_COLUMNS.
FACTOR_COLUMNS = (
    *(f"turnover_rate_ma_{window}" for window in TURNOVER_MA_WINDOWS),
    f"active_days_{ACTIVITY_WINDOW}",
    f"small_cross_days_{ACTIVITY_WINDOW}",
    *(f"momentum_{periods}" for periods in MOMENTUM_PERIODS),
    f"volatility_{VOLATILITY_WINDOW}",
)
FACTOR_DAILY_COLUMNS = (*KEY_COLUMNS, *FACTOR_COLUMNS)

# The longest window is 120 trading days (momentum_60 needs 61 closes, volatility_20 21).
# Windows count the stock's trading days, so a stock suspended inside them reaches further
# back than 120 market days: the margin keeps the full window for stocks suspended up to
# 60 days of the last 180. Beyond that the window reaches past the rows read and the
# 120-day counts are NULL (never a value from a shorter window).
LONGEST_WINDOW = ACTIVITY_WINDOW
SUSPENSION_MARGIN_DAYS = 60
FACTOR_LOOKBACK_TRADING_DAYS = LONGEST_WINDOW + SUSPENSION_MARGIN_DAYS

ACTIVE_TURNOVER_RATE_MIN_PCT = 10.0
ACTIVE_AMOUNT_MIN_CNY = 1e9
# tushare's daily.amount is in thousand CNY (千元).
CNY_PER_AMOUNT_UNIT = 1_000.0
SMALL_CROSS_AMPLITUDE_MAX = 0.03
SMALL_CROSS_PCT_CHG_MAX = 0.01
SMALL_CROSS_BODY_MAX = 0.01
# Prices are decimals in fen held as binary floats: (10.30 - 10.00) / 10.00 evaluates to
# 0.030000000000000072. The ratio limits admit this much more so that a day exactly at a
# limit counts, as "<=" means; it is far below one fen on any A-share price (1e-6 at 10,000).
RATIO_TOLERANCE = 1e-9

DAILY_INPUT_COLUMNS = ("open", "high", "low", "close", "pre_close", "amount")


def turnover_rate_ma(
    turnover_rate: np.ndarray, windows: Sequence[int] = TURNOVER_MA_WINDOWS
) -> dict[int, np.ndarray]:
    """``turnover_rate_ma_N`` for each N in ``windows``: mean of the last N turnover rates, %.

    turnover_rate_ma_N(t) = (1/N) * sum(turnover_rate over the stock's last N trading days
    up to t), from ``daily_basic.turnover_rate`` (% of float shares). NaN unless N values.
    """
    return {window: sums / window for window, sums in rolling_sums(turnover_rate, windows).items()}


def active_days(
    turnover_rate: np.ndarray, amount_kcny: np.ndarray, window: int = ACTIVITY_WINDOW
) -> np.ndarray:
    """``active_days_120``: number of active days among the last 120 trading days (a count).

    A day is active when turnover_rate >= 10 (%, ``daily_basic``) and the traded amount
    >= 1e9 CNY, where amount in CNY = ``daily.amount`` (thousand CNY) * 1000. NaN unless
    the stock has 120 trading days with both values.
    """
    known = ~(np.isnan(turnover_rate) | np.isnan(amount_kcny))
    active = (turnover_rate >= ACTIVE_TURNOVER_RATE_MIN_PCT) & (
        amount_kcny * CNY_PER_AMOUNT_UNIT >= ACTIVE_AMOUNT_MIN_CNY
    )
    return rolling_sum(np.where(known, active, np.nan), window)


def small_cross_days(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    pre_close: np.ndarray,
    window: int = ACTIVITY_WINDOW,
) -> np.ndarray:
    """``small_cross_days_120``: number of "small cross" days among the last 120 (a count).

    A day is a small cross when, on unadjusted ``daily`` prices (CNY):
    amplitude (high - low) / pre_close <= 3%, |pct_chg| <= 1% with
    pct_chg = (close - pre_close) / pre_close (computed here: zquant's (close - close) /
    close was always 0), and body |close - open| / pre_close <= 1%. Each limit admits a
    rounding tolerance of 1e-9. NaN unless the stock has 120 trading days with all prices.
    """
    amplitude = (high - low) / pre_close
    pct_chg = (close - pre_close) / pre_close
    body = np.abs(close - open_) / pre_close
    known = ~(np.isnan(amplitude) | np.isnan(pct_chg) | np.isnan(body))
    small_cross = (
        (amplitude <= SMALL_CROSS_AMPLITUDE_MAX + RATIO_TOLERANCE)
        & (np.abs(pct_chg) <= SMALL_CROSS_PCT_CHG_MAX + RATIO_TOLERANCE)
        & (body <= SMALL_CROSS_BODY_MAX + RATIO_TOLERANCE)
    )
    return rolling_sum(np.where(known, small_cross, np.nan), window)


def momentum(hfq_close: np.ndarray, periods: int) -> np.ndarray:
    """``momentum_N``: return over the last N trading days on back-adjusted prices (a ratio).

    momentum_N(t) = hfq_close(t) / hfq_close(N trading days before t) - 1, with
    hfq_close = ``daily.close`` * ``adj_factor.adj_factor``, so an ex-dividend day is not a
    fall. 0.05 means +5%. NaN unless N+1 closes.
    """
    return hfq_close / lag(hfq_close, periods) - 1.0


def volatility(hfq_close: np.ndarray, window: int = VOLATILITY_WINDOW) -> np.ndarray:
    """``volatility_20``: sample std (ddof 1) of the last 20 daily returns on hfq prices.

    r(t) = hfq_close(t) / hfq_close(t-1) - 1 (previous trading day of the stock);
    volatility_20(t) = stdev(r over the last 20 trading days), a daily figure (not
    annualised) in return units. NaN unless 21 closes.
    """
    return rolling_std(momentum(hfq_close, 1), window)


def _require_positive(values: np.ndarray, panel: DailyPanel, field: str) -> None:
    """Divisors must be > 0 (NaN passes: a missing value makes its windows NaN)."""
    bad = values <= 0
    if bad.any():
        row = np.argmax(bad)
        raise ValueError(
            f"{field} must be positive, got {values[row]!r} for ts_code "
            f"{panel.stocks[panel.stock_ids[row]]!r} on "
            f"{panel.dates[panel.date_ids[row]].isoformat()}"
        )


def compute_factor_daily(
    daily: pd.DataFrame,
    adj_factor: pd.DataFrame,
    daily_basic: pd.DataFrame,
    trade_dates: Sequence[dt.date] | None = None,
) -> pd.DataFrame:
    """``factor_daily`` rows for ``trade_dates`` from the look-back rows of three tables.

    Inputs are long frames in warehouse form (tushare's columns; ``trade_date`` as
    ``datetime.date``) covering the look-back window (``FACTOR_LOOKBACK_TRADING_DAYS``
    market days before the first wanted day): ``daily`` (ts_code, trade_date, open, high,
    low, close, pre_close, amount), ``adj_factor`` (ts_code, trade_date, adj_factor),
    ``daily_basic`` (ts_code, trade_date, turnover_rate); other columns are ignored, and so
    are ``adj_factor``/``daily_basic`` rows without a ``daily`` row.

    Returns one row per (ts_code, trade_date) with a ``daily`` row on one of
    ``trade_dates`` (default: every date in ``daily``), sorted by trade_date then ts_code,
    with columns ``FACTOR_DAILY_COLUMNS``: trade_date as ``datetime.date``, factors as
    float64 with NaN where the window is not full. Raises ``ValueError`` naming the table,
    column and value on a missing column, a duplicate key, a non-numeric value or a
    non-positive close, pre_close or adj_factor.
    """
    require_columns(daily, "daily", DAILY_INPUT_COLUMNS)
    panel = DailyPanel(daily)
    row_values = {column: float_column(daily, "daily", column) for column in DAILY_INPUT_COLUMNS}
    row_values |= panel.align(adj_factor, "adj_factor", ["adj_factor"])
    row_values |= panel.align(daily_basic, "daily_basic", ["turnover_rate"])
    for table, column in (("daily", "close"), ("daily", "pre_close"), ("adj_factor", "adj_factor")):
        _require_positive(row_values[column], panel, f"{table}.{column}")
    inputs = {column: panel.to_matrix(values) for column, values in row_values.items()}

    rows = panel.rows_on(trade_dates)
    cells = (panel.stock_ids[rows], panel.positions[rows])
    result = pd.DataFrame(
        {
            "ts_code": np.asarray(panel.stocks, dtype=object)[cells[0]],
            "trade_date": np.asarray(panel.dates, dtype=object)[panel.date_ids[rows]],
        }
    )
    for column, matrix in _factor_matrices(inputs):
        result[column] = matrix[cells]
    return result


def _factor_matrices(inputs: dict[str, np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    """Each factor's (stock x ordinal) matrix in FACTOR_COLUMNS order.

    Yielded as computed so the caller keeps only the rows it needs: at most the six
    turnover means are alive at once (17 MB each for 5,000 stocks x 430 days), not all
    twelve factors.
    """
    turnover_rate = inputs["turnover_rate"]
    for window, means in turnover_rate_ma(turnover_rate).items():
        yield f"turnover_rate_ma_{window}", means
    yield f"active_days_{ACTIVITY_WINDOW}", active_days(turnover_rate, inputs["amount"])
    yield (
        f"small_cross_days_{ACTIVITY_WINDOW}",
        small_cross_days(
            inputs["open"], inputs["high"], inputs["low"], inputs["close"], inputs["pre_close"]
        ),
    )
    hfq_close = inputs["close"] * inputs["adj_factor"]
    for periods in MOMENTUM_PERIODS:
        yield f"momentum_{periods}", momentum(hfq_close, periods)
    yield f"volatility_{VOLATILITY_WINDOW}", volatility(hfq_close)
