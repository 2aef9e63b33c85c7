"""The market-data job and its after-close schedule, which also catches up missed days.

The job materializes the market tables, the factors, the stock screens and the table
statistics of the chosen day(s). A plain cron schedule only launches the latest tick after
the daemon was down; the after-close schedule asks, at every tick, for each recent
trading-day partition that is not done: some trading-day asset of the job was never
materialized for the day, or the latest blocking check that covered the day failed on it (a
short day, stored before the stock list caught up). A day tushare had not published when its
run came fails that run and is never materialized, so the next tick asks for it again.
"""

import dagster as dg

from zquant_pipelines.assets.checks import BLOCKING_CHECKS, CHECKED_FROM, CHECKED_TO, TABLE_CHECKS
from zquant_pipelines.assets.factors import factor_assets
from zquant_pipelines.assets.freshness import freshness_checks
from zquant_pipelines.assets.market import market_assets
from zquant_pipelines.assets.partitions import partition_run_requests, trading_day_partitions
from zquant_pipelines.assets.screening import screening_assets
from zquant_pipelines.constants import MARKET_TIMEZONE
from zquant_pipelines.executors import executor_definition

MARKET_DATA_JOB_NAME = "market_data_job"

# tushare publishes daily bars by 16:00 and daily_basic by 17:00 (Asia/Shanghai).
AFTER_CLOSE_CRON = "0 18 * * 1-5"
# How many recent weekday partitions each tick re-examines (two weeks of downtime).
CATCH_UP_PARTITIONS = 10
# What the job materializes; the schedule's notion of a day done derives from it.
MARKET_DATA_JOB_ASSETS = (*market_assets, *factor_assets, *screening_assets)
# The assets a day is done for once each is materialized with its blocking checks passed:
# every trading-day asset of the job (an asset added to the job counts without more ado).
PROGRESS_ASSETS = tuple(
    key.to_user_string()
    for asset in MARKET_DATA_JOB_ASSETS
    if asset.partitions_def == trading_day_partitions
    for key in asset.keys
)
# How many recent evaluations of each blocking check a tick reads: each run of a day or a
# range adds one, so this reaches back well past the catch-up window.
CHECK_HISTORY_LIMIT = 100

market_data_job = dg.define_asset_job(
    name=MARKET_DATA_JOB_NAME,
    # The freshness checks judge the clock, not the days a run writes: their sensor runs them.
    selection=dg.AssetSelection.assets(*MARKET_DATA_JOB_ASSETS)
    - dg.AssetSelection.checks(freshness_checks),
    description="Reference data, then the trading-day market tables and factors of the"
    " chosen day(s), their stock screens and table statistics. A partition range runs as"
    " one run.",
    # ZQUANT_EXECUTOR: multiprocess by default, celery to spread the steps over workers.
    executor_def=executor_definition(),
)


def failed_blocking_check_days(instance: dg.DagsterInstance, keys: list[str]) -> set[str]:
    """The partition keys whose latest evaluation of some blocking check failed on them."""
    failed: set[str] = set()
    for asset in PROGRESS_ASSETS:
        for check_name in BLOCKING_CHECKS.intersection(TABLE_CHECKS.get(asset, ())):
            undecided = set(keys)
            history = instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(dg.AssetKey(asset), check_name), limit=CHECK_HISTORY_LIMIT
            )
            for record in history:  # newest first
                evaluation = record.evaluation
                if not isinstance(evaluation, dg.AssetCheckEvaluation):
                    continue  # planned, never evaluated: its step failed before the check
                if CHECKED_FROM not in evaluation.metadata:
                    continue  # a run that wrote no open day
                first = evaluation.metadata[CHECKED_FROM].value
                last = evaluation.metadata[CHECKED_TO].value
                covered = {key for key in undecided if first <= key <= last}
                bad_days = evaluation.metadata["bad_days"].value if not evaluation.passed else {}
                failed |= {key for key in covered if key in bad_days}
                undecided -= covered
                if not undecided:
                    break
    return failed


def missing_recent_partitions(instance: dg.DagsterInstance, current_time) -> list[str]:
    """Recent partitions not done: not materialized for every progress asset, or whose
    latest blocking check failed."""
    keys = trading_day_partitions.get_partition_keys(current_time=current_time)
    recent = keys[-CATCH_UP_PARTITIONS:]
    done = set(recent)
    for asset in PROGRESS_ASSETS:
        done &= instance.get_materialized_partitions(dg.AssetKey(asset))
    done -= failed_blocking_check_days(instance, recent)
    return [key for key in recent if key not in done]


@dg.schedule(
    name="market_data_after_close_schedule",
    job=market_data_job,
    cron_schedule=AFTER_CLOSE_CRON,
    execution_timezone=MARKET_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Weekdays 18:00 Asia/Shanghai: sync today's market data and factors, and"
    f" any of the last {CATCH_UP_PARTITIONS} weekday partitions not done (never"
    " materialized, or its row-count check failed).",
)
def market_data_after_close_schedule(context: dg.ScheduleEvaluationContext):
    tick = context.scheduled_execution_time
    missing = missing_recent_partitions(context.instance, tick)
    if not missing:
        return dg.SkipReason(f"the last {CATCH_UP_PARTITIONS} trading-day partitions are done")
    return partition_run_requests(missing, tick)
