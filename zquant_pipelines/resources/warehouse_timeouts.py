"""Bounded waits of the warehouse: the lock and statement timeouts each transaction carries,
and the error naming the table and the setting when one of them ends a wait.

A ``Warehouse`` hands its timeouts (ms) to the shared engine as an execution option; the
engine's "begin" hook (``set_timeouts``) applies them to that transaction only: PostgreSQL
``SET LOCAL lock_timeout`` / ``statement_timeout``, SQLite ``PRAGMA busy_timeout`` (SQLite
has no statement timeout). So Warehouse objects sharing one engine keep their own settings,
and a pooled connection carries none over.
"""

import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2.errors
import sqlalchemy as sa

DEFAULT_LOCK_TIMEOUT_SECONDS = 60.0
# Execution option holding a Warehouse's (lock, statement) timeouts in ms; 0 ms: no limit.
TIMEOUTS_OPTION = "zquant_timeouts_ms"
LOCK_SETTING = "lock_timeout_seconds"
STATEMENT_SETTING = "statement_timeout_seconds"


class WarehouseTimeoutError(RuntimeError):
    """A lock wait or statement ran past its Warehouse setting; the transaction rolled back."""


def timeouts_ms(lock_seconds: float, statement_seconds: float) -> tuple[int, int]:
    """The execution option's value, after checking the settings."""
    if not lock_seconds > 0:
        raise ValueError(f"Warehouse.{LOCK_SETTING} must be > 0, got {lock_seconds!r}")
    if not statement_seconds >= 0:
        raise ValueError(
            f"Warehouse.{STATEMENT_SETTING} must be >= 0 (0: no limit), got {statement_seconds!r}"
        )
    # Rounded up: a positive setting never becomes 0, which PostgreSQL reads as "no limit".
    return math.ceil(lock_seconds * 1000), math.ceil(statement_seconds * 1000)


def set_timeouts(connection: sa.Connection) -> None:
    """Apply the transaction's timeouts; call from the engine's "begin" hook."""
    timeouts = connection.get_execution_options().get(TIMEOUTS_OPTION)
    if timeouts is None:
        return
    lock_ms, statement_ms = timeouts
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {lock_ms}")
    else:
        connection.exec_driver_sql(
            f"SET LOCAL lock_timeout = {lock_ms}; SET LOCAL statement_timeout = {statement_ms}"
        )


@contextmanager
def bounded_waits(subject: str, lock_seconds: float, statement_seconds: float) -> Iterator[None]:
    """Turn a lock or statement timeout inside the block into a ``WarehouseTimeoutError``
    naming ``subject`` (e.g. ``table 'daily'``) and the setting that ended the wait."""
    try:
        yield
    except sa.exc.OperationalError as error:
        setting = timeout_setting_of(error.orig)
        if setting == LOCK_SETTING:
            raise WarehouseTimeoutError(
                f"warehouse {subject}: waited longer than Warehouse.{LOCK_SETTING}="
                f"{lock_seconds:g} s for a lock another connection holds; the transaction"
                " was rolled back"
            ) from error
        if setting == STATEMENT_SETTING:
            raise WarehouseTimeoutError(
                f"warehouse {subject}: a statement ran longer than Warehouse."
                f"{STATEMENT_SETTING}={statement_seconds:g} s; the transaction was rolled back"
            ) from error
        raise


def timeout_setting_of(error: BaseException | None) -> str | None:
    """The setting whose timeout a driver error reports, if it reports one."""
    if isinstance(error, psycopg2.errors.LockNotAvailable):
        return LOCK_SETTING
    if isinstance(error, psycopg2.errors.QueryCanceled) and "statement timeout" in str(error):
        return STATEMENT_SETTING
    if isinstance(error, sqlite3.OperationalError) and "database is locked" in str(error):
        return LOCK_SETTING
    return None
