"""Price adjustment at read time: back-adjusted (hfq) and forward-adjusted (qfq) prices.

The warehouse stores raw ``daily`` prices and tushare's cumulative ``adj_factor``; adjusted
prices are computed when read, never stored (see ``adjust_prices`` for why).
"""

import datetime as dt

import numpy as np
import pandas as pd

from zquant_pipelines.factors.panel import DailyPanel, as_date, float_column, key_codes

# Columns in CNY per share; vol, amount and pct_chg are left as they are.
PRICE_COLUMNS = ("open", "high", "low", "close", "pre_close", "change")
ADJUSTMENTS = ("hfq", "qfq")


def adjust_prices(
    daily: pd.DataFrame,
    adj_factor: pd.DataFrame,
    how: str,
    anchor_date: dt.date | None = None,
) -> pd.DataFrame:
    """``daily`` with its prices adjusted for dividends and splits, as of read time.

    ``hfq`` (back-adjusted): price * adj_factor of the same (ts_code, trade_date). The
    factor only grows at each ex-date, so hfq prices never change once written: returns
    over any span are right, but the level is not the traded price.

    ``qfq`` (forward-adjusted): price * adj_factor / adj_factor at ``anchor_date`` (default:
    the latest trade_date in ``daily``), the stock's factor on that day or, suspended, its
    last one before it. Prices on the anchor day equal the traded ones. This is why stored
    qfq goes stale: every new dividend raises the latest factor, which rescales every
    earlier qfq price, so a stored qfq history is wrong from the next ex-date on. Computing
    it here from raw prices and the factors keeps it right for whatever anchor is asked.

    Applied to ``PRICE_COLUMNS`` present in ``daily`` (open, high, low, close, pre_close,
    and change, a price difference); other columns and the row order are unchanged. A row
    without its factor (or a stock without one at the anchor) gets NaN prices.
    """
    if how not in ADJUSTMENTS:
        raise ValueError(f"how must be one of {ADJUSTMENTS}, got {how!r}")
    panel = DailyPanel(daily)
    factor = panel.align(adj_factor, "adj_factor", ["adj_factor"])["adj_factor"]
    if how == "qfq":
        anchor = as_date(anchor_date, "anchor_date") if anchor_date is not None else None
        factor = factor / _anchor_factor(panel, adj_factor, anchor)[panel.stock_ids]
    adjusted = daily.copy()
    for column in PRICE_COLUMNS:
        if column in daily.columns:
            adjusted[column] = float_column(daily, "daily", column) * factor
    return adjusted


def _anchor_factor(
    panel: DailyPanel, adj_factor: pd.DataFrame, anchor: dt.date | None
) -> np.ndarray:
    """Per panel stock: its adj_factor on ``anchor`` or its last before (NaN: none)."""
    per_stock = np.full(len(panel.stocks), np.nan)
    anchor = anchor or (panel.dates[-1] if panel.dates else None)
    if anchor is None:
        return per_stock
    stock_codes, stocks, date_codes, dates = key_codes(adj_factor, "adj_factor")
    values = float_column(adj_factor, "adj_factor", "adj_factor")
    on_or_before = np.asarray([day <= anchor for day in dates], dtype=bool)[date_codes]
    rows = np.flatnonzero(on_or_before & ~np.isnan(values))
    # Sorted by (stock, date), the last row of each stock holds its latest factor.
    date_rank = np.argsort(np.argsort(np.asarray(dates, dtype=object)))[date_codes]
    rows = rows[np.lexsort((date_rank[rows], stock_codes[rows]))]
    latest = rows[np.append(np.diff(stock_codes[rows]) != 0, True)] if len(rows) else rows
    stock_ids = panel.stock_ids_of(stocks)[stock_codes[latest]]
    per_stock[stock_ids[stock_ids >= 0]] = values[latest[stock_ids >= 0]]
    return per_stock
