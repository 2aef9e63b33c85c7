"""Definitions of the market-data and factor assets, their job and schedule, and of the
task-health asset with its own job and schedule."""

import dagster as dg

from zquant_pipelines.assets.factors import factor_assets
from zquant_pipelines.assets.health import task_health, task_health_job, task_health_schedule
from zquant_pipelines.assets.market import market_assets
from zquant_pipelines.assets.schedules import build_after_close_schedule
from zquant_pipelines.executors import executor_definition

MARKET_DATA_JOB_NAME = "market_data_job"

market_data_job = dg.define_asset_job(
    name=MARKET_DATA_JOB_NAME,
    selection=dg.AssetSelection.assets(*market_assets, *factor_assets),
    description="Reference data, then the trading-day market tables and factors of the"
    " chosen day(s). A partition range runs as one run.",
    # ZQUANT_EXECUTOR: multiprocess by default, celery to spread the steps over workers.
    executor_def=executor_definition(),
)


def build_asset_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[*market_assets, *factor_assets, task_health],
        jobs=[market_data_job, task_health_job],
        schedules=[build_after_close_schedule(market_data_job), task_health_schedule],
    )
