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
from zquant_pipelines.constants import FACTOR_INPUT_APIS
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.sync.factors import compute_and_store_factors, select_factors


class FactorConfig(dg.Config):
    zquant_literal: bool = False  # zquant v0.4's literal behaviour (docs/factors.md)


def factor_column_schema() -> dg.TableSchema:
    """factor_daily's columns as the UI shows them, from the factor registry."""
    keys = [
        dg.TableColumn("ts_code", "text", "tushare stock code, e.g. 000001.SZ"),
        dg.TableColumn("trade_date", "date", "trading day"),
    ]
    return dg.TableSchema(
        columns=keys
        + [
            dg.TableColumn(
                factor.name,
                "double",
                f"{factor.description}. Unit: {factor.unit}. NULL: {factor.null_rule}.",
            )
            for factor in select_factors()
        ]
    )


@dg.asset(
    group_name="factors",
    kinds={"sql", "pandas"},
    description="Daily factors per stock: turnover moving averages, activity counts,"
    " momentum and volatility on hfq prices, and zquant's turnover_rate and hyper_activity"
    " columns. Formulas and units: docs/factors.md (run config zquant_literal: zquant's"
    " literal behaviour)." + MISSING_HISTORY_NOTE,
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=list(FACTOR_INPUT_APIS),
    check_specs=checks.check_specs_for("factor_daily"),
    metadata={"dagster/column_schema": factor_column_schema()},
)
def factor_daily(
    context: dg.AssetExecutionContext, config: FactorConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    days = partition_dates(context)
    progress = StepProgressReporter(context, ["factor_daily"], days)
    result = compute_and_store_factors(
        warehouse,
        days,
        zquant_literal=config.zquant_literal,
        progress=progress,
        written_through=progress.written_through("factor_daily"),
    )
    context.log.info(f"factor_daily: {result.rows} rows over {len(result.trade_dates)} open day(s)")
    add_partition_figures(context, result)
    return dg.MaterializeResult(
        check_results=checks.run_checks("factor_daily", warehouse, result.trade_dates)
    )


factor_assets = [factor_daily]
