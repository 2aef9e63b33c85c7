"""Data-quality checks of the trading-day tables, run over the days a materialization wrote.

Each check is one SQL query over those days, so it costs the same whichever job wrote them.
The row-count check is blocking: a day short of the listed stocks fails its run and keeps
factor_daily from running on it, and the after-close catch-up asks for that day again.
"""

import datetime as dt
from collections.abc import Callable, Sequence

import dagster as dg

from zquant_pipelines.assets.partitions import PARTITION_DATE_FORMAT
from zquant_pipelines.constants import (
    DATASETS,
    FACTOR_TABLE,
    MIN_LISTED_SHARE,
    TABLE_KEYS,
    TRADING_DAY_APIS,
)
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.sync.market import day_is_complete, stored_day_counts

# Checks whose failure stops the run (and the assets downstream of it in that run).
BLOCKING_CHECKS = frozenset({"row_count_vs_listed"})
# Metadata of every check over at least one day: the days it covered (ISO dates).
CHECKED_FROM, CHECKED_TO = "checked_from", "checked_to"

CheckOutcome = tuple[bool, dict]


def _day_range(days: Sequence[dt.date]) -> dict:
    return {"start": min(days), "end": max(days)}


def no_duplicate_keys(warehouse: Warehouse, table: str, days: Sequence[dt.date]) -> CheckOutcome:
    keys = ", ".join(TABLE_KEYS[table])
    duplicates = warehouse.read_frame(
        f"SELECT {keys}, COUNT(*) AS n FROM {table} WHERE trade_date BETWEEN :start AND :end"
        f" GROUP BY {keys} HAVING COUNT(*) > 1",
        _day_range(days),
    )
    sample = duplicates.head(5).astype(str).to_dict("records")
    return duplicates.empty, {"duplicate_keys": len(duplicates), "sample": sample}


def row_count_vs_listed(warehouse: Warehouse, table: str, days: Sequence[dt.date]) -> CheckOutcome:
    counted = stored_day_counts(warehouse, table, min(days), max(days))
    bad = {}
    for day in days:
        rows, listed = counted.get(day, (0, None))
        if not day_is_complete(table, rows, listed):
            bad[f"{day:{PARTITION_DATE_FORMAT}}"] = {"rows": rows, "listed": listed}
    return not bad, {
        "days_checked": len(days),
        "min_listed_share": MIN_LISTED_SHARE[table],
        "bad_days": bad,
    }


def ohlc_sanity(warehouse: Warehouse, table: str, days: Sequence[dt.date]) -> CheckOutcome:
    broken = warehouse.read_frame(
        f"SELECT ts_code, trade_date, open, high, low, close FROM {table}"
        " WHERE trade_date BETWEEN :start AND :end AND NOT ("
        " low > 0 AND open > 0 AND close > 0 AND high > 0"
        " AND low <= open AND low <= close AND open <= high AND close <= high)",
        _day_range(days),
    )
    sample = broken.head(5).astype(str).to_dict("records")
    return broken.empty, {"broken_rows": len(broken), "sample": sample}


CHECKS: dict[str, Callable[[Warehouse, str, Sequence[dt.date]], CheckOutcome]] = {
    "no_duplicate_keys": no_duplicate_keys,
    "row_count_vs_listed": row_count_vs_listed,
    "ohlc_sanity": ohlc_sanity,
}
CHECK_DESCRIPTIONS = {
    "no_duplicate_keys": "No two rows share the table's key (ts_code, trade_date).",
    "row_count_vs_listed": "Each open day has at most the stocks listed that day and at least"
    " {share:.0%} of them (blocking: a short day keeps the factors from running).",
    "ohlc_sanity": "Prices are positive and low <= open, close <= high.",
}
# Each trading-day dataset's declared checks, and factor_daily's.
TABLE_CHECKS: dict[str, tuple[str, ...]] = {
    **{name: DATASETS[name].checks for name in TRADING_DAY_APIS},
    FACTOR_TABLE: ("no_duplicate_keys", "row_count_vs_listed"),
}


def check_specs_for(table: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            name=name,
            asset=table,
            description=CHECK_DESCRIPTIONS[name].format(share=MIN_LISTED_SHARE[table]),
            blocking=name in BLOCKING_CHECKS,
        )
        for name in TABLE_CHECKS[table]
    ]


def run_checks(
    table: str, warehouse: Warehouse, days: Sequence[dt.date]
) -> list[dg.AssetCheckResult]:
    """Every check of the table over the open days just written (none written: vacuous)."""
    results = []
    for name in TABLE_CHECKS[table]:
        if days:
            passed, metadata = CHECKS[name](warehouse, table, days)
            metadata |= {
                CHECKED_FROM: f"{min(days):{PARTITION_DATE_FORMAT}}",
                CHECKED_TO: f"{max(days):{PARTITION_DATE_FORMAT}}",
            }
        else:
            passed, metadata = True, {"days_checked": 0}
        results.append(
            dg.AssetCheckResult(
                asset_key=table,
                check_name=name,
                passed=passed,
                metadata=metadata,
                severity=dg.AssetCheckSeverity.ERROR,
            )
        )
    return results
