"""`make run`: the main job over the most recent trading days, then a short summary.

Runs market_data_job of the code location in workspace.yaml on the instance in DAGSTER_HOME,
as `make dev` would (so the runs show under the job in the UI and can be re-executed
there), on the resources the environment picks (the offline sample market unless
TUSHARE_TOKEN is set). With no daemon alive (`make dev` runs one) the demo takes its runs
from the queue itself. A second call finds the days already done and only prints the
summary.
"""

import datetime as dt
import json
import os
import shlex
import sys

import dagster as dg
import sqlalchemy as sa

# Private module, but it is where Dagster names the tags it reads.
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from zquant_pipelines.assets.factors import factor_daily
from zquant_pipelines.assets.financials import (
    FINANCIAL_STATEMENTS_JOB_NAME,
    report_period_assets,
    revision_periods,
)
from zquant_pipelines.assets.market import stock_basic, trade_cal, trading_day_assets
from zquant_pipelines.assets.partitions import PARTITION_DATE_FORMAT, trading_day_partitions
from zquant_pipelines.assets.schedules import MARKET_DATA_JOB_NAME
from zquant_pipelines.assets.screening import screening_assets
from zquant_pipelines.constants import (
    DEMO_TRADING_DAYS,
    ENV_DAGSTER_HOME,
    ENV_EXECUTOR,
    TABLE_KEYS,
)
from zquant_pipelines.dates import market_today
from zquant_pipelines.instance_home import prepare_home
from zquant_pipelines.operations.base import OperationFailed
from zquant_pipelines.operations.local import QUIET_RUN_CONFIG, LocalOperations
from zquant_pipelines.resources.definitions import warehouse_from_env
from zquant_pipelines.sync.financials import DEFAULT_RECHECKED_PERIODS
from zquant_pipelines.sync.market import REFERENCE_EXCHANGE

# The demo's steps are seconds of work: a process per step costs more than the work itself
# (110 s against 52 s for a first `zquant demo` on a busy two-core machine), so the code
# server the demo starts runs them in the run's process, unless ZQUANT_EXECUTOR says else.
DEMO_EXECUTOR = "in_process"
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


def run_demo(ops: LocalOperations, trading_days: int = DEMO_TRADING_DAYS) -> dict:
    """Sync reference data and the last ``trading_days`` open days; return the summary."""
    today = market_today()
    run_ids = []
    with dg.build_resources({"warehouse": warehouse_from_env()}) as resources:
        warehouse = resources.warehouse
        warehouse.ensure_schema()
        if not calendar_covers(warehouse, today):
            run_ids.append(run_to_success(ops, [stock_basic.key, trade_cal.key]))
        days = recent_trading_days(warehouse, trading_days, today)
        first, last = (f"{d:{PARTITION_DATE_FORMAT}}" for d in (days[0], days[-1]))
        wanted = set(
            trading_day_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))
        )
        done = ops.instance.get_materialized_partitions(dg.AssetKey("factor_daily"))
        if not wanted <= done:
            # Reference data is fresh (synced above or earlier today): only the days.
            days_run = run_to_success(
                ops,
                [
                    *(a.key for a in trading_day_assets),
                    factor_daily.key,
                    *(a.key for a in screening_assets),
                ],
                tags={
                    ASSET_PARTITION_RANGE_START_TAG: first,
                    ASSET_PARTITION_RANGE_END_TAG: last,
                },
            )
            run_ids.append(days_run)
        periods = revision_periods(dt.datetime.combine(today, dt.time()), DEFAULT_RECHECKED_PERIODS)
        done = ops.instance.get_materialized_partitions(report_period_assets[-1].key)
        if not set(periods) <= done:
            # The financial statements of the last four report periods, in one ranged run.
            period_run = run_to_success(
                ops,
                [asset.key for asset in report_period_assets],
                tags={
                    ASSET_PARTITION_RANGE_START_TAG: periods[0],
                    ASSET_PARTITION_RANGE_END_TAG: periods[-1],
                },
                job=FINANCIAL_STATEMENTS_JOB_NAME,
            )
            run_ids.append(period_run)
        return summarize(warehouse, days, run_ids, periods)


