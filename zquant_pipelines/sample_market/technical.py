"""The sample market's technical indicators: tushare ``stk_factor``'s and ``stk_factor_pro``'s.

tushare computes stk_factor's indicators on qfq prices as of each day ("a snapshot of that
day, not updated later"): the series a day D sees is the hfq one (price x adj_factor) over
adj_factor(D). KDJ, RSI and CCI do not change when every price is scaled; MACD, BOLL, MA,
EMA and ATR scale with it (``PRICE_LEVEL``), so each indicator is computed once over a
stock's hfq history and the price-level ones are divided by the day's adj_factor.
stk_factor_pro carries each indicator three times: on the unadjusted prices (_bfq), on the
hfq ones (_hfq) and on the qfq ones as of the day (_qfq, from the hfq value as above).

tushare does not publish its formulas; these are the usual ones of Chinese charting
software, with the parameters tushare's pages name: MACD(12, 26, 9) with DIF = EMA12 -
EMA26, DEA = EMA9(DIF), MACD = 2 (DIF - DEA); KDJ(9, 3, 3) with K and D the SMA(X, 3, 1) of
RSV and K, J = 3K - 2D; RSI(6, 12, 24) with SMA(X, N, 1) of the gains over that of the
absolute changes; BOLL(20, 2) with the population standard deviation; CCI(14) with the
typical price's mean absolute deviation; MA(N) the mean of N closes, EMA(N) the exponential
average of span N; ATR(20) the mean of 20 true ranges (high - low widened to the previous
close). SMA(X, N, 1) is an exponential average with weight 1/N; every exponential average
starts at its first value. Windows run over the stock's traded days (a suspended day has no
bar); a window not yet full uses the days there are. Vectorised over a few hundred stocks at a time
(numpy: each stock's traded days side by side).
"""

from collections.abc import Iterable

import numpy as np

MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
KDJ_WINDOW, KDJ_SMOOTHING = 9, 3
RSI_WINDOWS = (6, 12, 24)
BOLL_WINDOW, BOLL_WIDTH = 20, 2.0
CCI_WINDOW, CCI_SCALE = 14, 0.015
MA_WINDOWS = (5, 10, 20, 30, 60, 90, 250)
ATR_WINDOW = 20
# RSV when the window's high equals its low (no range): neutral.
FLAT_RSV = 50.0
DECIMALS = 4
# Stocks computed together: bounds the memory (a few MB per series and adjustment).
CHUNK_STOCKS = 200

# stk_factor's indicators, in its order (the names every indicator is computed under).
INDICATORS = (
    "macd_dif",
    "macd_dea",
    "macd",
    "kdj_k",
    "kdj_d",
    "kdj_j",
    *(f"rsi_{window}" for window in RSI_WINDOWS),
    "boll_upper",
    "boll_mid",
    "boll_lower",
    "cci",
)
# stk_factor_pro's indicator families, each under the three adjustments.
PRO_INDICATORS = (
    *(f"ma_{window}" for window in MA_WINDOWS),
    *(f"ema_{window}" for window in MA_WINDOWS),
    *INDICATORS,
    "atr",
)
ADJUSTMENTS = ("bfq", "hfq", "qfq")
PRICE_LEVEL = frozenset(
    {
        "macd_dif",
        "macd_dea",
        "macd",
        "boll_upper",
        "boll_mid",
        "boll_lower",
        "atr",
        *(f"{family}_{window}" for family in ("ma", "ema") for window in MA_WINDOWS),
    }
)


def pro_name(indicator: str, adjustment: str) -> str:
    """stk_factor_pro's column of an indicator: the adjustment before a window (ma_qfq_5,
    rsi_qfq_6), after the name otherwise (macd_dif_qfq); KDJ's J is kdj_qfq."""
    if indicator == "kdj_j":
        return f"kdj_{adjustment}"
    family, _, window = indicator.partition("_")
    if family in ("ma", "ema", "rsi"):
        return f"{family}_{adjustment}_{window}"
    return f"{indicator}_{adjustment}"


