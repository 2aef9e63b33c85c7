"""Resources picked from the environment: tushare when TUSHARE_TOKEN is set, else the sample."""

import os

import dagster as dg

from zquant_pipelines.constants import (
    ENV_RATE_LIMIT_URL,
    ENV_TUSHARE_API_URL,
    ENV_TUSHARE_TOKEN,
    ENV_WAREHOUSE_URL,
)
from zquant_pipelines.resources.market_source import MarketSource
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.tushare_client import TushareClient
from zquant_pipelines.resources.warehouse import Warehouse, default_warehouse_url


def market_source_from_env() -> MarketSource:
    if os.environ.get(ENV_TUSHARE_TOKEN):
        # EnvVar keeps the token, a gateway URL's credentials and the Redis URL (its password)
        # out of the UI, run config and logs: Dagster shows the name. Without the Redis URL
        # the budget stays in local files.
        return TushareClient(
            token=dg.EnvVar(ENV_TUSHARE_TOKEN),
            api_url=dg.EnvVar(ENV_TUSHARE_API_URL) if os.environ.get(ENV_TUSHARE_API_URL) else None,
            rate_limit_url=(
                dg.EnvVar(ENV_RATE_LIMIT_URL) if os.environ.get(ENV_RATE_LIMIT_URL) else None
            ),
        )
    return SampleMarketSource()


def warehouse_from_env() -> Warehouse:
    # The URL may hold a password: pass it by name so Dagster never displays it.
    if os.environ.get(ENV_WAREHOUSE_URL):
        return Warehouse(url=dg.EnvVar(ENV_WAREHOUSE_URL))
    return Warehouse(url=default_warehouse_url())


def build_resource_definitions() -> dg.Definitions:
    return dg.Definitions(
        resources={"market_source": market_source_from_env(), "warehouse": warehouse_from_env()}
    )
