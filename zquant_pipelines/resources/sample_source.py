"""The offline market source: the generated sample market behind the MarketSource interface.

A thin Dagster resource over ``zquant_pipelines.sample_market``, which owns the calendar,
the generated stocks and prices, and the query rules. The market for a configuration is
built once per process and shared, so per-day queries cost milliseconds.
"""

import pandas as pd
from pydantic import Field

from zquant_pipelines.resources.market_source import MarketSource
from zquant_pipelines.sample_market import (
    DEFAULT_N_STOCKS,
    DEFAULT_SEED,
    DEFAULT_START_DATE,
    MAX_N_STOCKS,
    MIN_N_STOCKS,
    SampleMarket,
    sample_market,
)


class SampleMarketSource(MarketSource):
    """A deterministic offline A-share market answering tushare queries, with no row limit."""

    seed: int = Field(default=DEFAULT_SEED, description="Seed of the generated market.")
    n_stocks: int = Field(
        default=DEFAULT_N_STOCKS,
        description=f"Stocks ever listed in the market ({MIN_N_STOCKS}..{MAX_N_STOCKS}).",
    )
    start_date: str = Field(
        default=DEFAULT_START_DATE,
        description="First day of the generated history, YYYYMMDD.",
    )
    as_of: str | None = Field(
        default=None,
        description="Last day with bars, YYYYMMDD; unset means today in Asia/Shanghai.",
    )

    def market(self) -> SampleMarket:
        return sample_market(self.seed, self.n_stocks, self.start_date, self.as_of)

    def query(self, api_name: str, **params) -> pd.DataFrame:
        return self.market().query(api_name, **params)