def indicator_rows(
    names: Iterable[str],
    stock: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    rows: np.ndarray,
) -> dict[str, np.ndarray]:
    """The indicators ``names`` of the cells ``rows`` (sorted indices into the cells).

    The cells are every traded day of some stocks, stock by stock, each in day order: the
    indicators of a cell need its stock's history before it. The prices may carry leading
    axes (one per price adjustment, say); the values keep them. Only the rows asked are
    kept, so a request for one day of the market holds one value per stock per name.
    """
    names = tuple(names)
    out = {name: np.empty((*close.shape[:-1], len(rows))) for name in names}
    firsts = np.flatnonzero(np.diff(stock, prepend=-1))
    bounds = [*firsts[::CHUNK_STOCKS], len(stock)]
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        first, last = np.searchsorted(rows, [start, end])
        if first == last:
            continue
        part = slice(start, end)
        panel = _Panel(stock[part])
        values = indicators(names, *(panel.of(a[..., part]) for a in (high, low, close)))
        picked = rows[first:last] - start
        for name in names:
            out[name][..., first:last] = panel.cells(values[name], picked)
    return out


class _Panel:
    """Cells of a few stocks (stock by stock, each in day order) laid out as an array with a
    row per stock and its traded days left-aligned along the last axis (NaN after its last
    day), so that every indicator is a few array operations over all stocks at once."""

    def __init__(self, stock: np.ndarray):
        starts = np.diff(stock, prepend=-1) != 0
        firsts = np.flatnonzero(starts)
        self.row = np.cumsum(starts) - 1
        self.position = np.arange(len(stock)) - firsts[self.row]
        self.shape = (len(firsts), int(self.position.max()) + 1)

    def of(self, values: np.ndarray) -> np.ndarray:
        panel = np.full((*values.shape[:-1], *self.shape), np.nan)
        panel[..., self.row, self.position] = values
        return panel

    def cells(self, panel: np.ndarray, picked: np.ndarray) -> np.ndarray:
        return panel[..., self.row[picked], self.position[picked]]


def indicators(
    names: tuple[str, ...], high: np.ndarray, low: np.ndarray, close: np.ndarray
) -> dict[str, np.ndarray]:
    """The indicators ``names`` (INDICATORS' and PRO_INDICATORS' names) of price panels."""
    values: dict[str, np.ndarray] = {}
    for name in names:
        if name in values:
            continue
        family, _, window = name.rpartition("_")
        if name.startswith("macd"):
            values |= macd(close)
        elif name.startswith("kdj_"):
            values |= kdj(high, low, close)
        elif name.startswith("boll_"):
            values |= boll(close)
        elif name == "cci":
            values[name] = cci(high, low, close)
        elif name == "atr":
            values[name] = atr(high, low, close, ATR_WINDOW)
        elif family == "rsi":
            values[name] = rsi(close, int(window))
        elif family == "ma":
            values[name] = moving_mean(close, int(window))
        elif family == "ema":
            values[name] = ema(close, 2 / (int(window) + 1))
        else:
            raise ValueError(f"indicator {name!r} is not one the sample market computes")
    return values


# -- one function per indicator, over panels (time along the last axis) ------------------


