"""The warehouse tables: one per tushare API plus ``factor_daily``, ``stock_screen`` and
``table_statistics``, as SQLAlchemy Core.

factor_daily's value columns and their comments come from the factor registry.

Tables and columns keep tushare's names (``constants.API_FIELDS``), keys are
``constants.TABLE_KEYS``, date columns are SQL DATE (ISO text in SQLite). Units stay as
tushare sends them; the column comments say which.
"""

import sqlalchemy as sa

from zquant_pipelines import financial_datasets
from zquant_pipelines.constants import API_FIELDS, DATE_COLUMNS, TABLE_KEYS
from zquant_pipelines.factors.library import REGISTRY

FACTOR_TABLE = "factor_daily"
# factor_daily's value columns, in table order (after ts_code, trade_date): the registry's.
FACTOR_COLUMNS = REGISTRY.columns

SCREEN_TABLE = "stock_screen"
# stock_screen: the stocks each screen of screens.yaml selects on a trading day.
SCREEN_COLUMNS = ("trade_date", "screen", "ts_code", "screen_values")
STATISTICS_TABLE = "table_statistics"
# table_statistics: per trading-day table and day, its rows, stocks and NULLs.
STATISTICS_COLUMNS = (
    "trade_date",
    "table_name",
    "row_count",
    "distinct_stocks",
    "listed_stocks",
    "coverage",
    "null_cells",
    "null_counts",
)

# Text columns are stock_basic's non-date fields (ts_code and exchange are the text keys
# of the other tables too) and the derived tables' names and JSON documents.
TEXT_COLUMNS = frozenset(API_FIELDS["stock_basic"]) - DATE_COLUMNS | {
    "screen",
    "screen_values",
    "table_name",
    "null_counts",
}
SMALL_INTEGER_COLUMNS = frozenset({"is_open"})
INTEGER_COLUMNS = frozenset({"row_count", "distinct_stocks", "listed_stocks", "null_cells"})

COLUMN_COMMENTS = {
    "ts_code": "tushare stock code, e.g. 000001.SZ",
    "symbol": "exchange ticker without suffix",
    "name": "short name",
    "area": "region",
    "industry": "industry",
    "market": "board (主板, 创业板, 科创板, 北交所, ...)",
    "exchange": "exchange (SSE, SZSE, BSE)",
    "list_status": "L listed, D delisted, P paused",
    "list_date": "listing date",
    "delist_date": "delisting date, NULL while listed",
    "is_hs": "Stock Connect: N no, H Shanghai, S Shenzhen",
    "cal_date": "calendar day",
    "is_open": "1 trading day, 0 closed",
    "pretrade_date": "previous trading day",
    "trade_date": "trading day",
    "open": "open price, CNY, unadjusted",
    "high": "high price, CNY, unadjusted",
    "low": "low price, CNY, unadjusted",
    "close": "close price, CNY, unadjusted",
    "pre_close": "previous close, CNY, unadjusted (ex-rights adjusted by the exchange)",
    "change": "close - pre_close, CNY",
    "pct_chg": "change over pre_close, %",
    "vol": "volume, lots (手, 100 shares)",
    "amount": "turnover, thousand CNY (千元)",
    "adj_factor": "cumulative adjustment factor; hfq price = price * adj_factor",
    "turnover_rate": "turnover rate, % of total float shares",
    "turnover_rate_f": "turnover rate, % of free-float shares",
    "volume_ratio": "volume ratio (量比)",
    "pe": "price / earnings, NULL when losing money",
    "pe_ttm": "price / earnings TTM, NULL when losing money",
    "pb": "price / book",
    "ps": "price / sales",
    "ps_ttm": "price / sales TTM",
    "dv_ratio": "dividend yield, %",
    "dv_ttm": "dividend yield TTM, %",
    "total_share": "total shares, 10k shares (万股)",
    "float_share": "float shares, 10k shares (万股)",
    "free_share": "free-float shares, 10k shares (万股)",
    "total_mv": "total market value, 10k CNY (万元)",
    "circ_mv": "float market value, 10k CNY (万元)",
    **{
        factor.name: f"{factor.description}; {factor.unit} (docs/factors.md)"
        for factor in REGISTRY.factors.values()
    },
    "screen": "screen name, as in screens.yaml",
    "screen_values": "JSON object: the values of the columns the screen's conditions name",
    "table_name": "warehouse table",
    "row_count": "rows of the table that day",
    "distinct_stocks": "distinct ts_code that day",
    "listed_stocks": "stocks listed that day (stock_basic)",
    "coverage": "distinct_stocks / listed_stocks (NULL when none is listed)",
    "null_cells": "NULL values that day over all non-key columns",
    "null_counts": "JSON object: NULL values that day per non-key column",
}

