"""Report-period assets: the financial statements, one partition per quarter end.

``income``, ``balancesheet``, ``cashflow`` and ``fina_indicator`` (declared in
datasets/financials.py), partitioned by report period with quarter-end keys such as
2026-09-30 (from the first quarter end on or after ZQUANT_PARTITIONS_START to the latest one
passed). A partition's materialization syncs that period (sync/financials.py: whole market
through the *_vip endpoint, per stock when tushare refuses it) and shows the rows it added
and changed. Announcements of a quarter arrive over months, so the revisions schedule
re-checks the last four periods (ZQUANT_REVISED_PERIODS) every week: each run's figures are
that week's revisions.
"""

import datetime as dt

import dagster as dg

from zquant_pipelines.assets.market import assets_in_declaration_order, stock_basic
from zquant_pipelines.assets.partitions import (
    partition_date,
    partition_run_requests,
    partitions_start,
)
from zquant_pipelines.constants import DATASETS, MARKET_TIMEZONE, REPORT_PERIOD_APIS, TABLE_KEYS
from zquant_pipelines.datasets import Partitioning
from zquant_pipelines.dates import quarter_end
from zquant_pipelines.resources.market_source import MarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.sync import financials as sync

FINANCIALS_GROUP = "financials"
FINANCIAL_STATEMENTS_JOB_NAME = "financial_statements_job"
# Saturdays 09:00 Asia/Shanghai: after a week of announcements, before the next one.
REVISIONS_CRON = "0 9 * * 6"

CheckOutcome = tuple[bool, dict]


def first_report_period(start: str) -> str:
    """The first quarter end on or after the partitions' start (an ISO date)."""
    day = partition_date(start)
    return f"{quarter_end(day.year, (day.month - 1) // 3):%Y-%m-%d}"


# The window [quarter end, next quarter end) is keyed by its start; end_offset=1 makes the
# latest quarter end passed a partition as soon as it has passed.
report_period_partitions = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 0 L 3,6,9,12 *",
    start=first_report_period(partitions_start()),
    fmt="%Y-%m-%d",
    timezone=MARKET_TIMEZONE,
    end_offset=1,
)


def no_duplicate_keys(warehouse: Warehouse, table: str, period: dt.date) -> CheckOutcome:
    keys = ", ".join(TABLE_KEYS[table])
    duplicates = warehouse.read_frame(
        f"SELECT {keys}, COUNT(*) AS n FROM {table} WHERE end_date = :period"
        f" GROUP BY {keys} HAVING COUNT(*) > 1",
        {"period": period},
    )
    sample = duplicates.head(5).astype(str).to_dict("records")
    return duplicates.empty, {"duplicate_keys": len(duplicates), "sample": sample}


def stocks_vs_listed(warehouse: Warehouse, table: str, period: dt.date) -> CheckOutcome:
    """The period's stocks are stocks stock_basic lists at the period end (a statement of
    an unknown stock means a stale stock list); how many of those reported so far."""
    counted = warehouse.read_frame(
        f"SELECT COUNT(DISTINCT f.ts_code) AS stocks,"
        f" COUNT(DISTINCT CASE WHEN s.ts_code IS NULL OR s.list_date > :period"
        f"  OR s.delist_date <= :period THEN f.ts_code END) AS unlisted,"
        f" (SELECT COUNT(*) FROM stock_basic b WHERE b.list_date <= :period"
        f"  AND (b.delist_date IS NULL OR b.delist_date > :period)) AS listed"
        f" FROM {table} f LEFT JOIN stock_basic s ON s.ts_code = f.ts_code"
        f" WHERE f.end_date = :period",
        {"period": period},
    ).iloc[0]
    stocks, unlisted, listed = (int(counted[name]) for name in ("stocks", "unlisted", "listed"))
    return unlisted == 0, {
        "stocks": stocks,
        "listed_at_period_end": listed,
        "not_listed_at_period_end": unlisted,
        "reported_share": stocks / listed if listed else 0.0,
    }