def ema(series: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential average with weight ``alpha``, from the first value that is not NaN (the
    only NaNs of a panel are leading ones and the padding after a stock's last day)."""
    by_day = np.ascontiguousarray(np.moveaxis(series, -1, 0))  # a day's values side by side
    out = np.empty_like(by_day)
    average = np.full(by_day.shape[1:], np.nan)
    for t, value in enumerate(by_day):
        average = np.where(np.isnan(average), value, average + alpha * (value - average))
        out[t] = average
    return np.moveaxis(out, 0, -1)


def previous(series: np.ndarray) -> np.ndarray:
    """The value of the stock's previous traded day (NaN on its first)."""
    out = np.full_like(series, np.nan)
    out[..., 1:] = series[..., :-1]
    return out


def _window_counts(length: int, window: int) -> np.ndarray:
    """Days in each window: fewer while the history is shorter than the window."""
    return np.minimum(np.arange(1, length + 1), window)


def moving_mean(series: np.ndarray, window: int) -> np.ndarray:
    """Mean over the last ``window`` traded days (of those there are)."""
    total = np.cumsum(series, axis=-1)
    total[..., window:] = total[..., window:] - total[..., :-window].copy()
    return total / _window_counts(series.shape[-1], window)


def moving_std(series: np.ndarray, window: int) -> np.ndarray:
    """Population standard deviation over the last ``window`` traded days."""
    # Shifted by each stock's first value: the variance is the same, the sums smaller.
    centred = series - series[..., :1]
    mean = moving_mean(centred, window)
    return np.sqrt(np.clip(moving_mean(centred**2, window) - mean**2, 0, None))


def _moving_extreme(series: np.ndarray, window: int, pick, fill: float) -> np.ndarray:
    padded = np.concatenate([np.full((*series.shape[:-1], window - 1), fill), series], axis=-1)
    return pick(np.lib.stride_tricks.sliding_window_view(padded, window, axis=-1), axis=-1)


def moving_min(series: np.ndarray, window: int) -> np.ndarray:
    return _moving_extreme(series, window, np.min, np.inf)


def moving_max(series: np.ndarray, window: int) -> np.ndarray:
    return _moving_extreme(series, window, np.max, -np.inf)


def macd(close: np.ndarray) -> dict[str, np.ndarray]:
    dif = ema(close, 2 / (MACD_FAST + 1)) - ema(close, 2 / (MACD_SLOW + 1))
    dea = ema(dif, 2 / (MACD_SIGNAL + 1))
    return {"macd_dif": dif, "macd_dea": dea, "macd": 2 * (dif - dea)}


def kdj(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> dict[str, np.ndarray]:
    lowest, highest = moving_min(low, KDJ_WINDOW), moving_max(high, KDJ_WINDOW)
    span = highest - lowest
    with np.errstate(invalid="ignore", divide="ignore"):
        rsv = np.where(span > 0, (close - lowest) / span * 100, FLAT_RSV)
    rsv[np.isnan(close)] = np.nan  # the padding stays padding
    k = ema(rsv, 1 / KDJ_SMOOTHING)
    d = ema(k, 1 / KDJ_SMOOTHING)
    return {"kdj_k": k, "kdj_d": d, "kdj_j": 3 * k - 2 * d}


def rsi(close: np.ndarray, window: int) -> np.ndarray:
    change = close - previous(close)
    average_size = ema(np.abs(change), 1 / window)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(
            average_size > 0, ema(np.clip(change, 0, None), 1 / window) / average_size * 100, np.nan
        )


def boll(close: np.ndarray) -> dict[str, np.ndarray]:
    mid = moving_mean(close, BOLL_WINDOW)
    width = BOLL_WIDTH * moving_std(close, BOLL_WINDOW)
    return {"boll_upper": mid + width, "boll_mid": mid, "boll_lower": mid - width}


def cci(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    typical = (high + low + close) / 3
    mean = moving_mean(typical, CCI_WINDOW)
    deviation = np.zeros_like(typical)
    for back in range(CCI_WINDOW):
        earlier = np.full_like(typical, np.nan)
        earlier[..., back:] = typical[..., : typical.shape[-1] - back]
        deviation += np.nan_to_num(np.abs(earlier - mean))
    mean_deviation = deviation / _window_counts(typical.shape[-1], CCI_WINDOW)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean_deviation > 0, (typical - mean) / (CCI_SCALE * mean_deviation), np.nan)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """Mean true range: high - low widened to the previous close (none on the first day)."""
    before = previous(close)
    true_range = np.fmax(high - low, np.fmax(np.abs(before - high), np.abs(before - low)))
    return moving_mean(true_range, window)


def adjusted_indicator_rows(
    names: Iterable[str],
    adjustments: Iterable[str],
    stock: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    adj: np.ndarray,
    rows: np.ndarray,
) -> dict[tuple[str, str], np.ndarray]:
    """The indicators ``names`` of the cells ``rows`` of a traded history (as
    ``indicator_rows`` takes it; prices unadjusted, ``adj`` their adj_factor), by (name,
    adjustment) for each of ``adjustments`` (``ADJUSTMENTS``): on unadjusted prices, on hfq
    ones, and on qfq ones as of each cell's day (from the hfq value)."""
    adjustments = tuple(adjustments)
    # Unadjusted prices beside the hfq ones when asked: one pass computes both.
    scales = (1.0, adj) if "bfq" in adjustments else (adj,)
    values = indicator_rows(
        names, stock, *(np.stack([a * scale for scale in scales]) for a in (high, low, close)), rows
    )
    day_adj = adj[rows]
    out = {}
    for name, value in values.items():
        hfq = value[-1]
        # value[0] is the unadjusted one where bfq is asked (read only then).
        by_adjustment = {
            "bfq": value[0],
            "hfq": hfq,
            "qfq": hfq / day_adj if name in PRICE_LEVEL else hfq,
        }
        for adjustment in adjustments:
            out[name, adjustment] = np.round(by_adjustment[adjustment], DECIMALS)
    return out
