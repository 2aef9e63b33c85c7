"""The after-close schedule of the market-data job, which also catches up missed days.

A plain cron schedule only launches the latest tick after the daemon was down; this one
asks, at every tick, for each recent trading-day partition that was never materialized.
"""

import dagster as dg

from zquant_pipelines.assets.partitions import trading_day_partitions
from zquant_pipelines.constants import MARKET_TIMEZONE

# tushare publishes daily bars by 16:00 and daily_basic by 17:00 (Asia/Shanghai).
AFTER_CLOSE_CRON = "0 18 * * 1-5"
# How many recent weekday partitions each tick re-examines (two weeks of downtime).
CATCH_UP_PARTITIONS = 10
# The asset whose partitions tell which days are done.
PROGRESS_ASSET = dg.AssetKey("daily")


def missing_recent_partitions(instance: dg.DagsterInstance, current_time) -> list[str]:
    keys = trading_day_partitions.get_partition_keys(current_time=current_time)
    recent = keys[-CATCH_UP_PARTITIONS:]
    done = instance.get_materialized_partitions(PROGRESS_ASSET)
    return [key for key in recent if key not in done]


def build_after_close_schedule(job) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="market_data_after_close_schedule",
        job=job,
        cron_schedule=AFTER_CLOSE_CRON,
        execution_timezone=MARKET_TIMEZONE,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Weekdays 18:00 Asia/Shanghai: sync today's market data and factors, and"
        f" any of the last {CATCH_UP_PARTITIONS} weekday partitions never materialized.",
    )
    def market_data_after_close_schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time
        missing = missing_recent_partitions(context.instance, tick)
        if not missing:
            return dg.SkipReason(f"the last {CATCH_UP_PARTITIONS} trading-day partitions are done")
        return [
            dg.RunRequest(run_key=f"{key}@{tick:%Y-%m-%d}", partition_key=key) for key in missing
        ]

    return market_data_after_close_schedule
