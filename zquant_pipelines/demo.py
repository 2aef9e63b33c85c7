"""`make run`: the main job over the most recent trading days, then a short summary.

Runs through Dagster with the instance in DAGSTER_HOME (so the runs show in `make dev`),
on the resources the environment picks (the offline sample market unless TUSHARE_TOKEN
is set). A second call finds the days already done and only prints the summary.
"""

import datetime as dt
import os

import dagster as dg
import sqlalchemy as sa

# Private module, but it is where Dagster names the tags it reads.
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from zquant_pipelines.assets.definitions import MARKET_DATA_JOB_NAME
from zquant_pipelines.assets.factors import factor_daily
from zquant_pipelines.assets.market import stock_basic, trade_cal, trading_day_assets
from zquant_pipelines.assets.partitions import PARTITION_DATE_FORMAT, trading_day_partitions
from zquant_pipelines.constants import TABLE_KEYS
from zquant_pipelines.dates import market_today
from zquant_pipelines.instance_home import prepare_home
from zquant_pipelines.sync.market import REFERENCE_EXCHANGE

DEFAULT_TRADING_DAYS = 20
# The summary is the output; Dagster's per-event console lines are in the UI.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
SUMMARY_FACTOR_COLUMNS = ("turnover_rate_ma_5", "turnover_rate_ma_20", "momentum_5")


def recent_trading_days(warehouse, count: int, today: dt.date) -> list[dt.date]:
    frame = warehouse.read_frame(
        "SELECT cal_date FROM trade_cal WHERE exchange = :exchange AND is_open = 1"
        " AND cal_date <= :today ORDER BY cal_date DESC LIMIT :n",
        {"exchange": REFERENCE_EXCHANGE, "today": today, "n": count},
    )
    return sorted(frame["cal_date"])


def calendar_covers(warehouse, today: dt.date) -> bool:
    frame = warehouse.read_frame(
        "SELECT COUNT(*) AS n FROM trade_cal WHERE cal_date = :today", {"today": today}
    )
    return int(frame["n"].iloc[0]) > 0


def run_demo(defs: dg.Definitions, trading_days: int = DEFAULT_TRADING_DAYS) -> dict:
    """Sync reference data and the last ``trading_days`` open days; return the summary."""
    instance = dg.DagsterInstance.get()
    today = market_today()
    run_ids = []
    with dg.build_resources({"warehouse": defs.resources["warehouse"]}) as resources:
        warehouse = resources.warehouse
        warehouse.ensure_schema()
        if not calendar_covers(warehouse, today):
            reference = dg.materialize(
                [stock_basic, trade_cal],
                instance=instance,
                resources=defs.resources,
                run_config=QUIET_RUN_CONFIG,
            )
            run_ids.append(reference.run_id)
        days = recent_trading_days(warehouse, trading_days, today)
        first, last = (f"{d:{PARTITION_DATE_FORMAT}}" for d in (days[0], days[-1]))
        wanted = set(
            trading_day_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))
        )
        done = instance.get_materialized_partitions(dg.AssetKey("factor_daily"))
        if not wanted <= done:
            job = defs.resolve_job_def(MARKET_DATA_JOB_NAME)
            # Reference data is fresh (synced above or earlier today): only the days.
            result = job.execute_in_process(
                instance=instance,
                run_config=QUIET_RUN_CONFIG,
                asset_selection=[*(a.key for a in trading_day_assets), factor_daily.key],
                tags={
                    ASSET_PARTITION_RANGE_START_TAG: first,
                    ASSET_PARTITION_RANGE_END_TAG: last,
                },
            )
            run_ids.append(result.run_id)
        return summarize(warehouse, days, run_ids)


def summarize(warehouse, days: list[dt.date], run_ids: list[str]) -> dict:
    window = {"start": days[0], "end": days[-1]}
    rows = {}
    for table in TABLE_KEYS:
        where = (
            " WHERE trade_date BETWEEN :start AND :end" if "trade_date" in TABLE_KEYS[table] else ""
        )
        counted = warehouse.read_frame(f"SELECT COUNT(*) AS n FROM {table}{where}", window)
        rows[table] = int(counted["n"].iloc[0])
    sample = warehouse.read_frame(
        f"SELECT ts_code, trade_date, {', '.join(SUMMARY_FACTOR_COLUMNS)} FROM factor_daily"
        " WHERE trade_date = :end ORDER BY ts_code LIMIT 5",
        window,
    )
    return {
        "trading_days": len(days),
        "first_day": f"{days[0]:%Y-%m-%d}",
        "last_day": f"{days[-1]:%Y-%m-%d}",
        "rows": rows,
        "warehouse": sa.make_url(str(warehouse.url)).render_as_string(hide_password=True),
        "run_ids": run_ids,
        "factor_sample": sample,
    }


def print_summary(summary: dict, dagster_home: str) -> None:
    print(
        f"\nSynced {summary['trading_days']} trading days"
        f" {summary['first_day']} .. {summary['last_day']}"
    )
    print("Rows per table (trading-day tables: within those days):")
    for table, count in summary["rows"].items():
        print(f"  {table:<12} {count:>9,}")
    print(f"Warehouse: {summary['warehouse']}")
    print(f"Dagster instance: {dagster_home}")
    runs = ", ".join(summary["run_ids"]) or "none: every day was already done"
    print(f"Runs this time: {runs}")
    print(f"\nFactors on {summary['last_day']} (first 5 stocks):")
    print(summary["factor_sample"].to_string(index=False))
    print("\nOpen the UI with `make dev`, then http://127.0.0.1:3000")


def main(trading_days: int = DEFAULT_TRADING_DAYS) -> None:
    home = prepare_home()
    os.environ.setdefault("DAGSTER_HOME", str(home))
    from zquant_pipelines.definitions import defs

    print_summary(run_demo(defs, trading_days), str(home))
