"""The ``factor_daily`` asset: per-stock daily factors, partitioned by trading day.

Day X reads its look-back window from the warehouse (market history before X) and depends
on day X of the market assets in the graph, so materializing X with its upstream syncs X
first. The formulas are in ``zquant_pipelines.factors`` (see docs/factors.md).
"""

import dagster as dg

from zquant_pipelines.assets import checks
from zquant_pipelines.assets.partitions import (
    MISSING_HISTORY_NOTE,
    add_partition_figures,
    partition_dates,
    trading_day_partitions,
)
from zquant_pipelines.assets.progress import StepProgressReporter
from zquant_pipelines.constants import TRADING_DAY_APIS
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.sync.factors import compute_and_store_factors


@dg.asset(
    group_name="factors",
    kinds={"sql", "pandas"},
    description="Daily factors per stock: turnover moving averages, activity counts,"
    " momentum and volatility on hfq prices. Formulas and units: docs/factors.md."
    + MISSING_HISTORY_NOTE,
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=list(TRADING_DAY_APIS),
    check_specs=checks.check_specs_for("factor_daily"),
)
def factor_daily(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    days = partition_dates(context)
    progress = StepProgressReporter(context, ["factor_daily"], days)
    result = compute_and_store_factors(
        warehouse,
        days,
        progress=progress,
        written_through=progress.written_through("factor_daily"),
    )
    context.log.info(f"factor_daily: {result.rows} rows over {len(result.trade_dates)} open day(s)")
    add_partition_figures(context, result)
    return dg.MaterializeResult(
        check_results=checks.run_checks("factor_daily", warehouse, result.trade_dates)
    )


factor_assets = [factor_daily]
