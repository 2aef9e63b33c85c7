"""The offline sample market as a MarketSource: the source when TUSHARE_TOKEN is unset.

A thin Dagster resource over the ``zquant_pipelines.sample_market`` package, which owns the
market itself: its calendar, stocks, price path and query rules. The market for a
configuration is built once per process and shared, so per-day queries cost milliseconds.
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
    """The offline sample market (``zquant_pipelines.sample_market``) as a MarketSource.

    Answers tushare queries in tushare's wire format, with no row limit. Deterministic:
    the same seed, n_stocks and start_date give the same market, cut at ``as_of``.
    """

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
        """This configuration's market, built on first use in the process and shared."""
        return sample_market(self.seed, self.n_stocks, self.start_date, self.as_of)

    def query(self, api_name: str, **params) -> pd.DataFrame:
        """Answer from the shared market, as ``SampleMarket.query`` does."""
        return self.market().query(api_name, **params)
