"""The trading-day partitions shared by the market and factor assets, and the runs a
schedule asks for partitions (of trading days and report periods alike).

Partitions are weekdays (keys are ISO dates such as 2026-02-27); a weekday holiday is a
partition that costs no API call. The current day is included (end_offset=1) so the
after-close schedule can fill today's partition.
"""

import datetime as dt
import os
from collections.abc import Mapping

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


def partition_run_requests(keys: list[str], tick: dt.datetime) -> list[dg.RunRequest]:
    """A schedule tick's run of each partition of ``keys``: the run key (partition@tick's
    day) keeps a tick evaluated again from asking for the same runs twice."""
    return [dg.RunRequest(run_key=f"{key}@{tick:%Y-%m-%d}", partition_key=key) for key in keys]


def partition_date(partition_key: str) -> dt.date:
    return dt.datetime.strptime(partition_key, PARTITION_DATE_FORMAT).date()


def partition_dates(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The days a (possibly ranged, single-run backfill) materialization covers."""
    return [partition_date(key) for key in context.partition_keys]


def add_partition_figures(
    context: dg.AssetExecutionContext,
    result: SyncResult,
    more: Mapping[dt.date, dict] | None = None,
) -> None:
    """Give each partition of the run its own day's figures (and ``more`` of that day): a
    ranged run materializes every partition in it, and metadata of the whole run would show
    its totals on each day."""
    for key in context.partition_keys:
        day = partition_date(key)
        figures = result.day_figures(day) | (more or {}).get(day, {})
        context.add_asset_metadata(figures, partition_key=key)
