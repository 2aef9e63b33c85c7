"""The trading-day partitions shared by the market and factor assets.

Partitions are weekdays (keys are ISO dates such as 2026-02-27); a weekday holiday is a
partition that costs no API call. The current day is included (end_offset=1) so the
after-close schedule can fill today's partition.
"""

import datetime as dt
import os

import dagster as dg

from zquant_pipelines.constants import (
    DEFAULT_PARTITIONS_START,
    ENV_PARTITIONS_START,
    MARKET_TIMEZONE,
)
from zquant_pipelines.sync.market import SyncResult

PARTITION_DATE_FORMAT = "%Y-%m-%d"
# The end of each partitioned asset's description: its page shows most partitions missing.
MISSING_HISTORY_NOTE = (
    " Partitions reach back to ZQUANT_PARTITIONS_START, but a day is materialized only once"
    " something syncs it: `make run` the last 20 trading days, the after-close schedule each"
    " new day (and the weekdays of the last 10 it missed). Older days stay missing until a"
    " backfill: Materialize over a partition range in the UI, or the one `dagster job launch`"
    " command (a single ranged run) `make run` prints at its end."
)


def partitions_start() -> str:
    return os.environ.get(ENV_PARTITIONS_START, DEFAULT_PARTITIONS_START)


trading_day_partitions = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 0 * * 1-5",
    start=partitions_start(),
    fmt=PARTITION_DATE_FORMAT,
    timezone=MARKET_TIMEZONE,
    end_offset=1,
)


def partition_date(partition_key: str) -> dt.date:
    return dt.datetime.strptime(partition_key, PARTITION_DATE_FORMAT).date()


def partition_dates(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The days a (possibly ranged, single-run backfill) materialization covers."""
    return [partition_date(key) for key in context.partition_keys]


def add_partition_figures(context: dg.AssetExecutionContext, result: SyncResult) -> None:
    """Give each partition of the run its own day's figures: a ranged run materializes every
    partition in it, and metadata of the whole run would show its totals on each day."""
    for key in context.partition_keys:
        context.add_asset_metadata(result.day_figures(partition_date(key)), partition_key=key)
