"""zquant's factors: its turnover_rate calculator and the columns of its hyper_activity one.

Under zquant's own column names (``ma5_tr`` .. ``halfyear_active_times``), windows and units.
zquant's windows here are calendar windows: "the last N records" are the stock's last N rows
with a value among the days in [D - 180 calendar days, D] (the MA model of turnover_rate:
[D - 2 x window, D]), not the last N trading days.

Two behaviours (``FactorData.zquant_literal``):

- intent (default): zquant's definitions as its comments and docs state them, with this
  project's NULL rule (a window without its N records, or a flag whose input is missing,
  is NULL) and the documented thresholds where zquant's code contradicts its comments
  (the half-year amount limit, the small-cross price change).
- literal: what zquant v0.4's code stores, defects included, so results reconcile with a
  zquant database: 0.0 / partial counts / -1 for short windows, ``ma`` rounded to 5 dp,
  amount > 1亿 for the half-year count, the always-zero price change of the small cross,
  and every hyper_activity column NULL where zquant stores no row.

docs/factors.md lists the differences; ``halfyear_hsl_times`` is not available here (its
input is a manual import zquant reads from its own table).
"""

import numpy as np

from zquant_pipelines.factors.panel import RecordWindows
from zquant_pipelines.factors.registry import Factor, FactorData, Family

TURNOVER = "daily_basic.turnover_rate"
AMOUNT = "daily.amount"
TOTAL_MV = "daily_basic.total_mv"
CIRC_MV = "daily_basic.circ_mv"
PRICES = ("daily.open", "daily.high", "daily.low", "daily.close", "daily.pre_close")

HYPER_ACTIVITY = "hyper_activity"
TURNOVER_RATE = "turnover_rate"
# zquant's seed (scripts/init_factor.py) creates turnover_rate first, then hyper_activity.
ZQUANT_FACTOR_IDS = {1: TURNOVER_RATE, 2: HYPER_ACTIVITY}

HALF_YEAR_CALENDAR_DAYS = 180
ZQUANT_WINDOWS = (5, 10, 20, 30, 60, 90)
MA_DECIMALS = 5
# The turnover_rate MA model: window 1..60 (zquant validates it), over 2 x window days.
MODEL_MA_WINDOWS = (5,)
MODEL_MA_MAX_WINDOW = 60
MODEL_MA_INVALID = -1.0

ACTIVE_TURNOVER_RATE_MIN_PCT = 10.0
# tushare's daily.amount is in thousand CNY (千元): 10亿 CNY = 1,000,000.
CNY_PER_AMOUNT_UNIT = 1_000.0
TURNOVER_VOLUME_AMOUNT_MIN_CNY = 1e9
HALF_YEAR_AMOUNT_ABOVE_KCNY = 1_000_000.0  # 10亿, zquant's comments and docs
HALF_YEAR_AMOUNT_ABOVE_KCNY_LITERAL = 100_000.0  # 1亿, zquant's code
# total_mv / circ_mv are in 10k CNY (万元): 50亿 .. 200亿.
MARKET_VALUE_RANGE_10K_CNY = (500_000.0, 2_000_000.0)
XCROSS_AMPLITUDE_MAX_PCT = 3.0
XCROSS_PCT_CHG_MAX_PCT = 1.0
XCROSS_BODY_MAX_PCT = 1.0
# As for small_cross_days_120: prices in fen held as binary floats land a hair above an
# exact limit; intent admits 1e-9 of the ratio (1e-7 in percent). zquant compares exactly.
PCT_TOLERANCE = 1e-7


def _turnover_records(data: FactorData) -> np.ndarray:
    return data.cached("turnover_records", lambda: ~np.isnan(data[TURNOVER]))


def _xcross_records(data: FactorData) -> np.ndarray:
    return data.cached(
        "xcross_records", lambda: ~np.any([np.isnan(data[name]) for name in PRICES], axis=0)
    )


def _half_year(data: FactorData, records: str) -> RecordWindows:
    """The half-year windows of one kind of record: turnover, xcross or every daily row."""
    kinds = {
        "turnover": _turnover_records,
        "xcross": _xcross_records,
        "rows": lambda data: ~np.isnan(data.day_numbers),
    }
    return data.cached(
        ("half_year", records),
        lambda: RecordWindows(kinds[records](data), data.calendar_starts(HALF_YEAR_CALENDAR_DAYS)),
    )


def _zquant_stores_no_row(data: FactorData) -> np.ndarray:
    """Where zquant's hyper_activity returns None: no turnover_rate or no complete daily row
    in [D - 180, D]."""

    return data.cached(
        "zquant_no_row",
        lambda: (_half_year(data, "turnover").available == 0)
        | (_half_year(data, "xcross").available == 0),
    )


