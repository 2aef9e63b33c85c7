"""Lock waits of the warehouse are bounded, on real PostgreSQL and SQLite: a write to a table
another connection holds locked fails after ``Warehouse.lock_timeout_seconds`` with an error
naming the table and the setting, and the table stays as it was. Partition writes of the
same day wait for each other and compare with what the other wrote."""

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from zquant_pipelines.resources.warehouse import Warehouse, load_rows, lock_days, prepare_rows
from zquant_pipelines.resources.warehouse_schema import TABLES
from zquant_pipelines.resources.warehouse_timeouts import WarehouseTimeoutError
from zquant_pipelines_tests.support.warehouse_rows import (
    contents,
    count_updates,
    daily_frame,
    records,
)

DAY = dt.date(2026, 2, 27)
# Far past the 1 s lock timeout of the tests: only a write that waits on regardless gets here.
DEADLINE_SECONDS = 30


@contextmanager
def table_locked(warehouse: Warehouse, table: str) -> Iterator[None]:
    """Another connection holds ``table`` exclusively (SQLite: the database's write lock)
    in an open transaction until the block ends."""
    url = sa.make_url(warehouse.url)
    if url.get_backend_name() == "sqlite":
        holder = sqlite3.connect(url.database, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.rollback()
            holder.close()
        return
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(f'LOCK TABLE "{warehouse.db_schema}"."{table}" IN ACCESS EXCLUSIVE MODE')
            )
            yield
    finally:
        engine.dispose()


def error_while_locked(warehouse: Warehouse, table: str, action: Callable[[], object]):
    """What ``action`` raises (None if nothing) while ``table`` is locked elsewhere; fails
    the test if it is still waiting at the deadline (then the lock is released first)."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as error:  # noqa: BLE001 - handed to the main thread to check
            raised.append(error)

    worker = threading.Thread(target=run, daemon=True)
    with table_locked(warehouse, table):
        worker.start()
        worker.join(DEADLINE_SECONDS)
        waiting = worker.is_alive()
    worker.join(DEADLINE_SECONDS)
    assert not waiting, f"still waiting for the lock on {table} after {DEADLINE_SECONDS} s"
    return raised[0] if raised else None


def with_timeouts(warehouse: Warehouse, **timeouts) -> Warehouse:
    """The same database and schema (the fixture cleans up), with other timeouts."""
    return Warehouse(url=warehouse.url, db_schema=warehouse.db_schema, **timeouts)


@pytest.mark.parametrize(
    "write",
    [
        lambda store: store.replace_partition("daily", daily_frame(DAY, range(3), 20.0), DAY),
        lambda store: store.upsert("daily", daily_frame(DAY, range(8), 30.0)),
    ],
    ids=["replace_partition", "upsert"],
)
def test_write_to_a_locked_table_fails_naming_table_and_setting(warehouse, write):
    warehouse.replace_partition("daily", daily_frame(DAY, range(5)), DAY)
    before = contents(warehouse, "daily")
    bounded = with_timeouts(warehouse, lock_timeout_seconds=1)

    error = error_while_locked(warehouse, "daily", lambda: write(bounded))

    assert isinstance(error, WarehouseTimeoutError)
    assert "table 'daily'" in str(error) and "lock_timeout_seconds=1 s" in str(error)
    assert contents(warehouse, "daily") == before


def test_read_of_a_locked_table_fails_naming_it(warehouse):
    if warehouse.db_schema is None:
        pytest.skip("SQLite in WAL mode: readers never wait for the writer")
    warehouse.replace_partition("daily", daily_frame(DAY, range(5)), DAY)
    bounded = with_timeouts(warehouse, lock_timeout_seconds=1)

    error = error_while_locked(warehouse, "daily", lambda: bounded.read_table("daily"))

    assert isinstance(error, WarehouseTimeoutError)
    assert "table 'daily'" in str(error) and "lock_timeout_seconds=1 s" in str(error)


def test_statement_past_its_timeout_fails_naming_the_setting(warehouse):
    if warehouse.db_schema is None:
        pytest.skip("SQLite has no statement timeout")
    bounded = with_timeouts(warehouse, statement_timeout_seconds=0.2)

    with pytest.raises(WarehouseTimeoutError, match=r"statement_timeout_seconds=0\.2 s"):
        bounded.read_frame("SELECT pg_sleep(5) AS slept")

    # The timeout is the transaction's own (SET LOCAL): the pooled connection keeps none.
    assert len(warehouse.read_frame("SELECT pg_sleep(0.5) AS slept")) == 1


@pytest.mark.parametrize(
    ("setting", "value"), [("lock_timeout_seconds", 0), ("statement_timeout_seconds", -1)]
)
def test_bad_timeout_is_named(tmp_path, setting, value):
    store = Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}", **{setting: value})

    with pytest.raises(ValueError, match=rf"Warehouse.{setting} must be .*got {value}"):
        store.count_rows("daily")


def test_a_partition_write_waits_for_one_of_the_same_day_and_compares_with_its_rows(warehouse):
    """PostgreSQL: partition writes of one day serialise on an advisory lock, taken in the
    round trip that reads the day's stored rows; the waiting write reads the rows the other
    one committed, so it rewrites only the row it changes (a read from before the wait would
    load every row, fail on the keys and merge instead: one UPDATE)."""
    if warehouse.db_schema is None:
        pytest.skip("SQLite: the writer holds the whole database from BEGIN")
    frame = daily_frame(DAY, range(20))
    changed = frame.copy()
    changed.loc[3, "close"] = 99.5
    writes = count_updates(warehouse, "daily", events=("INSERT", "UPDATE", "DELETE"))
    raised: list[BaseException] = []

    def write() -> None:
        try:
            warehouse.replace_partition("daily", changed, DAY)
        except BaseException as error:  # noqa: BLE001 - handed to the main thread to check
            raised.append(error)

    worker = threading.Thread(target=write, daemon=True)
    engine = sa.create_engine(
        warehouse.url, connect_args={"options": f"-csearch_path={warehouse.db_schema}"}
    )
    try:
        with engine.begin() as holder:
            holder.exec_driver_sql(lock_days(TABLES["daily"], [DAY]))
            worker.start()
            wait_until(lambda: advisory_lock_waiters(holder) == 1)
            load_rows(holder, TABLES["daily"], prepare_rows(TABLES["daily"], frame))
        worker.join(DEADLINE_SECONDS)
    finally:
        engine.dispose()

    assert not worker.is_alive() and raised == []
    assert contents(warehouse, "daily") == records(changed)
    assert writes() == len(frame) + 2  # the holder's rows, then one row deleted and inserted


def advisory_lock_waiters(conn: sa.Connection) -> int:
    waiting = "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    return int(conn.exec_driver_sql(waiting).scalar_one())


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)
