"""The interface both market sources share: the tushare client and the offline sample market.

Assets and actions ask for a ``MarketSource``; definitions decide which one (tushare when
TUSHARE_TOKEN is set, else the sample market).
"""

import abc

import dagster as dg
import pandas as pd


class MarketSource(dg.ConfigurableResource):
    """A tushare-shaped data source: ``query(api_name, **params)`` -> frame in wire format.

    Abstract (Dagster's resource metaclass derives from ABCMeta): a source without
    ``query`` fails when it is built, not at its first query in a run."""

    @abc.abstractmethod
    def query(self, api_name: str, **params) -> pd.DataFrame:
        """The rows of ``api_name`` for ``params``, columns as tushare sends them."""
