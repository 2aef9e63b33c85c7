"""The factor library: per-stock daily factors over the whole market panel at once.

Owns this project's factors (turnover means, activity counts, momentum, volatility), the
registry of every factor (these, zquant's from ``factors.zquant``, and the project's from
``ZQUANT_FACTORS_MODULE``) and ``compute_factors``, which turns the warehouse's ``daily``,
``adj_factor`` and ``daily_basic`` rows into ``factor_daily`` rows for a selection of
factors. Every factor is a vectorised numpy function of (stock x trading-day ordinal)
matrices (see ``panel``); there is no per-stock loop.

The factors here count a stock's own trading days (its ``daily`` rows): a suspended day is
not in the window, so "the last 20 trading days" of a stock back from a suspension reach
further back in the calendar. A factor whose window is not full (fewer rows than it needs,
or a missing input value inside it) is NaN, written as NULL: never 0 or -1. The table of
definitions is docs/factors.md.
"""

import datetime as dt
import os
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from zquant_pipelines.constants import ENV_FACTORS_MODULE
from zquant_pipelines.factors import zquant
from zquant_pipelines.factors.panel import (
    KEY_COLUMNS,
    DailyPanel,
    float_column,
    lag,
    require_columns,
    rolling_std,
    rolling_sum,
)
from zquant_pipelines.factors.registry import (
    DAILY_TABLE,
    Factor,
    FactorData,
    FactorModuleError,
    Family,
    Registry,
    load_factor_module,
    lookback,
    required_inputs,
)

TURNOVER_MA_WINDOWS = (5, 10, 20, 30, 60, 90)
ACTIVITY_WINDOW = 120
MOMENTUM_PERIODS = (5, 20, 60)
VOLATILITY_WINDOW = 20
# Windows count the stock's trading days, so a stock suspended inside them reaches further
# back than N market days: the margin keeps the full window for stocks suspended up to 60
# days. Beyond that the window reaches past the rows read and the factor is NULL (never a
# value from a shorter window).
SUSPENSION_MARGIN_DAYS = 60

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

TURNOVER = "daily_basic.turnover_rate"
AMOUNT = "daily.amount"
CLOSE = "daily.close"
ADJ_FACTOR = "adj_factor.adj_factor"
PRICES = ("daily.open", "daily.high", "daily.low", "daily.close", "daily.pre_close")
# Divisors must be > 0 (NaN passes: a missing value makes its windows NaN).
POSITIVE_INPUTS = ("daily.close", "daily.pre_close", "adj_factor.adj_factor")


def turnover_rate_ma(data: FactorData, window: int) -> np.ndarray:
    """``turnover_rate_ma_N``: mean of the last N turnover rates, %.

    turnover_rate_ma_N(t) = (1/N) * sum(turnover_rate over the stock's last N trading days
    up to t), from ``daily_basic.turnover_rate`` (% of float shares). NaN unless N values.
    """
    return rolling_sum(data[TURNOVER], window) / window


def active_days(data: FactorData, window: int) -> np.ndarray:
    """``active_days_120``: number of active days among the last 120 trading days (a count).

    A day is active when turnover_rate >= 10 (%, ``daily_basic``) and the traded amount
    >= 1e9 CNY, where amount in CNY = ``daily.amount`` (thousand CNY) * 1000. NaN unless
    the stock has 120 trading days with both values.
    """
    turnover_rate, amount_kcny = data[TURNOVER], data[AMOUNT]
    known = ~(np.isnan(turnover_rate) | np.isnan(amount_kcny))
    active = (turnover_rate >= ACTIVE_TURNOVER_RATE_MIN_PCT) & (
        amount_kcny * CNY_PER_AMOUNT_UNIT >= ACTIVE_AMOUNT_MIN_CNY
    )
    return rolling_sum(np.where(known, active, np.nan), window)


def small_cross_days(data: FactorData, window: int) -> np.ndarray:
    """``small_cross_days_120``: number of "small cross" days among the last 120 (a count).

    A day is a small cross when, on unadjusted ``daily`` prices (CNY):
    amplitude (high - low) / pre_close <= 3%, |pct_chg| <= 1% with
    pct_chg = (close - pre_close) / pre_close (computed here: zquant's (close - close) /
    close was always 0), and body |close - open| / pre_close <= 1%. Each limit admits a
    rounding tolerance of 1e-9. NaN unless the stock has 120 trading days with all prices.
    """
    open_, high, low, close, pre_close = (data[name] for name in PRICES)
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


def _hfq_close(data: FactorData) -> np.ndarray:
    return data.cached("hfq_close", lambda: data[CLOSE] * data[ADJ_FACTOR])


