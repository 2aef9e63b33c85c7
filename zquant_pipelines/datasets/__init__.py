"""The dataset registry: every tushare API the warehouse syncs, each declared once.

``DATASETS`` maps the name (= warehouse table = asset key) to its ``Dataset``
(declaration.py). ``constants`` derives its per-API names from it; the warehouse schema,
the sync dispatch, the assets, their checks, docs/datasets.md and the README's data table
are built from it. Adding a dataset: declare it in a module of this package and list it
below (docs/architecture.md, "adding a trading-day API"). Standard library only.
"""

from zquant_pipelines.datasets.declaration import (
    DEFAULT_ROW_LIMIT,
    Column,
    Dataset,
    Partitioning,
    SqlType,
    registry_of,
)
from zquant_pipelines.datasets.financials import FINANCIAL_DATASETS
from zquant_pipelines.datasets.market import MARKET_DATASETS

DATASETS: dict[str, Dataset] = registry_of(*MARKET_DATASETS, *FINANCIAL_DATASETS)


def datasets_partitioned_by(partitioning: Partitioning) -> tuple[str, ...]:
    """The names of the datasets of one partitioning kind, in declaration order."""
    return tuple(name for name, dataset in DATASETS.items() if dataset.partitioning is partitioning)


__all__ = [
    "DATASETS",
    "DEFAULT_ROW_LIMIT",
    "Column",
    "Dataset",
    "Partitioning",
    "SqlType",
    "datasets_partitioned_by",
]