metadata = sa.MetaData()


def column_type(name: str) -> sa.types.TypeEngine:
    if name in DATE_COLUMNS:
        return sa.Date()
    if name in TEXT_COLUMNS:
        return sa.String()
    if name in SMALL_INTEGER_COLUMNS:
        return sa.SmallInteger()
    if name in INTEGER_COLUMNS:
        return sa.Integer()
    return sa.Double()


def define_table(name: str, columns: tuple[str, ...]) -> sa.Table:
    keys = TABLE_KEYS[name]
    table = sa.Table(
        name,
        metadata,
        *(
            sa.Column(
                column,
                column_type(column),
                primary_key=column in keys,
                nullable=column not in keys,
                comment=COLUMN_COMMENTS[column],
            )
            for column in columns
        ),
    )
    if "trade_date" in columns:
        # The primary key leads with ts_code; day-wide reads and deletes need their own index.
        sa.Index(f"ix_{name}_trade_date", table.c.trade_date)
    return table


REPORT_PERIOD_COLUMN_TYPES = {
    financial_datasets.TEXT: sa.String,
    financial_datasets.DATE: sa.Date,
    financial_datasets.NUMBER: sa.Double,
}


def define_report_period_table(name: str) -> sa.Table:
    """A financial-statement table: its declared fields, types and units
    (financial_datasets.py), keyed by version (stock, period, report type, announcement)."""
    keys = TABLE_KEYS[name]
    table = sa.Table(
        name,
        metadata,
        *(
            sa.Column(
                field.name,
                REPORT_PERIOD_COLUMN_TYPES[field.kind](),
                nullable=field.name not in keys,
                comment=field.comment,
            )
            for field in financial_datasets.FIELDS[name]
        ),
        # In key order (stock, period first), not column order: reads go by stock and period.
        sa.PrimaryKeyConstraint(*keys),
    )
    # A period-wide read (a sync's comparison, a check) goes by end_date.
    sa.Index(f"ix_{name}_end_date", table.c.end_date)
    return table


def add_value_columns(table: str, columns: list[str]) -> list[str]:
    """Add nullable DOUBLE columns to a table's definition (a factor with a window the
    registry does not hold); returns those that were new."""
    target = TABLES[table]
    new = [column for column in columns if column not in target.c]
    for column in new:
        target.append_column(sa.Column(column, sa.Double(), comment="factor (docs/factors.md)"))
    return new


TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    **API_FIELDS,
    FACTOR_TABLE: ("ts_code", "trade_date", *FACTOR_COLUMNS),
    SCREEN_TABLE: SCREEN_COLUMNS,
    STATISTICS_TABLE: STATISTICS_COLUMNS,
    **{api: financial_datasets.field_names(api) for api in financial_datasets.REPORT_PERIOD_APIS},
}
TABLES: dict[str, sa.Table] = {
    name: (
        define_report_period_table(name)
        if name in financial_datasets.FIELDS
        else define_table(name, columns)
    )
    for name, columns in TABLE_COLUMNS.items()
}