CHECKS = {"no_duplicate_keys": no_duplicate_keys, "stocks_vs_listed": stocks_vs_listed}
CHECK_DESCRIPTIONS = {
    "no_duplicate_keys": "No two rows of the period share the table's key (a version).",
    "stocks_vs_listed": "Every stock of the period is listed at its end per stock_basic;"
    " shows how many of the listed stocks have reported so far (announcements arrive over"
    " months, so a short period is no failure).",
}


def check_specs_for(table: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(name=name, asset=table, description=CHECK_DESCRIPTIONS[name])
        for name in DATASETS[table].checks
    ]


def run_checks(
    table: str, warehouse: Warehouse, periods: list[dt.date]
) -> list[dg.AssetCheckResult]:
    """Each check of the table over the periods a run wrote: passed if it passed on every
    one, with each period's figures."""
    results = []
    for name in DATASETS[table].checks:
        outcomes = {
            f"{period:%Y-%m-%d}": CHECKS[name](warehouse, table, period) for period in periods
        }
        results.append(
            dg.AssetCheckResult(
                asset_key=table,
                check_name=name,
                passed=all(passed for passed, _ in outcomes.values()),
                metadata={
                    key: dg.MetadataValue.json(figures) for key, (_, figures) in outcomes.items()
                },
                severity=dg.AssetCheckSeverity.WARN,
            )
        )
    return results


def build_report_period_asset(api_name: str) -> dg.AssetsDefinition:
    """One asset per statement; a range of periods (a backfill) runs as one run, each period
    synced, and shown on its own partition, in turn."""

    @dg.asset(
        name=api_name,
        group_name=FINANCIALS_GROUP,
        kinds={"sql"},
        description=f"{DATASETS[api_name].description} From tushare `{api_name}` (whole"
        f" market: `{api_name}_vip`). Every version is kept; read a day's view with"
        " sync.financials.statements_as_of.",
        partitions_def=report_period_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[stock_basic],
        check_specs=check_specs_for(api_name),
    )
    def report_period_asset(
        context: dg.AssetExecutionContext, market_source: MarketSource, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        periods = []
        for key in context.partition_keys:
            period = partition_date(key)
            result = sync.sync_report_period(market_source, warehouse, api_name, period)
            context.log.info(
                f"{api_name} {key} ({result.mode}, {result.api_calls} API call(s)):"
                f" {result.rows} rows sent, {result.added} added, {result.changed} changed,"
                f" {result.unchanged} unchanged"
            )
            context.add_asset_metadata(result.figures(), partition_key=key)
            periods.append(period)
        return dg.MaterializeResult(check_results=run_checks(api_name, warehouse, periods))

    return report_period_asset


report_period_assets = assets_in_declaration_order(
    [build_report_period_asset(api_name) for api_name in REPORT_PERIOD_APIS],
    (Partitioning.REPORT_PERIOD,),
)

financial_statements_job = dg.define_asset_job(
    name=FINANCIAL_STATEMENTS_JOB_NAME,
    selection=dg.AssetSelection.assets(*report_period_assets),
    description="The four financial statements of one report period, every version"
    " tushare announced.",
)


def revision_periods(tick: dt.datetime, count: int | None = None) -> list[str]:
    """The partition keys a tick re-checks: the last ``count`` quarter ends by its day
    (default: ZQUANT_REVISED_PERIODS, read at each tick)."""
    if count is None:
        count = sync.rechecked_periods()
    return [f"{period:%Y-%m-%d}" for period in sync.recent_periods(tick.date(), count)]


@dg.schedule(
    name="financial_revisions_schedule",
    job=financial_statements_job,
    cron_schedule=REVISIONS_CRON,
    execution_timezone=MARKET_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"Saturdays 09:00 Asia/Shanghai: re-sync the last ZQUANT_REVISED_PERIODS"
    f" (default {sync.DEFAULT_RECHECKED_PERIODS}) report periods (announcements and"
    " restatements arrive over months); each run shows the rows added and changed.",
)
def financial_revisions_schedule(context: dg.ScheduleEvaluationContext):
    tick = context.scheduled_execution_time
    return partition_run_requests(revision_periods(tick), tick)


def build_financial_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=report_period_assets,
        jobs=[financial_statements_job],
        schedules=[financial_revisions_schedule],
    )
