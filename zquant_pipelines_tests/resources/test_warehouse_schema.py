"""The market tables' DDL is pinned: an upgrade of an existing warehouse keeps its data.

``fixtures/market_tables_ddl.json`` holds the CREATE TABLE and CREATE INDEX statements and
column comments of the five market tables as main produced them before the dataset
registry (captured with ``python -m zquant_pipelines_tests.resources.test_warehouse_schema``
on that code); the registry must produce exactly the same, for SQLite and PostgreSQL.

One comment differs from main on purpose: main commented daily_basic.turnover_rate with the
text of the factor of the same name (one comment per column name across all tables); the
registry gives it its own (a comment is metadata: no data or type changes).
"""

import json
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from zquant_pipelines.resources.warehouse_schema import TABLES

PINNED = Path(__file__).parent / "fixtures" / "market_tables_ddl.json"
PINNED_TABLES = ("stock_basic", "trade_cal", "daily", "adj_factor", "daily_basic")
DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect()}


def table_ddl(table: sa.Table) -> dict:
    """The statements that create ``table`` in each dialect, and its column comments."""
    return {
        "ddl": {
            name: [
                str(CreateTable(table).compile(dialect=dialect)).strip(),
                *sorted(
                    str(CreateIndex(index).compile(dialect=dialect)).strip()
                    for index in table.indexes
                ),
            ]
            for name, dialect in DIALECTS.items()
        },
        "comments": {column.name: column.comment for column in table.columns},
    }


def current_ddl() -> dict:
    return {name: table_ddl(TABLES[name]) for name in PINNED_TABLES}


@pytest.mark.parametrize("table", PINNED_TABLES)
def test_market_table_ddl_is_unchanged(table):
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    assert current_ddl()[table] == pinned[table]


if __name__ == "__main__":
    PINNED.write_text(
        json.dumps(current_ddl(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    sys.stdout.write(f"wrote {PINNED}\n")
