"""The offline sample market (moved into a package; split into its parts next)."""

from zquant_pipelines.sample_market.market import *  # noqa: F403
from zquant_pipelines.sample_market.market import market_today  # noqa: F401
