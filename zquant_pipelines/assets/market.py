"""Market-data assets: the reference tables and the trading-day partitioned tables.

Asset keys equal the warehouse tables (tushare's API names). Each asset calls the one sync
function for its API and reports data-quality checks over the days it wrote.
"""

import datetime as dt

import dagster as dg

from zquant_pipelines.assets import checks
from zquant_pipelines.assets.partitions import (
    MISSING_HISTORY_NOTE,
    add_partition_figures,
    partition_date,
    partition_dates,
    partitions_start,
    trading_day_partitions,
)
from zquant_pipelines.assets.progress import StepProgressReporter
from zquant_pipelines.constants import TRADING_DAY_APIS
from zquant_pipelines.dates import market_today
from zquant_pipelines.resources.market_source import MarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.sync import market as sync

# The calendar reaches a year ahead so every schedule tick finds its day in it.
CALENDAR_DAYS_AHEAD = 365
REFERENCE_GROUP = "reference"
MARKET_GROUP = "market"

TRADING_DAY_DESCRIPTIONS = {
    "daily": "Unadjusted daily bars (tushare `daily`): prices in CNY, vol in lots (手),"
    " amount in thousand CNY (千元). No row on a day the stock was suspended.",
    "adj_factor": "Adjustment factors (tushare `adj_factor`): hfq price = price x adj_factor."
    " Rows exist on suspended days too.",
    "daily_basic": "Daily indicators (tushare `daily_basic`): turnover_rate in %, shares in"
    " 10k shares (万股), market values in 10k CNY (万元).",
}


@dg.asset(
    group_name=REFERENCE_GROUP,
    kinds={"sql"},
    description="Every A-share stock, listed (L), delisted (D) and paused (P), from tushare"
    " `stock_basic`; key ts_code.",
)
def stock_basic(market_source: MarketSource, warehouse: Warehouse) -> dg.MaterializeResult:
    result = sync.sync_stock_basic(market_source, warehouse)
    return dg.MaterializeResult(metadata={"rows": result.rows, "api_calls": result.api_calls})


@dg.asset(
    group_name=REFERENCE_GROUP,
    kinds={"sql"},
    description="SSE and SZSE trading calendars from tushare `trade_cal`, from the first"
    " partition to a year ahead; key (exchange, cal_date).",
)
def trade_cal(market_source: MarketSource, warehouse: Warehouse) -> dg.MaterializeResult:
    # A month before the first partition so the first day's pretrade_date is known too.
    start = partition_date(partitions_start()) - dt.timedelta(days=31)
    end = market_today() + dt.timedelta(days=CALENDAR_DAYS_AHEAD)
    result = sync.sync_trade_cal(market_source, warehouse, start, end)
    return dg.MaterializeResult(
        metadata={
            "rows": result.rows,
            "api_calls": result.api_calls,
            "range": f"{start:%Y-%m-%d}..{end:%Y-%m-%d}",
        }
    )


def build_trading_day_asset(api_name: str) -> dg.AssetsDefinition:
    """One asset per trading-day API; a ranged backfill runs as one run over its days."""

    @dg.asset(
        name=api_name,
        group_name=MARKET_GROUP,
        kinds={"sql"},
        description=TRADING_DAY_DESCRIPTIONS[api_name] + MISSING_HISTORY_NOTE,
        partitions_def=trading_day_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[trade_cal, stock_basic],
        check_specs=checks.check_specs_for(api_name),
    )
    def trading_day_asset(
        context: dg.AssetExecutionContext, market_source: MarketSource, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        days = partition_dates(context)
        progress = StepProgressReporter(context, [api_name], days)
        result = sync.sync_trading_days(
            market_source,
            warehouse,
            api_name,
            days,
            progress=progress,
            written_through=progress.written_through(api_name),
        )
        context.log.info(
            f"{api_name}: {result.rows} rows over {len(result.trade_dates)} open day(s),"
            f" {len(result.closed_dates)} closed day(s), {result.api_calls} API call(s)"
        )
        add_partition_figures(context, result)
        return dg.MaterializeResult(
            check_results=checks.run_checks(api_name, warehouse, result.trade_dates)
        )

    return trading_day_asset


trading_day_assets = [build_trading_day_asset(api_name) for api_name in TRADING_DAY_APIS]
market_assets = [stock_basic, trade_cal, *trading_day_assets]
