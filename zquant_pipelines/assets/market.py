"""Market-data assets: the reference tables and the trading-day partitioned tables.

Asset keys equal the warehouse tables (tushare's API names), one asset per declared dataset
(zquant_pipelines/datasets/), described by its declaration. Each asset calls the sync
function for its API (every trading-day dataset the generic ``sync_trading_days``) and
reports its declared data-quality checks over the days it wrote.
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
from zquant_pipelines.constants import DATASETS, TRADING_DAY_APIS
from zquant_pipelines.datasets import Partitioning
from zquant_pipelines.dates import market_today
from zquant_pipelines.resources.market_source import MarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.sync import market as sync

# The calendar reaches a year ahead so every schedule tick finds its day in it.
CALENDAR_DAYS_AHEAD = 365
REFERENCE_GROUP = "reference"
MARKET_GROUP = "market"


def dataset_description(name: str) -> str:
    """The asset's description: its declaration's, naming the tushare API."""
    return f"{DATASETS[name].description} From tushare `{name}`."


@dg.asset(
    group_name=REFERENCE_GROUP,
    kinds={"sql"},
    description=dataset_description("stock_basic"),
)
def stock_basic(market_source: MarketSource, warehouse: Warehouse) -> dg.MaterializeResult:
    result = sync.sync_stock_basic(market_source, warehouse)
    return dg.MaterializeResult(metadata={"rows": result.rows, "api_calls": result.api_calls})


@dg.asset(
    group_name=REFERENCE_GROUP,
    kinds={"sql"},
    description=dataset_description("trade_cal"),
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
    """The asset of a trading-day dataset; a ranged backfill runs as one run over its days."""

    @dg.asset(
        name=api_name,
        group_name=MARKET_GROUP,
        kinds={"sql"},
        description=dataset_description(api_name) + MISSING_HISTORY_NOTE,
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


def assets_in_declaration_order(
    assets: list[dg.AssetsDefinition], partitionings: tuple[Partitioning, ...]
) -> list[dg.AssetsDefinition]:
    """One asset per declared dataset of ``partitionings``, in declaration order; such a
    dataset without one is an error naming it and its partitioning."""
    by_name = {asset.key.to_user_string(): asset for asset in assets}
    wanted = [name for name, dataset in DATASETS.items() if dataset.partitioning in partitionings]
    missing = {name: DATASETS[name].partitioning for name in wanted if name not in by_name}
    if missing:
        raise ValueError(f"no asset is built for the declared datasets {missing}")
    return [by_name[name] for name in wanted]


# The report-period datasets have theirs in assets/financials.py.
market_assets = assets_in_declaration_order(
    [stock_basic, trade_cal, *trading_day_assets],
    (Partitioning.REFERENCE, Partitioning.TRADING_DAY),
)