def _hyper(data: FactorData, values: np.ndarray) -> np.ndarray:
    """A hyper_activity column: literal mode blanks the cells where zquant stores no row."""
    return np.where(_zquant_stores_no_row(data), np.nan, values) if data.zquant_literal else values


def _count(data: FactorData, flags: np.ndarray, records: str, window: int) -> np.ndarray:
    """Flags among the last ``window`` records in the half year: intent NULL unless there are
    ``window`` of them; literal counts the records there are (zquant's ``[-days:]``)."""
    windows = _half_year(data, records)
    sums = windows.sums(flags, window)
    if data.zquant_literal:
        return _hyper(data, sums)
    return np.where(windows.available >= window, sums, np.nan)


def _the_day(data: FactorData, flags: np.ndarray, records: np.ndarray) -> np.ndarray:
    """The day's flag; a day that is not a record is NULL (intent) or 0 (literal)."""
    if data.zquant_literal:
        return _hyper(data, np.where(records, flags, 0.0))
    return np.where(records, flags, np.nan)


def ma_tr(data: FactorData, window: int) -> np.ndarray:
    windows = _half_year(data, "turnover")
    sums = windows.sums(data[TURNOVER], window)
    full = windows.available >= window
    if data.zquant_literal:
        return _hyper(data, np.where(full, np.round(sums / window, MA_DECIMALS), 0.0))
    return np.where(full, sums / window, np.nan)


def _turnover_volume_flags(data: FactorData) -> np.ndarray:
    def make():
        turnover_rate, amount = data[TURNOVER], data[AMOUNT]
        # zquant's expression: amount in CNY = amount (千元) x 1000, against 10亿.
        busy = (turnover_rate >= ACTIVE_TURNOVER_RATE_MIN_PCT) & (
            amount * CNY_PER_AMOUNT_UNIT >= TURNOVER_VOLUME_AMOUNT_MIN_CNY
        )
        if data.zquant_literal:
            return busy.astype(np.float64)  # zquant counts a day without an amount as not busy
        return np.where(np.isnan(amount), np.nan, busy.astype(np.float64))

    return data.cached("turnover_volume_flags", make)


def theday_turnover_volume(data: FactorData) -> np.ndarray:
    return _the_day(data, _turnover_volume_flags(data), _turnover_records(data))


def total_turnover_volume(data: FactorData, window: int) -> np.ndarray:
    return _count(data, _turnover_volume_flags(data), "turnover", window)


def _xcross_flags(data: FactorData) -> np.ndarray:
    def make():
        open_, high, low, close, pre_close = (data[name] for name in PRICES)
        amplitude = (high - low) / close * 100
        body = np.abs(open_ - close) / close * 100
        if data.zquant_literal:
            # zquant's code: (close - close) / close, always 0 (its comment: against pre_close).
            pct_chg = (close - close) / close * 100
            tolerance = 0.0
        else:
            pct_chg = (close - pre_close) / pre_close * 100
            tolerance = PCT_TOLERANCE
        flags = (
            (amplitude <= XCROSS_AMPLITUDE_MAX_PCT + tolerance)
            & (np.abs(pct_chg) <= XCROSS_PCT_CHG_MAX_PCT + tolerance)
            & (body <= XCROSS_BODY_MAX_PCT + tolerance)
        )
        return flags.astype(np.float64)

    return data.cached("xcross_flags", make)


def theday_xcross(data: FactorData) -> np.ndarray:
    return _the_day(data, _xcross_flags(data), _xcross_records(data))


def total_xcross(data: FactorData, window: int) -> np.ndarray:
    return _count(data, _xcross_flags(data), "xcross", window)


def halfyear_active_times(data: FactorData) -> np.ndarray:
    low, high = MARKET_VALUE_RANGE_10K_CNY
    total_mv, circ_mv = data[TOTAL_MV], data[CIRC_MV]
    above = (
        HALF_YEAR_AMOUNT_ABOVE_KCNY_LITERAL if data.zquant_literal else HALF_YEAR_AMOUNT_ABOVE_KCNY
    )
    active = (
        (data[AMOUNT] > above)
        & (data[TURNOVER] >= ACTIVE_TURNOVER_RATE_MIN_PCT)
        & (((total_mv >= low) & (total_mv <= high)) | ((circ_mv >= low) & (circ_mv <= high)))
    )
    return _hyper(data, _half_year(data, "rows").sums(active.astype(np.float64)))


def turnover_rate(data: FactorData) -> np.ndarray:
    return data[TURNOVER]


def turnover_rate_model_ma(data: FactorData, window: int) -> np.ndarray:
    windows = RecordWindows(_turnover_records(data), data.calendar_starts(2 * window))
    short = MODEL_MA_INVALID if data.zquant_literal else np.nan
    return np.where(
        windows.available >= window, windows.sums(data[TURNOVER], window) / window, short
    )