def momentum(data: FactorData, periods: int) -> np.ndarray:
    """``momentum_N``: return over the last N trading days on back-adjusted prices (a ratio).

    momentum_N(t) = hfq_close(t) / hfq_close(N trading days before t) - 1, with
    hfq_close = ``daily.close`` * ``adj_factor.adj_factor``, so an ex-dividend day is not a
    fall. 0.05 means +5%. NaN unless N+1 closes.
    """
    hfq_close = _hfq_close(data)
    return hfq_close / lag(hfq_close, periods) - 1.0


def volatility(data: FactorData, window: int) -> np.ndarray:
    """``volatility_20``: sample std (ddof 1) of the last 20 daily returns on hfq prices.

    r(t) = hfq_close(t) / hfq_close(t-1) - 1 (previous trading day of the stock);
    volatility_20(t) = stdev(r over the last 20 trading days), a daily figure (not
    annualised) in return units. NaN unless 21 closes.
    """
    hfq_close = _hfq_close(data)
    return rolling_std(hfq_close / lag(hfq_close, 1) - 1.0, window)


def _require_positive(values: np.ndarray, panel: DailyPanel, field: str) -> None:
    bad = values <= 0
    if bad.any():
        row = np.argmax(bad)
        raise ValueError(
            f"{field} must be positive, got {values[row]!r} for ts_code "
            f"{panel.stocks[panel.stock_ids[row]]!r} on "
            f"{panel.dates[panel.date_ids[row]].isoformat()}"
        )


def _trading_factor(name, function, inputs, unit, null_rule, description, rows, **parameters):
    fields = (name, function, tuple(inputs), unit, null_rule, description, parameters)
    return Factor(*fields, lookback_trading_days=rows + SUSPENSION_MARGIN_DAYS)


BUILT_IN = [
    Family(
        "turnover_rate_ma_{window}",
        lambda window: _trading_factor(
            f"turnover_rate_ma_{window}",
            turnover_rate_ma,
            [TURNOVER],
            "% of float shares",
            f"NULL unless {window} trading days with a turnover_rate",
            f"mean of the last {window} trading days' turnover_rate",
            window,
            window=window,
        ),
        TURNOVER_MA_WINDOWS,
    ),
    Family(
        "active_days_{window}",
        lambda window: _trading_factor(
            f"active_days_{window}",
            active_days,
            [TURNOVER, AMOUNT],
            f"days (0-{window})",
            f"NULL unless {window} trading days with both inputs",
            f"trading days among the last {window} with turnover_rate >= 10 and amount x 1000"
            " >= 1e9 CNY",
            window,
            window=window,
        ),
        (ACTIVITY_WINDOW,),
    ),
    Family(
        "small_cross_days_{window}",
        lambda window: _trading_factor(
            f"small_cross_days_{window}",
            small_cross_days,
            PRICES,
            f"days (0-{window})",
            f"NULL unless {window} trading days with every price",
            f"trading days among the last {window} with (high - low) / pre_close <= 3%,"
            " |close - pre_close| / pre_close <= 1% and |close - open| / pre_close <= 1%",
            window,
            window=window,
        ),
        (ACTIVITY_WINDOW,),
    ),
    Family(
        "momentum_{window}",
        lambda periods: _trading_factor(
            f"momentum_{periods}",
            momentum,
            [CLOSE, ADJ_FACTOR],
            "ratio (0.05 = +5%)",
            f"NULL unless {periods + 1} closes, both ends with an adj_factor",
            f"hfq_close(t) / hfq_close({periods} trading days earlier) - 1",
            periods + 1,
            periods=periods,
        ),
        MOMENTUM_PERIODS,
    ),
    Family(
        "volatility_{window}",
        lambda window: _trading_factor(
            f"volatility_{window}",
            volatility,
            [CLOSE, ADJ_FACTOR],
            "daily return, not annualised",
            f"NULL unless {window + 1} hfq closes",
            f"sample standard deviation (ddof 1) of the last {window} daily returns"
            " hfq_close(t) / hfq_close(t-1) - 1",
            window + 1,
            window=window,
        ),
        (VOLATILITY_WINDOW,),
    ),
]


def build_registry(factors_module: str | None = None) -> Registry:
    """The built-in factors, zquant's, then those of ``factors_module`` (if named)."""
    registry = Registry([*BUILT_IN, *zquant.DECLARATIONS], zquant.ZQUANT_FACTOR_IDS)
    if factors_module:
        for declaration in load_factor_module(factors_module):
            try:
                registry.add(declaration)
            except ValueError as error:
                raise FactorModuleError(
                    f"{ENV_FACTORS_MODULE}={factors_module!r}: {error}"
                ) from error
    return registry


