"""The ``stock_screen`` and ``table_statistics`` assets, partitioned by trading day.

``stock_screen`` runs the screens of the screens file (ZQUANT_SCREENS_FILE, default
screens.yaml) over the day's market data and factors; ``table_statistics`` counts the rows,
stocks and NULLs of each trading-day table. Both report numbers per screen and per table as
metadata, which the UI plots over the materializations (the asset's Plots tab).
"""

import dagster as dg
import pandas as pd

from zquant_pipelines.assets.factors import factor_daily
from zquant_pipelines.assets.market import stock_basic
from zquant_pipelines.assets.partitions import (
    MISSING_HISTORY_NOTE,
    partition_dates,
    trading_day_partitions,
)
from zquant_pipelines.constants import TRADING_DAY_APIS
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.screening.run import screen_days
from zquant_pipelines.screening.screens import ScreensError, load_screens, screens_file
from zquant_pipelines.table_statistics import compute_table_statistics

ANALYSIS_GROUP = "analysis"


def screen_metadata(warehouse: Warehouse, result) -> dict:
    """Rows written, and each screen's stock count on the last day written (plotted)."""
    metadata: dict = {"rows": result.rows, "open_days": len(result.trade_dates)}
    if result.trade_dates:
        last = max(result.trade_dates)
        counts = warehouse.read_frame(
            "SELECT screen, COUNT(*) AS stocks FROM stock_screen WHERE trade_date = :day"
            " GROUP BY screen",
            {"day": last},
        )
        metadata["day"] = f"{last:%Y-%m-%d}"
        metadata |= {
            f"{screen}_stocks": int(stocks)
            for screen, stocks in zip(counts["screen"], counts["stocks"], strict=True)
        }
    return metadata


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
    return dg.MaterializeResult(metadata=screen_metadata(warehouse, result))


def statistics_metadata(result, frame) -> dict:
    """Rows written, and per table its numbers on the last day written (plotted)."""
    metadata: dict = {"rows": result.rows, "open_days": len(result.trade_dates)}
    if frame.empty:
        return metadata
    last = frame[frame["trade_date"] == frame["trade_date"].max()]
    metadata["day"] = f"{last['trade_date'].iloc[0]:%Y-%m-%d}"
    for row in last.itertuples(index=False):
        metadata[f"{row.table_name}_rows"] = int(row.row_count)
        metadata[f"{row.table_name}_null_cells"] = int(row.null_cells)
        if pd.notna(row.coverage):
            metadata[f"{row.table_name}_coverage"] = dg.MetadataValue.float(float(row.coverage))
    return metadata


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
    return dg.MaterializeResult(metadata=statistics_metadata(result, frame))


screening_assets = [stock_screen, table_statistics]
