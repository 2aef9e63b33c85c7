"""The warehouse tables: one per declared dataset plus ``factor_daily``, ``stock_screen`` and
``table_statistics``, as SQLAlchemy Core.

A dataset's table (zquant_pipelines/datasets/) keeps tushare's names, the declared SQL
types, keys and comments (units as tushare sends them); date columns are SQL DATE (ISO text
in SQLite). factor_daily's value columns and their comments come from the factor registry;
the other derived tables are declared here.
"""

import sqlalchemy as sa

from zquant_pipelines.constants import (
    DATASETS,
    FACTOR_TABLE,
    SCREEN_TABLE,
    STATISTICS_TABLE,
    TABLE_KEYS,
)
from zquant_pipelines.datasets import Column, SqlType
from zquant_pipelines.datasets.market import TRADE_DATE, TS_CODE
from zquant_pipelines.factors.library import REGISTRY

# factor_daily's value columns, in table order (after ts_code, trade_date): the registry's.
FACTOR_COLUMNS = REGISTRY.columns


def _json(name: str, comment: str) -> Column:
    return Column(name, SqlType.TEXT, comment)


def _count(name: str, comment: str) -> Column:
    return Column(name, SqlType.INTEGER, comment)


# The derived tables' columns (the datasets' come from their declarations).
DERIVED_COLUMNS: dict[str, tuple[Column, ...]] = {
    FACTOR_TABLE: (
        TS_CODE,
        TRADE_DATE,
        *(
            Column(
                factor.name,
                SqlType.DOUBLE,
                f"{factor.description}; {factor.unit} (docs/factors.md)",
            )
            for factor in REGISTRY.factors.values()
        ),
    ),
    # stock_screen: the stocks each screen of screens.yaml selects on a trading day.
    SCREEN_TABLE: (
        TRADE_DATE,
        Column("screen", SqlType.TEXT, "screen name, as in screens.yaml"),
        TS_CODE,
        _json(
            "screen_values", "JSON object: the values of the columns the screen's conditions name"
        ),
    ),
    # table_statistics: per trading-day table and day, its rows, stocks and NULLs.
    STATISTICS_TABLE: (
        TRADE_DATE,
        Column("table_name", SqlType.TEXT, "warehouse table"),
        _count("row_count", "rows of the table that day"),
        _count("distinct_stocks", "distinct ts_code that day"),
        _count("listed_stocks", "stocks listed that day (stock_basic)"),
        Column(
            "coverage", SqlType.DOUBLE, "distinct_stocks / listed_stocks (NULL when none is listed)"
        ),
        _count("null_cells", "NULL values that day over all non-key columns"),
        _json("null_counts", "JSON object: NULL values that day per non-key column"),
    ),
}
SCREEN_COLUMNS = tuple(column.name for column in DERIVED_COLUMNS[SCREEN_TABLE])
STATISTICS_COLUMNS = tuple(column.name for column in DERIVED_COLUMNS[STATISTICS_TABLE])

# Every table's columns, declared ones first.
TABLE_SPECS: dict[str, tuple[Column, ...]] = {
    **{name: dataset.columns for name, dataset in DATASETS.items()},
    **DERIVED_COLUMNS,
}
TEXT_COLUMNS = frozenset(
    column.name
    for columns in TABLE_SPECS.values()
    for column in columns
    if column.sql_type is SqlType.TEXT
)
INTEGER_COLUMNS = frozenset(
    column.name
    for columns in TABLE_SPECS.values()
    for column in columns
    if column.sql_type is SqlType.INTEGER
)
SQL_TYPES: dict[SqlType, type[sa.types.TypeEngine]] = {
    SqlType.TEXT: sa.String,
    SqlType.DATE: sa.Date,
    SqlType.DOUBLE: sa.Double,
    SqlType.SMALLINT: sa.SmallInteger,
    SqlType.INTEGER: sa.Integer,
}

metadata = sa.MetaData()


def define_table(name: str, columns: tuple[Column, ...]) -> sa.Table:
    keys = TABLE_KEYS[name]
    table = sa.Table(
        name,
        metadata,
        *(
            sa.Column(
                column.name,
                SQL_TYPES[column.sql_type](),
                primary_key=column.name in keys,
                nullable=column.name not in keys,
                comment=column.comment,
            )
            for column in columns
        ),
    )
    # The primary key leads with ts_code; day-wide (period-wide) reads and deletes need
    # their own index.
    for partition_column in ("trade_date", "end_date"):
        if partition_column in table.c:
            sa.Index(f"ix_{name}_{partition_column}", table.c[partition_column])
    return table


def with_value_columns(table: sa.Table, columns: list[str]) -> sa.Table:
    """A copy of ``table``'s definition, in a MetaData of its own, with nullable DOUBLE
    columns added (a factor with a window the registry does not hold); ``table`` (maybe the
    process-wide TABLES entry every warehouse shares) is left as it is."""
    widened = table.to_metadata(sa.MetaData())
    for column in columns:
        widened.append_column(sa.Column(column, sa.Double(), comment="factor (docs/factors.md)"))
    return widened


TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(column.name for column in columns) for name, columns in TABLE_SPECS.items()
}
TABLES: dict[str, sa.Table] = {
    name: define_table(name, columns) for name, columns in TABLE_SPECS.items()
}