# Built when the code location loads, so a bad ZQUANT_FACTORS_MODULE fails it, naming the module.
REGISTRY = build_registry(os.environ.get(ENV_FACTORS_MODULE) or None)
FACTOR_COLUMNS = REGISTRY.columns
FACTOR_DAILY_COLUMNS = (*KEY_COLUMNS, *FACTOR_COLUMNS)
FACTOR_LOOKBACK_TRADING_DAYS, FACTOR_LOOKBACK_CALENDAR_DAYS = lookback(REGISTRY.factors.values())


def compute_factors(
    inputs: Mapping[str, pd.DataFrame],
    factors: Sequence[Factor] | None = None,
    trade_dates: Sequence[dt.date] | None = None,
    zquant_literal: bool = False,
) -> pd.DataFrame:
    """``factor_daily`` rows of the chosen ``factors`` (default: all) for ``trade_dates``.

    ``inputs`` maps each table of ``required_inputs(factors)`` to a long frame in warehouse
    form (tushare's columns; ``trade_date`` as ``datetime.date``) covering the look-back
    window (``lookback(factors)``) before the first wanted day; other columns are ignored,
    and so are rows of other tables without a ``daily`` row. ``zquant_literal`` asks for
    zquant's literal behaviour (docs/factors.md).

    Returns one row per (ts_code, trade_date) with a ``daily`` row on one of
    ``trade_dates`` (default: every date in ``daily``), sorted by trade_date then ts_code,
    with the key columns then one float64 column per factor, NaN where it is NULL. Raises
    ``ValueError`` naming the table, column and value on a missing column, a duplicate key,
    a non-numeric value or a non-positive close, pre_close or adj_factor.
    """
    factors = list(REGISTRY.factors.values()) if factors is None else list(factors)
    needed = required_inputs(factors)
    daily = inputs[DAILY_TABLE]
    require_columns(daily, DAILY_TABLE, needed[DAILY_TABLE])
    panel = DailyPanel(daily)
    row_values = {
        f"{DAILY_TABLE}.{column}": float_column(daily, DAILY_TABLE, column)
        for column in needed.pop(DAILY_TABLE)[len(KEY_COLUMNS) :]
    }
    for table, columns in needed.items():
        if table not in inputs:
            raise ValueError(f"the factors need table {table!r} (columns {columns}); not given")
        aligned = panel.align(inputs[table], table, columns[len(KEY_COLUMNS) :])
        row_values |= {f"{table}.{column}": values for column, values in aligned.items()}
    for name in POSITIVE_INPUTS:
        if name in row_values:
            _require_positive(row_values[name], panel, name)
    data = FactorData(panel, row_values, zquant_literal)

    rows = panel.rows_on(trade_dates)
    cells = (panel.stock_ids[rows], panel.positions[rows])
    result = pd.DataFrame(
        {
            "ts_code": np.asarray(panel.stocks, dtype=object)[cells[0]],
            "trade_date": np.asarray(panel.dates, dtype=object)[panel.date_ids[rows]],
        }
    )
    for factor, matrix in _factor_matrices(factors, data):
        result[factor.name] = matrix[cells]
    return result


def _factor_matrices(
    factors: Sequence[Factor], data: FactorData
) -> Iterator[tuple[Factor, np.ndarray]]:
    """Each factor's (stock x ordinal) matrix, yielded as computed so the caller keeps only
    the rows it needs rather than every factor's whole matrix."""
    for factor in factors:
        matrix = np.asarray(factor.compute(data), dtype=np.float64)
        shape = (len(data.panel.stocks), data.panel.n_positions)
        if matrix.shape != shape:
            raise ValueError(
                f"factor {factor.name!r} returned a {matrix.shape} matrix; expected"
                f" (stocks, trading-day ordinals) = {shape}"
            )
        yield factor, matrix


def compute_factor_daily(
    daily: pd.DataFrame,
    adj_factor: pd.DataFrame,
    daily_basic: pd.DataFrame,
    trade_dates: Sequence[dt.date] | None = None,
    factors: Sequence[Factor] | None = None,
    zquant_literal: bool = False,
) -> pd.DataFrame:
    """``compute_factors`` with the three input tables as arguments."""
    inputs = {"daily": daily, "adj_factor": adj_factor, "daily_basic": daily_basic}
    return compute_factors(inputs, factors, trade_dates, zquant_literal)