def run_to_success(
    ops: LocalOperations,
    assets: list[dg.AssetKey],
    tags: dict[str, str] | None = None,
    job: str = MARKET_DATA_JOB_NAME,
) -> str:
    """A run of ``assets`` in ``job``, followed to its end; its id, or an error."""
    run_id = ops.submit_job_run(job, QUIET_RUN_CONFIG, tags=tags, asset_selection=assets)
    outcome = ops.run_to_end(run_id)
    if outcome.status != dg.DagsterRunStatus.SUCCESS.value:
        raise OperationFailed(
            f"run {run_id} of {job} ended {outcome.status}:"
            f" {outcome.error or 'no error recorded'}; see `zquant history --run {run_id}`"
        )
    return run_id


def backfill_command(before: dt.date) -> str | None:
    """The command that backfills every partition before ``before`` in one queued run, or
    None if there is none. One ranged run, as the assets' single-run backfill policy wants:
    `dagster job backfill` would queue a run per day, some 1,700 since 2020."""
    keys = trading_day_partitions.get_partition_keys_in_range(
        dg.PartitionKeyRange(
            trading_day_partitions.get_first_partition_key(), f"{before:{PARTITION_DATE_FORMAT}}"
        )
    )
    if len(keys) < 2:
        return None
    tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-2]}
    return (
        f"dagster job launch -w workspace.yaml -j {MARKET_DATA_JOB_NAME}"
        f" --tags {shlex.quote(json.dumps(tags))}"
    )


def summarize(warehouse, days: list[dt.date], run_ids: list[str], periods: list[str]) -> dict:
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
        "report_periods": periods,
        "first_day": f"{days[0]:%Y-%m-%d}",
        "last_day": f"{days[-1]:%Y-%m-%d}",
        "rows": rows,
        "warehouse": sa.make_url(str(warehouse.url)).render_as_string(hide_password=True),
        "run_ids": run_ids,
        "factor_sample": sample,
        "backfill": backfill_command(days[0]),
    }


def print_summary(summary: dict, dagster_home: str) -> None:
    print(
        f"\nSynced {summary['trading_days']} trading days"
        f" {summary['first_day']} .. {summary['last_day']}"
    )
    periods = summary["report_periods"]
    print(
        "Rows per table (trading-day tables: within those days; financial statements: every"
        f" version of the report periods {periods[0]} .. {periods[-1]}):"
    )
    for table, count in summary["rows"].items():
        print(f"  {table:<16} {count:>9,}")
    print(f"Warehouse: {summary['warehouse']}")
    print(f"Dagster instance: {dagster_home}")
    runs = ", ".join(summary["run_ids"]) or "none: every day and period was already done"
    print(f"Runs this time: {runs}")
    print(f"\nFactors on {summary['last_day']} (first 5 stocks):")
    print(summary["factor_sample"].to_string(index=False))
    print("\nOpen the UI with `make dev`, then http://127.0.0.1:3000")
    if summary["backfill"]:
        # Otherwise the asset pages show every older partition as missing, as if broken.
        print(
            f"The days before {summary['first_day']} are not synced: their partitions show as"
            " missing. To backfill them, with `make dev` running (its daemon runs the backfill):"
        )
        print(f"  {summary['backfill']}")


def main(trading_days: int = DEMO_TRADING_DAYS) -> int:
    """The demo; the exit code (1: a run failed, said on stderr)."""
    home = prepare_home()
    os.environ.setdefault(ENV_DAGSTER_HOME, str(home))
    os.environ.setdefault(ENV_EXECUTOR, DEMO_EXECUTOR)
    with dg.DagsterInstance.get() as instance, LocalOperations(instance) as ops:
        try:
            summary = run_demo(ops, trading_days)
        except OperationFailed as error:
            print(f"zquant demo: {error}", file=sys.stderr)
            return 1
    print_summary(summary, str(home))
    return 0
