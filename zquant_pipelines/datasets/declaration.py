"""The form of a dataset declaration: one tushare API, its warehouse table and its asset.

Standard library only (the CLI imports ``constants``, which derives its names from the
declarations, before it loads anything heavy). A declaration names the facts every layer
reads: the warehouse schema (columns, SQL types, keys, comments with units), the sync
(partitioning, row limit per call, publication rule), the asset and its checks, and the
generated docs (docs/datasets.md, the README's data table).
"""

import enum
import re
from dataclasses import dataclass

# Rows per call before tushare truncates a reply (the market APIs' and stock_basic's).
DEFAULT_ROW_LIMIT = 6000
# "HH:MM", Asia/Shanghai.
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Partitioning(enum.StrEnum):
    """How a dataset's rows are split into partitions (and asked of tushare)."""

    # The whole table at once (stock_basic, trade_cal): no partitions.
    REFERENCE = "reference"
    # One partition per trading day (weekday keys such as 2026-02-27), key trade_date.
    TRADING_DAY = "trading_day"
    # One partition per report period: quarter ends, keys such as 2026-09-30.
    REPORT_PERIOD = "report_period"


class SqlType(enum.StrEnum):
    """A column's type in the warehouse (resources/warehouse_schema.py maps it to SQL)."""

    TEXT = "text"
    DATE = "date"  # YYYYMMDD text on the wire, SQL DATE in the warehouse
    DOUBLE = "double"
    SMALLINT = "smallint"
    INTEGER = "integer"


@dataclass(frozen=True)
class Column:
    """One field of a tushare reply, kept as a warehouse column of the same name."""

    name: str
    sql_type: SqlType
    # What the value is, with its unit as tushare sends it (the column comment).
    comment: str


def text(name: str, comment: str) -> Column:
    return Column(name, SqlType.TEXT, comment)


def date(name: str, comment: str) -> Column:
    return Column(name, SqlType.DATE, comment)


def double(name: str, comment: str) -> Column:
    return Column(name, SqlType.DOUBLE, comment)


@dataclass(frozen=True)
class Dataset:
    """One tushare API: its name is the warehouse table's and the asset's.

    ``columns`` are the fields asked of tushare, in its order (the table keeps exactly
    these); ``keys`` the table's primary key. ``published`` is the time ("HH:MM",
    Asia/Shanghai) by which tushare has published a day, None for data without a
    publication day. ``min_listed_share`` is the fewest rows an open day may hold as a
    share of the stocks listed that day (fewer: not published yet); ``checks`` the asset
    checks (assets/checks.py) run over the partitions written.
    """

    name: str
    description: str
    partitioning: Partitioning
    keys: tuple[str, ...]
    columns: tuple[Column, ...]
    row_limit: int = DEFAULT_ROW_LIMIT
    published: str | None = None
    min_listed_share: float | None = None
    checks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"dataset {self.name!r}"
        if not _NAME.match(self.name):
            raise ValueError(f"{where}: name must be lower_snake_case")
        names = self.fields
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"{where}: columns {duplicates} are declared twice")
        unknown = [key for key in self.keys if key not in names]
        if not self.keys or unknown:
            raise ValueError(f"{where}: keys {list(self.keys)} must be columns; not {unknown}")
        if self.row_limit < 1:
            raise ValueError(f"{where}: row_limit {self.row_limit!r} must be >= 1")
        if self.published is not None and not _CLOCK.match(self.published):
            raise ValueError(f"{where}: published {self.published!r} is not HH:MM")
        if self.partitioning is Partitioning.TRADING_DAY:
            if "trade_date" not in self.keys or "ts_code" not in self.keys:
                raise ValueError(f"{where}: a trading-day dataset is keyed by ts_code, trade_date")
            if self.min_listed_share is None or not 0 < self.min_listed_share <= 1:
                raise ValueError(
                    f"{where}: min_listed_share {self.min_listed_share!r} must be in (0, 1]"
                    " for a trading-day dataset (its not-published-yet rule)"
                )
        if self.partitioning is Partitioning.REPORT_PERIOD and "end_date" not in self.keys:
            raise ValueError(f"{where}: a report-period dataset is keyed by end_date (the period)")

    @property
    def fields(self) -> tuple[str, ...]:
        """The column names, in tushare's order."""
        return tuple(column.name for column in self.columns)

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"dataset {self.name!r} has no column {name!r}")


def registry_of(*datasets: Dataset) -> dict[str, Dataset]:
    """Datasets by name, in declaration order; a name declared twice is an error, and so is
    a column name with two SQL types (code reading a column by name needs one type)."""
    registry: dict[str, Dataset] = {}
    seen: dict[str, tuple[str, Column]] = {}
    for dataset in datasets:
        if dataset.name in registry:
            raise ValueError(f"dataset {dataset.name!r} is declared twice")
        registry[dataset.name] = dataset
        for column in dataset.columns:
            first = seen.setdefault(column.name, (dataset.name, column))
            if first[1].sql_type != column.sql_type:
                raise ValueError(
                    f"column {column.name!r} is {column.sql_type} in {dataset.name!r} but"
                    f" {first[1].sql_type} in {first[0]!r}"
                )
    return registry