def _hyper_factor(name: str, function, inputs, unit, null_rule, description, **parameters):
    # Literal mode blanks the days zquant stores no row for, which takes turnover_rate and
    # the prices whatever the column reads itself.
    inputs = tuple(dict.fromkeys([*inputs, TURNOVER, *PRICES]))
    fields = (name, function, inputs, unit, null_rule, description, parameters)
    return Factor(
        *fields, lookback_calendar_days=HALF_YEAR_CALENDAR_DAYS, zquant_factor=HYPER_ACTIVITY
    )


def _model_ma(window: int) -> Factor:
    if not 1 <= window <= MODEL_MA_MAX_WINDOW:
        raise ValueError(
            f"turnover_rate_model_ma window {window} is outside zquant's 1..{MODEL_MA_MAX_WINDOW}"
        )
    return Factor(
        name=f"turnover_rate_model_ma{window}",
        function=turnover_rate_model_ma,
        inputs=(TURNOVER,),
        unit="% of float shares",
        null_rule=f"NULL (literal: -1) unless {window} values in the last {2 * window} calendar"
        " days",
        description=f"zquant's turnover_rate MA model: mean of the last {window} turnover_rate"
        f" values in [D - {2 * window} calendar days, D]",
        parameters={"window": window},
        lookback_calendar_days=2 * window,
        zquant_factor=TURNOVER_RATE,
    )


COUNT_RULE = "NULL unless {window} records in the half year (literal: counts the records there are)"
TURNOVER_VOLUME_DAY = "turnover_rate >= 10 and amount >= 1,000,000 (10亿 CNY)"
XCROSS_DAY = (
    "(high - low) / close <= 3%, |close - pre_close| / pre_close <= 1% (literal: zquant's"
    " (close - close) / close, always 0) and |open - close| / close <= 1%"
)

DECLARATIONS = [
    Factor(
        name="turnover_rate",
        function=turnover_rate,
        inputs=(TURNOVER,),
        unit="% of float shares",
        null_rule="NULL when the day has no turnover_rate",
        description="zquant's turnover_rate default model: the day's daily_basic.turnover_rate",
        zquant_factor=TURNOVER_RATE,
    ),
    Family("turnover_rate_model_ma{window}", _model_ma, MODEL_MA_WINDOWS),
    Family(
        "ma{window}_tr",
        lambda window: _hyper_factor(
            f"ma{window}_tr",
            ma_tr,
            [TURNOVER],
            "% of float shares",
            f"NULL unless {window} turnover_rate values in the half year (literal: 0.0;"
            " rounded to 5 dp)",
            f"mean of the last {window} turnover_rate values in [D - 180 calendar days, D]",
            window=window,
        ),
        ZQUANT_WINDOWS,
    ),
    _hyper_factor(
        "theday_turnover_volume",
        theday_turnover_volume,
        [TURNOVER, AMOUNT],
        "flag (1.0 / 0.0)",
        "NULL when the day has no turnover_rate or amount (literal: 0.0)",
        f"1.0 when on D {TURNOVER_VOLUME_DAY}",
    ),
    Family(
        "total{window}_turnover_volume",
        lambda window: _hyper_factor(
            f"total{window}_turnover_volume",
            total_turnover_volume,
            [TURNOVER, AMOUNT],
            "days",
            COUNT_RULE.format(window=window),
            f"days with {TURNOVER_VOLUME_DAY} among the last {window} turnover_rate records"
            " in [D - 180 calendar days, D]",
            window=window,
        ),
        ZQUANT_WINDOWS,
    ),
    _hyper_factor(
        "theday_xcross",
        theday_xcross,
        PRICES,
        "flag (1 / 0)",
        "NULL when a price of the day is missing (literal: 0)",
        f"1 when on D {XCROSS_DAY}",
    ),
    Family(
        "total{window}_xcross",
        lambda window: _hyper_factor(
            f"total{window}_xcross",
            total_xcross,
            PRICES,
            "days",
            COUNT_RULE.format(window=window),
            f"small-cross days ({XCROSS_DAY}) among the last {window} daily rows with every"
            " price in [D - 180 calendar days, D]",
            window=window,
        ),
        ZQUANT_WINDOWS,
    ),
    _hyper_factor(
        "halfyear_active_times",
        halfyear_active_times,
        [AMOUNT, TURNOVER, TOTAL_MV, CIRC_MV],
        "days",
        "never NULL: a day with a missing input does not count (as zquant's SQL)",
        "days in [D - 180 calendar days, D] with amount > 1,000,000 (10亿 CNY; literal:"
        " > 100,000 = 1亿, zquant's code), turnover_rate >= 10 and total_mv or circ_mv in"
        " [500,000, 2,000,000] (50..200亿 CNY)",
    ),
]
