"""The offline sample market answering tushare queries, shared once per process.

Owns ``SampleMarket`` (the universe and price path cut at ``as_of``, answering
``stock_basic``, ``trade_cal``, ``daily``, ``adj_factor``, ``daily_basic``, ``stk_factor``
and ``stk_factor_pro`` in tushare's wire format, with tushare's parameter rules, and the
financial statements of ``financials``) and ``sample_market()``, which builds one market
per configuration in a process and shares it.
"""

import datetime as dt
import functools
import re
import threading

import numpy as np
import pandas as pd

from zquant_pipelines.constants import LIST_STATUSES, REQUEST_FIELDS
from zquant_pipelines.dates import market_today, parse_tushare_date
from zquant_pipelines.sample_market.calendar import (
    CALENDAR_FIRST_DAY,
    CALENDAR_LAST_DAY,
    LAST_START_DATE,
    SERVED_EXCHANGES,
    exchange_calendar,
    numpy_day,
    yyyymmdd,
)
from zquant_pipelines.sample_market.financials import FinancialStatements
from zquant_pipelines.sample_market.prices import PricePath
from zquant_pipelines.sample_market.technical import (
    ADJUSTMENTS,
    CHUNK_STOCKS,
    INDICATORS,
    PRO_INDICATORS,
    adjusted_indicator_rows,
    pro_name,
)
from zquant_pipelines.sample_market.universe import MAX_N_STOCKS, MIN_N_STOCKS, Universe

DEFAULT_SEED = 7
DEFAULT_N_STOCKS = 320
DEFAULT_START_DATE = "20190102"
_TS_CODE = re.compile(r"^\d{6}\.(SH|SZ|BJ)$")


