"""Warehouse rows as tests compare them: a table's contents as plain dicts (None for NULL) or
with floats as their exact bits, a ``daily`` frame of made-up bars for a day, and a count of
the rows a write touches (database triggers); shared by the warehouse tests
(resources/test_warehouse.py, test_warehouse_locks.py, test_warehouse_fingerprint.py)."""

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.resources.warehouse_schema import TABLE_COLUMNS


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts with None for every NULL, for exact comparison."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def contents(warehouse: Warehouse, table: str) -> list[dict]:
    return records(warehouse.read_table(table))


def daily_frame(day: dt.date, stocks: range, close: float = 10.0) -> pd.DataFrame:
    frame = pd.DataFrame(
        {column: close for column in TABLE_COLUMNS["daily"]},
        index=range(len(stocks)),
    )
    frame["ts_code"] = [f"{600000 + stock}.SH" for stock in stocks]
    frame["trade_date"] = day
    frame["close"] = [close + stock for stock in stocks]
    return frame


def exact_contents(warehouse: Warehouse, table: str) -> list[dict]:
    """The table's rows with every float as its exact bits (-0.0 is not 0.0, NaN is NaN)."""
    return [
        {name: value.hex() if isinstance(value, float) else value for name, value in row.items()}
        for row in contents(warehouse, table)
    ]


def run_ddl(warehouse: Warehouse, postgres: list[str], sqlite: list[str]) -> None:
    warehouse.ensure_schema()
    with warehouse.engine.begin() as conn:
        for statement in postgres if conn.dialect.name == "postgresql" else sqlite:
            conn.execute(sa.text(statement))


def count_updates(warehouse: Warehouse, table: str, events: tuple[str, ...] = ("UPDATE",)):
    """Log every row ``events`` (UPDATE, INSERT, DELETE) of ``table`` with database
    triggers; return a reader of the count."""
    log_row = "INSERT INTO update_log VALUES (1)"
    run_ddl(
        warehouse,
        postgres=[
            "CREATE TABLE update_log (n INTEGER)",
            "CREATE FUNCTION log_update() RETURNS trigger LANGUAGE plpgsql"
            f" AS $$ BEGIN {log_row}; RETURN NULL; END $$",
            f"CREATE TRIGGER log_update AFTER {' OR '.join(events)} ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION log_update()",
        ],
        sqlite=[
            "CREATE TABLE update_log (n INTEGER)",
            *(
                f"CREATE TRIGGER log_{event.lower()} AFTER {event} ON {table}"
                f" BEGIN {log_row}; END"
                for event in events
            ),
        ],
    )
    return lambda: int(warehouse.read_frame("SELECT COUNT(*) AS n FROM update_log")["n"].iloc[0])
