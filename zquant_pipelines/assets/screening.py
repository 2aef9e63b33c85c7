"""The ``stock_screen`` and ``table_statistics`` assets, partitioned by trading day.

``stock_screen`` runs the screens of the screens file (ZQUANT_SCREENS_FILE, default
screens.yaml) over the day's market data and factors; ``table_statistics`` counts the rows,
stocks and NULLs of each trading-day table. Each partition's materialization carries its
own day's numbers per screen and per table, which the UI plots (the asset's Plots tab).
"""

import dagster as dg
import pandas as pd

from zquant_pipelines.assets.factors import factor_daily
from zquant_pipelines.assets.market import stock_basic
from zquant_pipelines.assets.partitions import (
    MISSING_HISTORY_NOTE,
    add_partition_figures,
    partition_dates,
    trading_day_partitions,
)
from zquant_pipelines.constants import TRADING_DAY_APIS
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.screening.run import screen_days
from zquant_pipelines.screening.screens import ScreensError, load_screens, screens_file
from zquant_pipelines.table_statistics import compute_table_statistics

ANALYSIS_GROUP = "analysis"


def screen_counts(warehouse: Warehouse, result) -> dict:
    """Per day written, each screen's stock count (``<screen>_stocks``, plotted)."""
    if not result.trade_dates:
        return {}
    counts = warehouse.read_frame(
        "SELECT trade_date, screen, COUNT(*) AS stocks FROM stock_screen"
        " WHERE trade_date BETWEEN :start AND :end GROUP BY trade_date, screen",
        {"start": min(result.trade_dates), "end": max(result.trade_dates)},
    )
    by_day: dict = {}
    for row in counts.itertuples(index=False):
        by_day.setdefault(row.trade_date, {})[f"{row.screen}_stocks"] = int(row.stocks)
    return by_day


def load_screens_or_fail():
    try:
        return load_screens()
    except ScreensError as error:
        # Every problem of the file, and no retry: the file must be fixed first.
        raise dg.Failure(str(error), allow_retries=False) from None


@dg.asset(
    group_name=ANALYSIS_GROUP,
    kinds={"sql", "pandas"},
    description="The stocks each screen of the screens file (ZQUANT_SCREENS_FILE, default"
    " screens.yaml) selects on a trading day, with the values its conditions read"
    " (screen_values, JSON); zquant's batch_stock_filter. `zquant screen NAME --date D`"
    " prints one day's list." + MISSING_HISTORY_NOTE,
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[factor_daily, "daily", "daily_basic", stock_basic],
)
def stock_screen(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    screens = load_screens_or_fail()
    context.log.info(f"{len(screens)} screen(s) from {screens_file()}")
    result = screen_days(warehouse, screens, partition_dates(context))
    add_partition_figures(context, result, screen_counts(warehouse, result))
    return dg.MaterializeResult()


def table_numbers(frame: pd.DataFrame) -> dict:
    """Per day, each table's rows, NULLs and coverage (``<table>_rows``, ..., plotted)."""
    by_day: dict = {}
    for row in frame.itertuples(index=False):
        numbers = by_day.setdefault(row.trade_date, {})
        numbers[f"{row.table_name}_rows"] = int(row.row_count)
        numbers[f"{row.table_name}_null_cells"] = int(row.null_cells)
        if pd.notna(row.coverage):
            numbers[f"{row.table_name}_coverage"] = dg.MetadataValue.float(float(row.coverage))
    return by_day


@dg.asset(
    group_name=ANALYSIS_GROUP,
    kinds={"sql"},
    description="Per trading-day table and day: row count, distinct stocks, NULLs per"
    " column (null_counts, JSON) and coverage of the stocks listed that day; zquant's"
    " statistics_table_data." + MISSING_HISTORY_NOTE,
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[*TRADING_DAY_APIS, factor_daily, stock_basic],
)
def table_statistics(
    context: dg.AssetExecutionContext, warehouse: Warehouse
) -> dg.MaterializeResult:
    result, frame = compute_table_statistics(warehouse, partition_dates(context))
    context.log.info(f"table_statistics: {result.rows} rows over {len(result.trade_dates)} day(s)")
    add_partition_figures(context, result, table_numbers(frame))
    return dg.MaterializeResult()


screening_assets = [stock_screen, table_statistics]
