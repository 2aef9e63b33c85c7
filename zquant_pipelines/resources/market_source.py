"""The interface both market sources share: the tushare client and the offline sample market.

Assets and actions ask for a ``MarketSource``; definitions decide which one (tushare when
TUSHARE_TOKEN is set, else the sample market).
"""

import dagster as dg
import pandas as pd


class MarketSource(dg.ConfigurableResource):
    """A tushare-shaped data source: ``query(api_name, **params)`` -> frame in wire format."""

    def query(self, api_name: str, **params) -> pd.DataFrame:
        raise NotImplementedError(f"{type(self).__name__} does not implement query()")
