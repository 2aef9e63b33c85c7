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

PARTITION_DATE_FORMAT = "%Y-%m-%d"


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
