"""A synthetic market in warehouse form, built with numpy at any size (tests and benchmark).

``synthetic_market`` returns ``daily``, ``adj_factor`` and ``daily_basic`` frames as the
warehouse holds them (tushare columns, ``trade_date`` as ``datetime.date``) with what the
factors must cope with: suspensions (no ``daily`` row), stocks listed or delisted part-way,
ex-dividend days (raw close falls, adj_factor rises, pre_close is the ex-rights reference price),
``adj_factor`` rows on suspended days, calm days that make small crosses, and busy days
that make active days. ``store_market`` writes them, with a calendar, into a warehouse.
"""

import datetime as dt

import numpy as np
import pandas as pd

from zquant_pipelines.resources.warehouse_schema import TABLE_COLUMNS

LONGEST_SUSPENSION = 8


def weekdays(start: dt.date, count: int) -> list[dt.date]:
    days, day = [], start
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def synthetic_market(
    n_stocks: int,
    n_days: int,
    seed: int,
    *,
    first_code: int = 1,
    start: dt.date = dt.date(2024, 1, 2),
    late_listing_share: float = 0.1,
    delisting_share: float = 0.0,
    suspension_rate: float = 0.01,
    dividend_rate: float = 0.004,
    missing_basic_rate: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(daily, adj_factor, daily_basic) for ``n_stocks`` over ``n_days`` weekdays.

    Codes are ``{first_code + i:06d}.SZ``. ``suspension_rate`` is the daily chance that a
    suspension of 1..8 days starts; ``dividend_rate`` the daily chance of an ex-date;
    ``missing_basic_rate`` the chance that a traded day lacks its ``daily_basic`` row;
    ``delisting_share`` the share of stocks whose rows stop for good part-way.
    """
    rng = np.random.default_rng(seed)
    shape = (n_stocks, n_days)
    day_index = np.arange(n_days)

    listed_from = np.where(
        rng.random(n_stocks) < late_listing_share, rng.integers(0, n_days, n_stocks), 0
    )
    listed = day_index[None, :] >= listed_from[:, None]
    if delisting_share:  # drawn only when asked, so other markets keep their numbers
        delisted_from = np.where(
            rng.random(n_stocks) < delisting_share, rng.integers(0, n_days, n_stocks), n_days
        )
        listed &= day_index[None, :] < delisted_from[:, None]
    starts = rng.random(shape) < suspension_rate
    lengths = rng.integers(1, LONGEST_SUSPENSION + 1, shape)
    suspended = np.zeros(shape, dtype=bool)
    for offset in range(min(LONGEST_SUSPENSION, n_days)):
        runs = starts & (lengths > offset)
        suspended[:, offset:] |= runs[:, : n_days - offset]
    traded = listed & ~suspended

    calm = rng.random(shape) < 0.4
    sigma = np.where(calm, 0.004, 0.02)
    hfq_close = 10.0 * np.exp(np.cumsum(np.clip(rng.normal(0.0, sigma), -0.095, 0.095), axis=1))
    dividend = rng.random(shape) < dividend_rate
    adj = rng.uniform(1.0, 5.0, (n_stocks, 1)) * np.cumprod(
        np.where(dividend, 1.0 + rng.uniform(0.02, 0.3, shape), 1.0), axis=1
    )
    adj = np.round(adj, 4)
    close = np.round(hfq_close * rng.uniform(1.0, 30.0, (n_stocks, 1)) / adj, 2).clip(0.01)

    # pre_close: the previous trading day's close at today's share basis (ex-rights price).
    last_traded = np.maximum.accumulate(np.where(traded, day_index, -1), axis=1)
    previous = np.concatenate([np.full((n_stocks, 1), -1), last_traded[:, :-1]], axis=1)
    has_previous = previous >= 0
    rows = np.arange(n_stocks)[:, None]
    previous_close = close[rows, np.maximum(previous, 0)] * adj[rows, np.maximum(previous, 0)]
    pre_close = np.where(
        has_previous, np.round(previous_close / adj, 2), np.round(close / 1.01, 2)
    ).clip(0.01)
    intraday = np.where(calm, 0.003, 0.015)
    open_ = np.round(pre_close * (1.0 + rng.normal(0.0, intraday)), 2).clip(0.01)
    high = np.round(np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0, intraday))), 2)
    low = np.round(np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0, intraday))), 2)
    vol = np.round(rng.lognormal(11.0, 1.0, shape), 2)
    amount = np.round(rng.lognormal(np.log(4e5), 1.0, shape), 3)
    turnover_rate = np.round(rng.lognormal(1.0, 1.0, shape), 4)

    codes = np.asarray([f"{first_code + i:06d}.SZ" for i in range(n_stocks)], dtype=object)
    dates = np.asarray(weekdays(start, n_days), dtype=object)
    # Long rows by date then stock, as a by-date sync writes them.
    day_of, stock_of = np.nonzero(traded.T)
    daily = pd.DataFrame(
        {
            "ts_code": codes[stock_of],
            "trade_date": dates[day_of],
            "open": open_[stock_of, day_of],
            "high": high[stock_of, day_of],
            "low": low[stock_of, day_of],
            "close": close[stock_of, day_of],
            "pre_close": pre_close[stock_of, day_of],
            "change": np.round(close - pre_close, 2)[stock_of, day_of],
            "pct_chg": np.round((close / pre_close - 1.0) * 100.0, 4)[stock_of, day_of],
            "vol": vol[stock_of, day_of],
            "amount": amount[stock_of, day_of],
        }
    )
    has_basic = traded & (rng.random(shape) >= missing_basic_rate)
    basic_day, basic_stock = np.nonzero(has_basic.T)
    # Drawn last so the other columns keep their numbers. Market values in 10k CNY (万元)
    # around 100亿, so some stocks cross the 50..200亿 bounds of zquant's half-year activity
    # count as their price moves.
    total_mv = np.round(rng.lognormal(np.log(1e6), 0.6, (n_stocks, 1)) * hfq_close / 10.0, 2)
    circ_mv = np.round(total_mv * rng.uniform(0.3, 1.0, (n_stocks, 1)), 2)
    daily_basic = pd.DataFrame(
        {
            "ts_code": codes[basic_stock],
            "trade_date": dates[basic_day],
            "close": close[basic_stock, basic_day],
            "turnover_rate": turnover_rate[basic_stock, basic_day],
            "total_mv": total_mv[basic_stock, basic_day],
            "circ_mv": circ_mv[basic_stock, basic_day],
        }
    )
    adj_day, adj_stock = np.nonzero(listed.T)
    adj_factor = pd.DataFrame(
        {
            "ts_code": codes[adj_stock],
            "trade_date": dates[adj_day],
            "adj_factor": adj[adj_stock, adj_day],
        }
    )
    return daily, adj_factor, daily_basic


def store_market(warehouse, daily, adj_factor, daily_basic) -> list[dt.date]:
    """Write the three frames (missing columns NULL) and an SSE calendar over their days
    (weekdays open) into ``warehouse``, each table in one bulk load; the open days."""
    days = sorted(set(daily["trade_date"]))
    for table, frame in (
        ("daily", daily),
        ("adj_factor", adj_factor),
        ("daily_basic", daily_basic),
    ):
        full = frame.reindex(columns=TABLE_COLUMNS[table])
        warehouse.replace_partitions(table, full, sorted(set(frame["trade_date"])))
    calendar = pd.DataFrame({"cal_date": pd.date_range(days[0], days[-1], freq="D").date})
    calendar["exchange"] = "SSE"
    calendar["is_open"] = [int(day.weekday() < 5) for day in calendar["cal_date"]]
    calendar["pretrade_date"] = None
    warehouse.upsert("trade_cal", calendar[list(TABLE_COLUMNS["trade_cal"])])
    return days
