"""The offline sample market: a deterministic generated A-share market served like tushare.

``SampleMarketSource`` (resources/sample_source.py) is its Dagster resource; benchmarks
build a 5,000-stock market directly with ``sample_market(n_stocks=5000)``. Plain numpy and
pandas (no Dagster), in six parts, each importing only the ones before it:

- ``calendar``: the exchange closures (data) and the open days;
- ``universe``: the stocks: boards, codes, names, listings, delistings, pauses,
  suspensions, shares, fundamentals, dividends and bonus shares;
- ``prices``: the price path: daily bars and ex-right adjustments;
- ``technical``: stk_factor's and stk_factor_pro's indicators over the price path;
- ``financials``: the financial statements (income, balancesheet, cashflow,
  fina_indicator and their *_vip variants), with restatements and late announcements;
- ``market``: ``SampleMarket``, the answers to ``stock_basic``, ``trade_cal``, ``daily``,
  ``adj_factor``, ``daily_basic``, ``stk_factor`` and ``stk_factor_pro`` in tushare's wire
  format, and ``sample_market()``.

A market is a pure function of (seed, n_stocks, start_date); ``as_of`` only cuts the
history at the last open day on or before it. Random draws for day t happen in day order
whatever the horizon, so a day's values depend neither on what was asked before nor on how
far the history reaches.
"""

from zquant_pipelines.sample_market.calendar import EXCHANGE_CLOSURES
from zquant_pipelines.sample_market.market import (
    DEFAULT_N_STOCKS,
    DEFAULT_SEED,
    DEFAULT_START_DATE,
    SampleMarket,
    market_today,
    sample_market,
)
from zquant_pipelines.sample_market.universe import MAX_N_STOCKS, MIN_N_STOCKS

__all__ = [
    "DEFAULT_N_STOCKS",
    "DEFAULT_SEED",
    "DEFAULT_START_DATE",
    "EXCHANGE_CLOSURES",
    "MAX_N_STOCKS",
    "MIN_N_STOCKS",
    "SampleMarket",
    # Not the market's own: zquant_pipelines.dates owns it; tests import it from here.
    "market_today",
    "sample_market",
]
