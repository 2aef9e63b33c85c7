"""Definitions of the market-data, factor and screening assets with their job and
after-close schedule, the freshness checks with their sensor, and the task-health asset
with its own job and schedule."""

import dagster as dg

from zquant_pipelines.assets.factors import factor_assets
from zquant_pipelines.assets.freshness import freshness_checks, freshness_sensor
from zquant_pipelines.assets.health import task_health, task_health_job, task_health_schedule
from zquant_pipelines.assets.market import market_assets
from zquant_pipelines.assets.schedules import market_data_after_close_schedule, market_data_job
from zquant_pipelines.assets.screening import screening_assets


def build_asset_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[*market_assets, *factor_assets, *screening_assets, task_health],
        jobs=[market_data_job, task_health_job],
        schedules=[market_data_after_close_schedule, task_health_schedule],
        asset_checks=[freshness_checks],
        sensors=[freshness_sensor],
    )
