"""The sample market's technical indicators: tushare ``stk_factor``'s, from the price path.

tushare computes stk_factor's indicators on qfq prices as of each day ("a snapshot of that
day, not updated later"): the series a day D sees is the hfq one (price x adj_factor) over
adj_factor(D). KDJ, RSI and CCI do not change when every price is scaled, MACD and BOLL
scale with it, so each indicator is computed once over a stock's hfq history and the
price-level ones are divided by the day's adj_factor.

tushare does not publish its formulas; these are the usual ones of Chinese charting
software: MACD(12, 26, 9) with DIF = EMA12 - EMA26, DEA = EMA9(DIF), MACD = 2 (DIF - DEA);
KDJ(9, 3, 3) with K and D the SMA(X, 3, 1) of RSV and K, J = 3K - 2D; RSI(6, 12, 24) with
SMA(X, N, 1) of the gains over that of the absolute changes; BOLL(20, 2) with the
population standard deviation; CCI(14) with the typical price's mean absolute deviation.
SMA(X, N, 1) is an exponential average with weight 1/N; every exponential average starts
at its first value. Windows run over the stock's traded days (a suspended day has no bar);
a window not yet full uses the days there are. Vectorised over all stocks with pandas'
grouped rolling and exponential windows.
"""

import numpy as np
import pandas as pd

MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
KDJ_WINDOW, KDJ_SMOOTHING = 9, 3
RSI_WINDOWS = (6, 12, 24)
BOLL_WINDOW, BOLL_WIDTH = 20, 2.0
CCI_WINDOW, CCI_SCALE = 14, 0.015
# RSV when the window's high equals its low (no range): neutral.
FLAT_RSV = 50.0
DECIMALS = 4
# Stocks computed together (bounds the memory of the grouped windows).
CHUNK_STOCKS = 100

# The indicators in stk_factor's order, and those in price units (scaled by adj_factor).
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
PRICE_LEVEL = frozenset({"macd_dif", "macd_dea", "macd", "boll_upper", "boll_mid", "boll_lower"})


class TechnicalIndicators:
    """stk_factor's indicators of every traded (day, stock): ``values[name][row_of[day,
    stock]]``. ``stock`` and ``day`` list the traded cells stock by stock, each in day
    order; the prices are unadjusted (CNY) and ``adj`` their adj_factor."""

    def __init__(
        self,
        shape: tuple[int, int],
        stock: np.ndarray,
        day: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        adj: np.ndarray,
    ):
        order = np.lexsort((day, stock))
        if not np.array_equal(order, np.arange(len(order))):
            raise ValueError("cells must come stock by stock, each in day order")
        self.row_of = np.full(shape, -1, dtype=np.int64)
        self.row_of[day, stock] = np.arange(len(day))
        self.values = {name: np.empty(len(day)) for name in INDICATORS}
        # A few hundred stocks at a time: pandas' grouped windows hold several copies of
        # their input, which for a 5,000-stock market would be gigabytes at once.
        firsts = np.flatnonzero(np.diff(stock, prepend=-1))
        bounds = [*firsts[::CHUNK_STOCKS], len(stock)]
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            part = slice(start, end)
            scale = adj[part]
            hfq = _Grouped(stock[part], high[part] * scale, low[part] * scale, close[part] * scale)
            values = {**hfq.macd(), **hfq.kdj(), **hfq.rsi(), **hfq.boll(), "cci": hfq.cci()}
            for name in INDICATORS:
                value = values[name].to_numpy()
                self.values[name][part] = np.round(
                    value / scale if name in PRICE_LEVEL else value, DECIMALS
                )

    def rows(self, day: np.ndarray, stock: np.ndarray) -> dict[str, np.ndarray]:
        """The indicators of the cells (traded ones only), by name."""
        rows = self.row_of[day, stock]
        if (rows < 0).any():
            raise ValueError("stk_factor has rows for traded days only")
        return {name: values[rows] for name, values in self.values.items()}


class _Grouped:
    """One series per stock (rows stock by stock, in day order) and the windows over it."""

    def __init__(self, stock: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray):
        self.stock = stock
        self.high, self.low, self.close = (pd.Series(a) for a in (high, low, close))

    def _by_stock(self, series: pd.Series):
        return series.groupby(self.stock, sort=False)

    @staticmethod
    def _ungrouped(result: pd.Series) -> pd.Series:
        # A grouped window's result is indexed by (stock, row): back to row order.
        return result.droplevel(0).sort_index()

    def ema(self, series: pd.Series, span: int | None = None, alpha: float | None = None):
        return self._ungrouped(
            self._by_stock(series).ewm(span=span, alpha=alpha, adjust=False).mean()
        )

    def rolling(self, series: pd.Series, window: int):
        return self._by_stock(series).rolling(window, min_periods=1)

    def macd(self) -> dict[str, pd.Series]:
        dif = self.ema(self.close, span=MACD_FAST) - self.ema(self.close, span=MACD_SLOW)
        dea = self.ema(dif, span=MACD_SIGNAL)
        return {"macd_dif": dif, "macd_dea": dea, "macd": 2 * (dif - dea)}

    def kdj(self) -> dict[str, pd.Series]:
        lowest = self._ungrouped(self.rolling(self.low, KDJ_WINDOW).min())
        highest = self._ungrouped(self.rolling(self.high, KDJ_WINDOW).max())
        span = highest - lowest
        rsv = ((self.close - lowest) / span.where(span > 0) * 100).fillna(FLAT_RSV)
        k = self.ema(rsv, alpha=1 / KDJ_SMOOTHING)
        d = self.ema(k, alpha=1 / KDJ_SMOOTHING)
        return {"kdj_k": k, "kdj_d": d, "kdj_j": 3 * k - 2 * d}

    def rsi(self) -> dict[str, pd.Series]:
        change = self.close - self._by_stock(self.close).shift(1)
        gain, size = change.clip(lower=0), change.abs()
        return {
            f"rsi_{window}": self.ema(gain, alpha=1 / window)
            / self.ema(size, alpha=1 / window).where(lambda average: average > 0)
            * 100
            for window in RSI_WINDOWS
        }

    def boll(self) -> dict[str, pd.Series]:
        mid = self._ungrouped(self.rolling(self.close, BOLL_WINDOW).mean())
        width = BOLL_WIDTH * self._ungrouped(self.rolling(self.close, BOLL_WINDOW).std(ddof=0))
        return {"boll_upper": mid + width, "boll_mid": mid, "boll_lower": mid - width}

    def cci(self) -> pd.Series:
        typical = (self.high + self.low + self.close) / 3
        mean = self._ungrouped(self.rolling(typical, CCI_WINDOW).mean())
        deviation = pd.Series(0.0, index=typical.index)
        counted = pd.Series(0, index=typical.index)
        for back in range(CCI_WINDOW):
            earlier = self._by_stock(typical).shift(back)
            deviation += (earlier - mean).abs().fillna(0.0)
            counted += earlier.notna()
        mean_deviation = deviation / counted
        return (typical - mean) / (CCI_SCALE * mean_deviation.where(mean_deviation > 0))