class SampleMarket:
    """A generated A-share market answering tushare queries, history cut at ``as_of``.

    trade_cal covers CALENDAR_FIRST_DAY..CALENDAR_LAST_DAY; a range reaching beyond gets
    the days inside it. Bars exist from the first open day on or after ``start_date``
    through the last open day on or before ``as_of``. Build through ``sample_market()`` to
    share one instance per configuration in a process.
    """

    def __init__(
        self,
        seed: int = DEFAULT_SEED,
        n_stocks: int = DEFAULT_N_STOCKS,
        start_date: str = DEFAULT_START_DATE,
        as_of: str | dt.date | None = None,
    ):
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed {seed!r} must be a non-negative integer")
        if not isinstance(n_stocks, int) or not MIN_N_STOCKS <= n_stocks <= MAX_N_STOCKS:
            raise ValueError(
                f"n_stocks {n_stocks!r} must be an integer from {MIN_N_STOCKS} to {MAX_N_STOCKS}"
            )
        start = parse_tushare_date(start_date, "start_date")
        if not CALENDAR_FIRST_DAY <= start <= LAST_START_DATE:
            raise ValueError(
                f"start_date {start_date!r} must be from {CALENDAR_FIRST_DAY:%Y%m%d}"
                f" to {LAST_START_DATE:%Y%m%d} (the calendar covers"
                f" {CALENDAR_FIRST_DAY:%Y%m%d}..{CALENDAR_LAST_DAY:%Y%m%d})"
            )
        self.seed, self.n_stocks, self.start_date = seed, n_stocks, start
        self.as_of = _as_of_date(as_of)
        self._universe = _universe(seed, n_stocks, start)
        self.horizon = int(
            np.searchsorted(self._universe.trading_days, numpy_day(self.as_of), "right")
        )
        self._path = PricePath(self._universe, seed, self.horizon)
        self._index_of_code = {code: i for i, code in enumerate(self._universe.codes)}
        self._handlers = {
            "stock_basic": (("ts_code", "list_status", "exchange"), self._stock_basic),
            "trade_cal": (("exchange", "start_date", "end_date", "is_open"), self._trade_cal),
            "daily": (_BAR_PARAMS, self._daily),
            "adj_factor": (_BAR_PARAMS, self._adj_factor),
            "daily_basic": (_BAR_PARAMS, self._daily_basic),
            "stk_factor": (_BAR_PARAMS, self._stk_factor),
            "stk_factor_pro": (_BAR_PARAMS, self._stk_factor_pro),
            **FinancialStatements(self._universe, seed, self.as_of).handlers(),
        }

    @property
    def last_trade_date(self) -> dt.date | None:
        """The newest day with bars: the last open day on or before ``as_of``."""
        if self.horizon == 0:
            return None
        return self._universe.trading_days[self.horizon - 1].astype(dt.date)

    def query(self, api_name: str, **params) -> pd.DataFrame:
        """Answer like tushare: columns REQUEST_FIELDS[api_name], wire-format values.

        ``None`` and empty-string params count as not given, as tushare treats them.
        """
        if api_name not in self._handlers:
            raise ValueError(
                f"api_name {api_name!r} is not served by the sample market;"
                f" it serves {sorted(self._handlers)}"
            )
        allowed, handler = self._handlers[api_name]
        given = {key: value for key, value in params.items() if value is not None and value != ""}
        unknown = sorted(set(given) - set(allowed))
        if unknown:
            raise ValueError(f"{api_name} does not take {unknown}; it takes {list(allowed)}")
        frame = handler(given)
        return frame.loc[:, list(REQUEST_FIELDS[api_name])]

    def _stock_basic(self, given: dict) -> pd.DataFrame:
        u = self._universe
        as_of = self.as_of.strftime("%Y%m%d")
        # A lifecycle day index of len(trading_days) means "never": it maps to no date.
        future = np.append(u.trade_date_strings, "99999999")
        delist_date = future[u.delist_day]
        status = np.where(
            delist_date <= as_of, "D", np.where(future[u.pause_day] <= as_of, "P", "L")
        )
        frame = u.table.assign(
            list_status=status.astype(object),
            delist_date=np.where(status == "D", delist_date, None),
        )
        statuses = _comma_list(given.get("list_status", "L"))
        bad = [s for s in statuses if s not in LIST_STATUSES]
        if bad:
            raise ValueError(f"list_status {bad[0]!r} is not one of {list(LIST_STATUSES)}")
        keep = (frame["list_date"] <= as_of) & frame["list_status"].isin(statuses)
        if "ts_code" in given:
            keep &= frame["ts_code"].isin(_ts_codes(given["ts_code"]))
        if "exchange" in given:
            keep &= frame["exchange"] == _exchange(given["exchange"])
        return frame[keep].reset_index(drop=True)

    def _trade_cal(self, given: dict) -> pd.DataFrame:
        exchange = _exchange(given.get("exchange", "SSE"))
        first = parse_tushare_date(
            given.get("start_date", f"{CALENDAR_FIRST_DAY:%Y%m%d}"), "start_date"
        )
        last = parse_tushare_date(given.get("end_date", f"{CALENDAR_LAST_DAY:%Y%m%d}"), "end_date")
        _check_range(first, last)
        days, is_open, pretrade = exchange_calendar()
        keep = (days >= numpy_day(max(first, CALENDAR_FIRST_DAY))) & (days <= numpy_day(last))
        if "is_open" in given:
            wanted = str(given["is_open"])
            if wanted not in ("0", "1"):
                raise ValueError(f"is_open {given['is_open']!r} must be 0 or 1")
            keep &= is_open == (wanted == "1")
        newest_first = np.flatnonzero(keep)[::-1]
        return pd.DataFrame(
            {
                "exchange": np.full(len(newest_first), exchange, dtype=object),
                "cal_date": yyyymmdd(days[newest_first]),
                "is_open": is_open[newest_first].astype(np.int64),
                "pretrade_date": yyyymmdd(pretrade[newest_first]),
            }
        )

    def _cells(self, given: dict, listed: bool) -> tuple[np.ndarray, np.ndarray]:
        """(day, stock) of every row, newest day first and by ts_code within a day.

        ``listed`` picks the adj_factor rows (every listed day); otherwise traded days only.
        """
        days = self._days(given)
        if "ts_code" in given:
            known = [
                self._index_of_code[c]
                for c in _ts_codes(given["ts_code"])
                if c in self._index_of_code
            ]
            stocks = np.unique(np.array(known, dtype=np.int64))
        else:
            stocks = np.arange(self.n_stocks)
        if listed:
            mask = self._universe.listed(days[:, None], stocks[None, :])
        else:
            mask = self._path.traded[days][:, stocks]
        row, column = np.nonzero(mask)
        return days[row], stocks[column]

    def _days(self, given: dict) -> np.ndarray:
        """Indices of the asked trading days within the history, newest first."""
        trading_days = self._universe.trading_days
        if "trade_date" in given:
            if "start_date" in given or "end_date" in given:
                raise ValueError("give trade_date or start_date/end_date, not both")
            first = last = parse_tushare_date(given["trade_date"], "trade_date")
        else:
            first = parse_tushare_date(
                given.get("start_date", f"{CALENDAR_FIRST_DAY:%Y%m%d}"), "start_date"
            )
            last = parse_tushare_date(
                given.get("end_date", f"{CALENDAR_LAST_DAY:%Y%m%d}"), "end_date"
            )
            _check_range(first, last)
        lo = np.searchsorted(trading_days, numpy_day(first), "left")
        hi = min(np.searchsorted(trading_days, numpy_day(last), "right"), self.horizon)
        return np.arange(hi - 1, lo - 1, -1, dtype=np.int64)

    def _keys(self, day: np.ndarray, stock: np.ndarray) -> dict:
        return {
            "ts_code": self._universe.codes[stock],
            "trade_date": self._universe.trade_date_strings[day],
        }

    def _daily(self, given: dict) -> pd.DataFrame:
        day, stock = self._cells(given, listed=False)
        p = self._path
        open_, high, low, close, pre_close = (
            a[day, stock].astype(np.float64) for a in (p.open, p.high, p.low, p.close, p.pre_close)
        )
        vol = p.vol[day, stock].astype(np.float64)
        average_price = (open_ + high + low + close) / 4 / 100
        return pd.DataFrame(
            {
                **self._keys(day, stock),
                "open": open_ / 100,
                "high": high / 100,
                "low": low / 100,
                "close": close / 100,
                "pre_close": pre_close / 100,
                "change": (close - pre_close) / 100,
                "pct_chg": np.round((close - pre_close) / pre_close * 100, 4),
                "vol": vol,
                # 千元: lots x 100 shares x price / 1000.
                "amount": np.round(vol * average_price / 10, 3),
            }
        )

    def _adj_factor(self, given: dict) -> pd.DataFrame:
        day, stock = self._cells(given, listed=True)
        return pd.DataFrame({**self._keys(day, stock), "adj_factor": self._adj(stock, day)})

    def _adj(self, stock: np.ndarray, day: np.ndarray) -> np.ndarray:
        u = self._universe
        growth = u.events.total_through(self._path.adj_growth, stock, day)
        return np.round(u.initial_adj[stock] * np.exp(growth), 3)

    def _daily_basic(self, given: dict) -> pd.DataFrame:
        u, p = self._universe, self._path
        day, stock = self._cells(given, listed=False)
        close = p.close[day, stock] / 100
        vol = p.vol[day, stock].astype(np.float64)
        multiplier = u.share_multiplier(stock, day)
        total_share = np.round(u.total_share[stock] * multiplier, 4)
        float_share = np.round(u.float_share[stock] * multiplier, 4)
        free_share = np.round(u.free_share[stock] * multiplier, 4)
        total_mv = close * total_share

        dates = u.trading_days[day]
        latest = np.searchsorted(u.report_published, dates, "right") - 1
        annual = u.annual_reports[
            np.searchsorted(u.report_published[u.annual_reports], dates, "right") - 1
        ]
        year_ago = np.searchsorted(u.trading_days, dates - np.timedelta64(365, "D"), "right") - 1
        # Cash paid (万元) in the trailing year, newest payment first.
        payments = u.events.values_between(p.event_cash_paid, stock, year_ago, day)
        last_paid = payments[0]
        paid_year = np.where(np.isnan(last_paid), np.nan, np.nansum(payments, axis=0))
        return pd.DataFrame(
            {
                **self._keys(day, stock),
                "close": close,
                # Turnover in %: lots x 100 / (万股 x 10000) x 100.
                "turnover_rate": np.round(vol / float_share, 4),
                "turnover_rate_f": np.round(vol / free_share, 4),
                "volume_ratio": np.round(vol / self._previous_volume(day, stock), 2),
                "pe": _ratio(total_mv, u.profit_ttm[annual, stock]),
                "pe_ttm": _ratio(total_mv, u.profit_ttm[latest, stock]),
                "pb": _ratio(total_mv, u.net_assets[latest, stock]),
                "ps": _ratio(total_mv, u.revenue_ttm[annual, stock]),
                "ps_ttm": _ratio(total_mv, u.revenue_ttm[latest, stock]),
                "dv_ratio": _ratio(last_paid * 100, total_mv),
                "dv_ttm": _ratio(paid_year * 100, total_mv),
                "total_share": total_share,
                "float_share": float_share,
                "free_share": free_share,
                "total_mv": np.round(total_mv, 4),
                "circ_mv": np.round(close * float_share, 4),
            }
        )

    def _stk_factor(self, given: dict) -> pd.DataFrame:
        day, stock = self._cells(given, listed=False)
        bars = self._daily(given)  # the same cells, in the same order
        adj = self._adj(stock, day)
        return pd.DataFrame(
            {
                **bars.drop(columns="pct_chg"),
                "pct_change": bars["pct_chg"],
                "adj_factor": adj,
                **_adjusted_prices(bars, adj, ("open", "close", "high", "low", "pre_close")),
                **{
                    name: value
                    for (name, _), value in self._technical(
                        INDICATORS, ("qfq",), day, stock
                    ).items()
                },
            }
        )

    def _stk_factor_pro(self, given: dict) -> pd.DataFrame:
        """The bar with hfq and qfq prices, daily_basic's fields, adj_factor and the indicators
        unadjusted, hfq and qfq as of the day; computed for the stocks asked over their history
        through the last day asked (a 250-column panel of the whole market is never held)."""
        day, stock = self._cells(given, listed=False)
        bars = self._daily(given)  # the same cells, in the same order
        basic = self._daily_basic(given)
        adj = self._adj(stock, day)
        return pd.DataFrame(
            {
                **bars,
                **_adjusted_prices(bars, adj, ("open", "high", "low", "close")),
                **basic.drop(columns=["ts_code", "trade_date", "close"]),
                "adj_factor": adj,
                **{
                    pro_name(*key): value
                    for key, value in self._technical(
                        PRO_INDICATORS, ADJUSTMENTS, day, stock
                    ).items()
                },
            }
        )

    def _technical(
        self,
        names: tuple[str, ...],
        adjustments: tuple[str, ...],
        day: np.ndarray,
        stock: np.ndarray,
    ) -> dict[tuple[str, str], np.ndarray]:
        """The technical indicators ``names`` of the cells on each of ``adjustments``' prices
        (technical.py's ``adjusted_indicator_rows``), from the traded history of their stocks
        through the latest of their days, computed on each request CHUNK_STOCKS stocks at a
        time: memory stays bounded (a whole-history panel of 5,000 stocks would be gigabytes)
        and a market that never answers them pays nothing."""
        values = {(name, a): np.empty(len(day)) for name in names for a in adjustments}
        if len(day) == 0:
            return values
        span = day.max() + 1
        stocks = np.unique(stock)
        p = self._path
        for chunk in np.array_split(stocks, -(-len(stocks) // CHUNK_STOCKS)):
            asked = np.flatnonzero(np.isin(stock, chunk))
            column, history_day = np.nonzero(p.traded[:span, chunk].T)  # by stock, by day
            history_stock = chunk[column]
            rows = np.searchsorted(
                history_stock * span + history_day, stock[asked] * span + day[asked]
            )
            order = np.argsort(rows)
            chunk_values = adjusted_indicator_rows(
                names,
                adjustments,
                history_stock,
                *(a[history_day, history_stock] / 100 for a in (p.high, p.low, p.close)),
                adj=self._adj(history_stock, history_day),
                rows=rows[order],
            )
            for key, value in chunk_values.items():
                values[key][asked[order]] = value
        return values

    def _previous_volume(self, day: np.ndarray, stock: np.ndarray) -> np.ndarray:
        """Mean volume of the stock's traded days among the 5 trading days before day."""
        total = np.zeros(len(day))
        count = np.zeros(len(day))
        for back in range(1, 6):
            earlier = np.maximum(day - back, 0)
            counted = (day - back >= 0) & self._path.traded[earlier, stock]
            total += np.where(counted, self._path.vol[earlier, stock], 0)
            count += counted
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)


_BAR_PARAMS = ("ts_code", "trade_date", "start_date", "end_date")


def _adjusted_prices(
    bars: pd.DataFrame, adj: np.ndarray, prices: tuple[str, ...]
) -> dict[str, pd.Series]:
    """The hfq and qfq columns of the bars' ``prices``, ``adj`` their adj_factor."""
    return {
        **{f"{price}_hfq": np.round(bars[price] * adj, 4) for price in prices},
        # qfq as of the row's own day: x adj_factor(D) / adj_factor(D).
        **{f"{price}_qfq": bars[price] for price in prices},
    }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator to 4 dp; NaN where the denominator is not positive."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, np.round(numerator / denominator, 4), np.nan)


def _comma_list(value) -> list[str]:
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _ts_codes(value) -> list[str]:
    codes = _comma_list(value)
    for code in codes:
        if not _TS_CODE.match(code):
            raise ValueError(
                f"ts_code {code!r} is not a code like 600000.SH, 000001.SZ or 830799.BJ"
            )
    return codes


def _exchange(value) -> str:
    if value not in SERVED_EXCHANGES:
        raise ValueError(f"exchange {value!r} is not one of {list(SERVED_EXCHANGES)}")
    return value


def _check_range(first: dt.date, last: dt.date) -> None:
    if first > last:
        raise ValueError(f"start_date {first:%Y%m%d} is after end_date {last:%Y%m%d}")


def _as_of_date(as_of: str | dt.date | None) -> dt.date:
    if as_of is None:
        return market_today()
    if isinstance(as_of, dt.date):
        return as_of
    return parse_tushare_date(as_of, "as_of")


# Markets kept per process. A default market holds ~20 MB, a 5,000-stock one ~300 MB.
_CACHED_MARKETS = 6


@functools.lru_cache(maxsize=_CACHED_MARKETS)
def _universe(seed: int, n_stocks: int, start: dt.date) -> Universe:
    return Universe(seed, n_stocks, start)


_build_lock = threading.Lock()


@functools.lru_cache(maxsize=_CACHED_MARKETS)
def _cached_market(seed: int, n_stocks: int, start_date: str, as_of: dt.date) -> SampleMarket:
    return SampleMarket(seed, n_stocks, start_date, as_of)


def sample_market(
    seed: int = DEFAULT_SEED,
    n_stocks: int = DEFAULT_N_STOCKS,
    start_date: str = DEFAULT_START_DATE,
    as_of: str | dt.date | None = None,
) -> SampleMarket:
    """The market for this configuration, built once per process and shared.

    ``as_of`` (YYYYMMDD or a date) defaults to today in the market's time zone.
    """
    # One build at a time: concurrent callers wait for the first instead of building twice.
    with _build_lock:
        return _cached_market(seed, n_stocks, start_date, _as_of_date(as_of))
