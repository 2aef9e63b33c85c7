"""The warehouse resource: one engine per URL, the tables, fast idempotent writes, reads.

Every write validates the frame (``warehouse_frames``: columns, keys, types; errors name
the table, the column and the value) and turns it into an Arrow table in load form, all in
one transaction: a failure anywhere leaves the table as it was. Rows are loaded with COPY
of a CSV built by Arrow (PostgreSQL) or one executemany (SQLite).

A partition write (``replace_partitions``) reads the days' stored rows and compares them
with the frame (``warehouse_changes``): only the stored rows the frame changes or drops are
deleted and only the changed and new rows loaded, so a first load is a plain COPY and a
re-sync where few rows changed writes only those. On PostgreSQL, a table with a generated
row fingerprint (``warehouse_fingerprint``) is compared by its keys and fingerprints only.
An ``upsert`` stages the frame in a temporary table shaped like the target and merges it
with a single ``INSERT .. SELECT .. ON CONFLICT DO UPDATE`` that leaves identical rows
untouched.

Lock waits are bounded: every transaction waits at most ``lock_timeout_seconds`` for a lock
(PostgreSQL ``lock_timeout``, SQLite's busy timeout) and, if set, runs each statement for at
most ``statement_timeout_seconds`` (PostgreSQL ``statement_timeout``); past either, the
transaction is rolled back and a ``WarehouseTimeoutError`` names the table and the setting.

Bulk reads (``read_columns``) fetch only the asked columns of a date range: on PostgreSQL a
``COPY (SELECT ..) TO STDOUT`` parsed by Arrow's CSV reader, on SQLite one projected SELECT.
"""

import datetime as dt
import functools
import io
import os
import re
import textwrap
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from pyarrow import csv
from pydantic import Field
from sqlalchemy.dialects import postgresql, sqlite

from zquant_pipelines.constants import (
    DATE_COLUMNS,
    DEFAULT_DATA_DIR,
    ENV_DATA_DIR,
    ENV_WAREHOUSE_URL,
)
from zquant_pipelines.resources.warehouse_changes import changed_rows
from zquant_pipelines.resources.warehouse_fingerprint import (
    FINGERPRINT_COLUMN,
    FINGERPRINTED,
    fingerprint_comment,
    fingerprint_ddl,
    fingerprinted,
    fingerprints,
    read_stored_fingerprints,
    stored_fingerprints_query,
)
from zquant_pipelines.resources.warehouse_frames import (
    is_plain_date,
    load_type,
    prepare_rows,
    to_date,
    with_date_objects,
)
from zquant_pipelines.resources.warehouse_schema import TABLES, metadata, with_value_columns
from zquant_pipelines.resources.warehouse_timeouts import (
    DEFAULT_LOCK_TIMEOUT_SECONDS,
    TIMEOUTS_OPTION,
    bounded_waits,
    set_timeouts,
    timeouts_ms,
)

WAREHOUSE_FILE_NAME = "warehouse.db"
PARTITION_COLUMN = "trade_date"
STAGE_TABLE_PREFIX = "zq_stage_"
# Parallel step processes share one SQLite file: a writer waits this long for the lock
# (each Warehouse transaction sets its own lock_timeout_seconds instead).
SQLITE_BUSY_TIMEOUT_SECONDS = 60
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
# Execution option marking a write transaction (SQLite takes the write lock at BEGIN).
WRITE_TRANSACTION_OPTION = "zquant_write_transaction"
# When more than this share of the stored rows changed, a partition write deletes the days
# and loads every row instead of deleting the changed rows by key.
WHOLE_DAYS_SHARE = 0.5
DIALECT_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
POSTGRES_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

EngineKey = tuple[str, str | None]
_engines: dict[EngineKey, sa.Engine] = {}
_engines_lock = threading.Lock()
# Engines whose tables are known to exist: ensure_schema costs nothing after the first call.
_schema_ready: set[EngineKey] = set()
# Per warehouse, the tables add_columns widened beyond the declared schema: copies, never
# the shared TABLES entries, so another warehouse of the process keeps the declared table.
_widened_tables: dict[EngineKey, dict[str, sa.Table]] = {}


def default_warehouse_url() -> str:
    """ZQUANT_WAREHOUSE_URL, else a SQLite file in ZQUANT_DATA_DIR (default ``data``)."""
    configured = os.environ.get(ENV_WAREHOUSE_URL)
    if configured:
        return configured
    data_dir = Path(os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR).resolve()
    return f"sqlite:///{data_dir / WAREHOUSE_FILE_NAME}"


def engine_for(url: str, db_schema: str | None = None) -> sa.Engine:
    """The process-wide engine of (url, db_schema), created on first use."""
    key = (url, db_schema)
    with _engines_lock:
        if key not in _engines:
            _engines[key] = build_engine(url, db_schema)
        return _engines[key]


def dispose_engine(url: str, db_schema: str | None = None) -> None:
    with _engines_lock:
        engine = _engines.pop((url, db_schema), None)
        _schema_ready.discard((url, db_schema))
    if engine is not None:
        engine.dispose()


def build_engine(url: str, db_schema: str | None) -> sa.Engine:
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if db_schema is not None:
            raise ValueError(
                f"db_schema {db_schema!r} is for PostgreSQL only; a SQLite warehouse is its file"
            )
        return create_sqlite_engine(parsed)
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg2":
            raise ValueError(
                f"warehouse driver {parsed.drivername!r} is not supported: writes use psycopg2's"
                " COPY, use postgresql:// or postgresql+psycopg2://"
            )
        return create_postgres_engine(parsed, db_schema)
    raise ValueError(
        f"warehouse dialect {backend!r} is not supported: use a postgresql:// or sqlite:/// URL"
    )


def create_sqlite_engine(url: sa.URL) -> sa.Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})

    @sa.event.listens_for(engine, "connect")
    def configure_connection(dbapi_connection, _record):
        # The driver's own implicit BEGIN would defer the write lock and commit DDL early:
        # let the "begin" hook below open every transaction instead.
        dbapi_connection.isolation_level = None
        # WAL: readers never block the one writer, so parallel steps can read while one writes.
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    @sa.event.listens_for(engine, "begin")
    def begin_transaction(connection):
        set_timeouts(connection)
        # A writer takes the lock at BEGIN, so a busy database makes it wait (busy timeout)
        # instead of failing when it upgrades a read lock mid-transaction.
        writes = connection.get_execution_options().get(WRITE_TRANSACTION_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def create_postgres_engine(url: sa.URL, db_schema: str | None) -> sa.Engine:
    connect_args: dict = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS}
    if db_schema is not None:
        if not POSTGRES_SCHEMA_NAME.fullmatch(db_schema):
            raise ValueError(
                f"db_schema {db_schema!r} is not a plain identifier (letters, digits, _)"
            )
        connect_args["options"] = f"-csearch_path={db_schema}"
    engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    sa.event.listen(engine, "begin", set_timeouts)
    return engine


class Warehouse(dg.ConfigurableResource):
    """The market-data store: tushare-named tables on PostgreSQL or SQLite.

    Frames go in and come out in warehouse form: the table's columns, dates as
    ``datetime.date`` (ISO strings and Timestamps are accepted on the way in), NULL for
    missing values. Tables are created on first use.
    """

    url: str = Field(
        description="SQLAlchemy URL: postgresql://user@host/db or sqlite:///path/warehouse.db"
    )
    db_schema: str | None = Field(
        default=None,
        description="PostgreSQL schema holding the tables (created when missing); default:"
        " the connection's search_path",
    )
    lock_timeout_seconds: float = Field(
        default=DEFAULT_LOCK_TIMEOUT_SECONDS,
        description="Longest wait for a lock another connection holds (PostgreSQL"
        " lock_timeout, SQLite busy timeout); then the transaction fails naming the table",
    )
    statement_timeout_seconds: float = Field(
        default=0,
        description="Longest run of one statement on PostgreSQL (statement_timeout);"
        " 0: no limit",
    )

    @property
    def engine(self) -> sa.Engine:
        """The shared engine; its transactions carry this warehouse's timeouts."""
        timeouts = timeouts_ms(self.lock_timeout_seconds, self.statement_timeout_seconds)
        return engine_for(self.url, self.db_schema).execution_options(**{TIMEOUTS_OPTION: timeouts})

    def _bounded_waits(self, subject: str):
        return bounded_waits(subject, self.lock_timeout_seconds, self.statement_timeout_seconds)

    def dispose(self) -> None:
        """Close this warehouse's pooled connections; the next call reconnects."""
        dispose_engine(self.url, self.db_schema)

    def ensure_schema(self) -> None:
        """Create the tables (and the db_schema) that are missing, and on PostgreSQL the row
        fingerprints (``add_fingerprints``); safe to call concurrently."""
        key = (self.url, self.db_schema)
        if key in _schema_ready:
            return
        with self._write_transaction("schema (creating tables)") as conn:
            if conn.dialect.name == "postgresql":
                # Two processes creating the same tables at once would collide in the catalog.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('zquant.warehouse'))"))
                if self.db_schema is not None:
                    conn.execute(sa.schema.CreateSchema(self.db_schema, if_not_exists=True))
            metadata.create_all(conn)
            add_missing_columns(conn, [self.table(table.name) for table in metadata.sorted_tables])
            if conn.dialect.name == "postgresql":
                add_fingerprints(conn)
        _schema_ready.add(key)

    def table(self, name: str) -> sa.Table:
        """``name``'s definition in this warehouse: the declared one, with the columns
        ``add_columns`` gave it here."""
        widened = _widened_tables.get((self.url, self.db_schema), {}).get(name)
        return widened if widened is not None else table_named(name)

    def add_columns(self, table: str, columns: list[str]) -> list[str]:
        """Add nullable DOUBLE value columns to ``table`` in this warehouse's definition and
        database (a factor asked for with a window factor_daily does not hold); existing
        columns are kept. Returns every column of the table, the ones added earlier in this
        process included (a write must give them all)."""
        key = (self.url, self.db_schema)
        target = self.table(table)
        new = [column for column in columns if column not in target.c]
        if new:
            _widened_tables.setdefault(key, {})[table] = with_value_columns(target, new)
            _schema_ready.discard(key)
        self.ensure_schema()
        return list(self.table(table).c.keys())

    @contextmanager
    def _write_transaction(self, subject: str) -> Iterator[sa.Connection]:
        writes = self.engine.execution_options(**{WRITE_TRANSACTION_OPTION: True})
        with self._bounded_waits(subject), writes.begin() as conn:
            yield conn

    def upsert(self, table: str, frame: pd.DataFrame) -> int:
        """Insert or update ``frame``'s rows by primary key; returns the frame's row count.

        Rows equal to the stored ones are not rewritten, so re-running a write changes nothing.
        """
        return self._write(self.table(table), frame, partition_days=None)

    def replace_partition(
        self,
        table: str,
        frame: pd.DataFrame,
        trade_date: dt.date,
        *,
        empty_day_is_genuine: bool = False,
    ) -> int:
        """Make the rows of ``trade_date`` exactly ``frame``; other days stay untouched.

        Stored rows of that day whose key is not in the frame are deleted; the rest is
        upserted. Returns the frame's row count. An empty frame is refused unless the caller
        says the day really has no rows: an empty reply must never empty a stored day.
        """
        return self.replace_partitions(
            table, frame, [trade_date], empty_day_is_genuine=empty_day_is_genuine
        )

    def replace_partitions(
        self,
        table: str,
        frame: pd.DataFrame,
        trade_dates: Sequence[dt.date],
        *,
        empty_day_is_genuine: bool = False,
    ) -> int:
        """``replace_partition`` of each of ``trade_dates`` at once, in one transaction.

        The rows of each day become exactly ``frame``'s rows of that day (a bulk load when
        none of the days is stored yet); a failure leaves every day as it was. A day without
        rows in ``frame`` is refused unless ``empty_day_is_genuine``.
        """
        target = self.table(table)
        if PARTITION_COLUMN not in target.c:
            raise ValueError(f"table {table!r} has no {PARTITION_COLUMN} column to replace by")
        days = sorted(
            {to_date(day, f"{table} replace_partition trade_date") for day in trade_dates}
        )
        rows = prepare_rows(target, frame)
        check_partition(target.name, rows, days)
        if not empty_day_is_genuine:
            present = set(pc.unique(rows[PARTITION_COLUMN]).to_pylist())
            empty = [day for day in days if day.isoformat() not in present]
            if empty:
                cause = "a frame without rows of that day" if rows.num_rows else "an empty frame"
                raise ValueError(
                    f"{table}: refusing to empty {PARTITION_COLUMN} {empty[0]:%Y-%m-%d} with"
                    f" {cause}; pass empty_day_is_genuine=True if that day really has no rows"
                )
        return self._write(target, rows, partition_days=days)

    def _write(
        self,
        target: sa.Table,
        frame: pd.DataFrame | pa.Table,
        partition_days: list[dt.date] | None,
    ) -> int:
        """Write ``frame`` (already in load form, ``prepare_rows``', when ``partition_days``
        is given)."""
        if partition_days is None:
            rows = prepare_rows(target, frame)
            if not rows.num_rows:
                return 0
        else:
            rows = frame
        self.ensure_schema()
        subject = f"table {target.name!r}"
        if partition_days is None:
            with self._write_transaction(subject) as conn:
                merge_rows(conn, target, rows, None)
            return rows.num_rows
        try:
            with self._write_transaction(subject) as conn:
                write_changes(conn, target, rows, partition_days)
        except sa.exc.IntegrityError:
            # A key stored meanwhile by a writer that does not lock the days (``upsert``):
            # the write rolled back whole; merging instead, in a transaction of its own,
            # costs nothing on the common path (no savepoint's two round trips per write).
            with self._write_transaction(subject) as conn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(lock_days(target, partition_days))
                merge_rows(conn, target, rows, partition_days)
        return rows.num_rows

    def read_frame(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        """Run a SELECT; result columns named like a date column come back as datetime.date."""
        return self._query(sa.text(sql), params or {}, f"query {textwrap.shorten(sql, 60)!r}")

    def read_table(self, table: str, where: dict | None = None) -> pd.DataFrame:
        """A table's rows (matching ``where``: column -> value), ordered by primary key."""
        target = self.table(table)
        conditions = []
        for column, value in (where or {}).items():
            if column not in target.c:
                raise ValueError(f"table {table!r} has no column {column!r} to filter on")
            if column in DATE_COLUMNS:
                value = to_date(value, f"{table}.{column} filter")
            conditions.append(target.c[column] == value)
        statement = sa.select(target).where(*conditions).order_by(*target.primary_key)
        return self._query(statement, {}, f"table {table!r}")

    def read_columns(
        self,
        table: str,
        columns: Sequence[str],
        start: dt.date,
        end: dt.date,
        codes: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """``columns`` of the rows of ``table`` with trade_date in [start, end] (of ``codes``).

        The same rows and values as a plain SELECT in warehouse form (dates as
        ``datetime.date``, NULL as None in text and date columns, NaN in numeric ones), in no
        particular order; only the asked columns cross the wire. PostgreSQL streams them with
        COPY into Arrow (no per-row Python objects but the final text and date cells).
        """
        target = self.table(table)
        if PARTITION_COLUMN not in target.c:
            raise ValueError(f"table {table!r} has no {PARTITION_COLUMN} column to read by")
        if not columns:
            raise ValueError(f"read_columns of table {table!r}: name at least one column")
        unknown = [name for name in columns if name not in target.c]
        if unknown:
            raise ValueError(
                f"table {table!r} has no columns {unknown}; columns: {list(target.c.keys())}"
            )
        first = to_date(start, f"{table} read_columns start")
        last = to_date(end, f"{table} read_columns end")
        statement = sa.select(*(target.c[name] for name in columns)).where(
            target.c[PARTITION_COLUMN].between(first, last)
        )
        if codes is not None:
            statement = statement.where(target.c.ts_code.in_(list(codes)))
        if self.engine.dialect.name == "sqlite":
            frame = self._query(statement, {}, f"table {table!r}")
            numeric = [name for name in columns if arrow_type(target.c[name]) == pa.float64()]
            return frame.astype({name: "float64" for name in numeric})
        self.ensure_schema()
        with self._bounded_waits(f"table {table!r}"), self.engine.connect() as conn:
            return copy_select(conn, statement).to_pandas()

    def count_rows(self, table: str, trade_date: dt.date | None = None) -> int:
        """Rows of ``table``, or of one trading day of it."""
        target = self.table(table)
        statement = sa.select(sa.func.count()).select_from(target)
        if trade_date is not None:
            if PARTITION_COLUMN not in target.c:
                raise ValueError(f"table {table!r} has no {PARTITION_COLUMN} column to count by")
            day = to_date(trade_date, f"{table} count_rows trade_date")
            statement = statement.where(target.c[PARTITION_COLUMN] == day)
        self.ensure_schema()
        with self._bounded_waits(f"table {table!r}"), self.engine.connect() as conn:
            return int(conn.execute(statement).scalar_one())

    def _query(self, statement: sa.Executable, params: dict, subject: str) -> pd.DataFrame:
        self.ensure_schema()
        with self._bounded_waits(subject), self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                # Dates are ISO text in SQLite: compare them as such.
                params = {
                    name: value.isoformat() if is_plain_date(value) else value
                    for name, value in params.items()
                }
            result = conn.execute(statement, params)
            frame = pd.DataFrame.from_records(
                result.fetchall(), columns=list(result.keys()), coerce_float=True
            )
        return with_date_objects(frame)


def add_missing_columns(conn: sa.Connection, tables: list[sa.Table]) -> None:
    """Add the columns a table made by an earlier version lacks (new factors of factor_daily).

    Only additions: every value column is nullable, so ALTER TABLE .. ADD COLUMN upgrades a
    table in place and its stored rows read NULL there until recomputed.
    """
    inspector = sa.inspect(conn)
    quote = conn.dialect.identifier_preparer.quote
    for table in tables:
        stored = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in stored:
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(
                    sa.text(
                        f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}"
                    )
                )


def add_fingerprints(conn: sa.Connection) -> None:
    """Give each fingerprinted table (``warehouse_fingerprint``) its generated fingerprint
    column, on PostgreSQL.

    The column stays out of the SQLAlchemy tables: reads and inserts never name it (a
    ``SELECT *`` shows it). Its comment names the value columns its expression covers; a
    table without the column (made by an earlier version), or whose column covers other
    columns (a value column added since), gets it (anew). Adding a STORED generated column
    rewrites the table once, computing the fingerprint of every stored row.
    """
    quote = conn.dialect.identifier_preparer.quote
    comments = dict(
        conn.execute(
            sa.text(
                "SELECT name, col_description(attrelid, attnum) FROM unnest(:names) AS name"
                " JOIN pg_attribute ON attrelid = to_regclass(quote_ident(name))"
                " AND attname = :column AND NOT attisdropped"
            ),
            {"names": list(FINGERPRINTED), "column": FINGERPRINT_COLUMN},
        ).all()
    )
    for table, columns in FINGERPRINTED.items():
        comment = fingerprint_comment(columns)
        if comments.get(table, comment) != comment:
            conn.execute(sa.text(f"ALTER TABLE {quote(table)} DROP COLUMN {FINGERPRINT_COLUMN}"))
        if comments.get(table) != comment:
            conn.execute(
                sa.text(
                    f"ALTER TABLE {quote(table)} ADD COLUMN {FINGERPRINT_COLUMN}"
                    f" {fingerprint_ddl(columns, quote)}"
                )
            )
            conn.execute(
                sa.text(f"COMMENT ON COLUMN {quote(table)}.{FINGERPRINT_COLUMN} IS :comment"),
                {"comment": comment},
            )


def table_named(table: str) -> sa.Table:
    if table not in TABLES:
        raise ValueError(f"unknown warehouse table {table!r}; tables: {sorted(TABLES)}")
    return TABLES[table]


def check_partition(table: str, rows: pa.Table, days: list[dt.date]) -> None:
    partition = rows[PARTITION_COLUMN]
    days_given = pc.is_in(partition, value_set=pa.array([day.isoformat() for day in days]))
    other_day = ~days_given.to_numpy(zero_copy_only=False)
    if other_day.any():
        position = int(np.flatnonzero(other_day)[0])
        replacing = ", ".join(day.isoformat() for day in days[:3]) + (", .." if days[3:] else "")
        raise ValueError(
            f"{table}: replacing trade_date {replacing} but {int(other_day.sum())} frame"
            f" row(s) hold another day, first {partition[position].as_py()!r}"
            f" at frame row {position}"
        )


def stage_table(target: sa.Table) -> sa.Table:
    """A temporary table with the target's columns and key, living for this transaction."""
    return sa.Table(
        STAGE_TABLE_PREFIX + target.name,
        sa.MetaData(),
        *(
            sa.Column(column.name, column.type, primary_key=column.primary_key)
            for column in target.columns
        ),
        prefixes=["TEMPORARY"],
    )


def write_changes(
    conn: sa.Connection, target: sa.Table, rows: pa.Table, days: list[dt.date]
) -> None:
    """Make the stored rows of ``days`` exactly ``rows``, touching only the rows that differ.

    Deletes the stored rows that ``rows`` changes or lacks and loads the changed and new
    ones (when most stored rows change: deletes the days and loads every row). Raises
    IntegrityError when a load hits a key stored meanwhile by a writer that does not lock
    the days (``upsert``): the caller rolls back and merges.
    """
    stored = stored_rows(conn, target, days)
    keys = [column.name for column in target.primary_key]
    stale, fresh = changed_rows(stored, compared_rows(conn, target, rows), keys)
    deletion = ""  # PostgreSQL: the DELETE of the changed rows, sent in the load's round trip
    if len(stale) > stored.num_rows * WHOLE_DAYS_SHARE:
        conn.execute(sa.delete(target).where(target.c[PARTITION_COLUMN].in_(days)))
        fresh = np.arange(rows.num_rows)
    elif len(stale):
        stale_keys = stored.select(keys).take(stale)
        if conn.dialect.name == "postgresql" and len(fresh):
            deletion = delete_keys_statement(conn, target, stale_keys)
        else:
            delete_keys(conn, target, stale_keys)
    if len(fresh):
        load_rows(conn, target, rows.take(fresh), first=deletion)


def lock_days(target: sa.Table, days: list[dt.date]) -> str:
    """PostgreSQL's statement serialising partition writes of the same table and days: a
    transaction advisory lock per day, taken in day order (SQLite's writer holds the whole
    database from BEGIN), so the stored rows read next stay what the write compares
    against. ``stored_rows`` sends it in the read's round trip."""
    table = f"zquant.warehouse.{target.name}".replace("'", "''")
    ordinals = ",".join(str(day.toordinal()) for day in sorted(days))
    return (
        f"SELECT pg_advisory_xact_lock(hashtext('{table}'), day)"
        f" FROM unnest('{{{ordinals}}}'::integer[]) AS day ORDER BY day;"
    )


def stored_rows(conn: sa.Connection, target: sa.Table, days: list[dt.date]) -> pa.Table:
    """The stored rows of ``days`` in load form (an Arrow table typed by ``load_type``); of
    a fingerprinted table (``compared_rows``), their keys and fingerprints. On PostgreSQL
    the days are locked first (``lock_days``), in the same round trip."""
    if conn.dialect.name == "postgresql":
        locks = lock_days(target, days)
        if fingerprinted(conn.dialect.name, target) is not None:
            buffer = io.BytesIO()
            query = stored_fingerprints_query(target.name, days)
            copy(conn, f"{locks} COPY ({query}) TO STDOUT WITH (FORMAT binary)", buffer)
            return read_stored_fingerprints(buffer.getbuffer())
        # The days as an array literal: ISO dates are digits and dashes only.
        days_array = ",".join(day.isoformat() for day in days)
        query = (
            f"{select_columns(target.name, tuple(target.c.keys()))}"
            f" WHERE {PARTITION_COLUMN} = ANY('{{{days_array}}}'::date[])"
        )
        schema = pa.schema([(column.name, load_type(column)) for column in target.columns])
        return copy_out(conn, query, schema, first=locks)
    # The values as SQLite holds them (dates as ISO text), without the types' conversions.
    raw = [sa.type_coerce(column, sa.types.NullType()).label(column.name) for column in target.c]
    statement = sa.select(*raw).where(target.c[PARTITION_COLUMN].in_(days))
    values = list(zip(*conn.execute(statement).fetchall(), strict=False))
    return pa.table(
        {
            column.name: pa.array(values[position] if values else [], load_type(column))
            for position, column in enumerate(target.columns)
        }
    )


def compared_rows(conn: sa.Connection, target: sa.Table, rows: pa.Table) -> pa.Table:
    """``rows`` (load form) as a partition write compares them with ``stored_rows``: on a
    fingerprinted table their keys and fingerprints (``warehouse_fingerprint``), so only
    those cross the wire; else every column."""
    covered = fingerprinted(conn.dialect.name, target)
    if covered is None:
        return rows
    keys = rows.select([column.name for column in target.primary_key])
    return keys.append_column(
        FINGERPRINT_COLUMN, pa.array(fingerprints([rows[column] for column in covered]))
    )


@functools.cache
def select_columns(table: str, columns: tuple[str, ...]) -> str:
    """PostgreSQL's ``SELECT columns FROM table``, built once per table and columns (a
    widened table's definition is another key); no schema: the connection's search_path
    names it."""
    quote = postgresql.dialect().identifier_preparer.quote
    return f"SELECT {', '.join(map(quote, columns))} FROM {quote(table)}"


def delete_keys(conn: sa.Connection, target: sa.Table, keys: pa.Table) -> None:
    """Delete the rows of ``target`` with these primary keys (in load form): PostgreSQL one
    statement over the keys as arrays (``delete_keys_statement``), SQLite one executemany."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(delete_keys_statement(conn, target, keys))
        return
    quote = conn.dialect.identifier_preparer.quote
    names = keys.column_names
    conn.exec_driver_sql(
        f"DELETE FROM {quote(target.name)} WHERE "
        + " AND ".join(f"{quote(name)} = ?" for name in names),
        list(zip(*(keys[name].to_pylist() for name in names), strict=True)),
    )


def delete_keys_statement(conn: sa.Connection, target: sa.Table, keys: pa.Table) -> str:
    """PostgreSQL's DELETE of the rows of ``target`` with these primary keys (in load form),
    the keys as array literals quoted by the driver, so that it can go in another
    statement's round trip."""
    quote = conn.dialect.identifier_preparer.quote
    names = keys.column_names
    kinds = [target.c[name].type.compile(dialect=conn.dialect) for name in names]
    arrays = ", ".join(f"CAST(%s AS {kind}[])" for kind in kinds)
    statement = (
        f"DELETE FROM {quote(target.name)} WHERE ({', '.join(map(quote, names))})"
        f" IN (SELECT * FROM unnest({arrays}));"
    )
    with conn.connection.dbapi_connection.cursor() as cursor:
        return cursor.mogrify(statement, tuple(keys[name].to_pylist() for name in names)).decode()


def merge_rows(
    conn: sa.Connection, target: sa.Table, rows: pa.Table, days: list[dt.date] | None
) -> None:
    """Stage ``rows`` and merge them into ``target`` (only differing rows rewritten); with
    ``days``, first delete those days' stored rows whose key ``rows`` lacks."""
    stage = stage_table(target)
    stage.create(conn)
    if rows.num_rows:
        load_rows(conn, stage, rows)
    if days:
        conn.execute(delete_missing_keys(target, stage, days))
    conn.execute(merge_stage(conn.dialect.name, target, stage))
    stage.drop(conn)


def load_rows(conn: sa.Connection, table: sa.Table, rows: pa.Table, first: str = "") -> None:
    """Append ``rows`` to ``table``: PostgreSQL COPY of a CSV (after the statements
    ``first``, in the same round trip), SQLite one executemany."""
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(name) for name in rows.column_names)
    if conn.dialect.name == "postgresql":
        copy(
            conn,
            f"{first} COPY {quote(table.name)} ({columns}) FROM STDIN WITH (FORMAT csv)",
            copy_csv(rows),
        )
    else:
        if first:
            raise ValueError("load_rows: statements sent first are PostgreSQL's, not SQLite's")
        placeholders = ", ".join("?" for _ in rows.column_names)
        conn.exec_driver_sql(
            f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({placeholders})",
            list(zip(*(column.to_pylist() for column in rows.columns), strict=True)),
        )


def copy(conn: sa.Connection, statement: str, stream: io.BytesIO) -> None:
    """Run a psycopg2 ``COPY`` on the connection, its errors raised as SQLAlchemy raises
    those of its own statements (IntegrityError, OperationalError of a lock timeout, ..)."""
    dbapi_error = conn.dialect.dbapi.Error
    try:
        with conn.connection.dbapi_connection.cursor() as cursor:
            cursor.copy_expert(statement, stream)
    except dbapi_error as error:
        raise sa.exc.DBAPIError.instance(statement, None, error, dbapi_error) from error


def copy_csv(rows: pd.DataFrame | pa.Table) -> io.BytesIO:
    """``rows`` as CSV for PostgreSQL's ``COPY .. (FORMAT csv)``, without a header.

    Arrow writes nulls as unquoted empty fields (NULL to COPY), text quoted, floats as their
    shortest exact decimal, so every value reads back as it was; in C++, at a fraction of
    the time pandas' ``to_csv`` takes.
    """
    if isinstance(rows, pd.DataFrame):
        rows = pa.Table.from_pandas(rows, preserve_index=False, nthreads=1)
    buffer = io.BytesIO()
    csv.write_csv(rows, buffer, write_options=csv.WriteOptions(include_header=False))
    buffer.seek(0)
    return buffer


def arrow_type(column: sa.Column) -> pa.DataType:
    """The Arrow type a warehouse column reads as (integers as float64: they may be NULL)."""
    if isinstance(column.type, sa.Date):
        return pa.date32()
    if isinstance(column.type, sa.String):
        return pa.string()
    return pa.float64()


def copy_select(conn: sa.Connection, statement: sa.Select) -> pa.Table:
    """The rows of ``statement`` as an Arrow table typed by ``arrow_type`` (``copy_out``)."""
    schema = pa.schema([(column.name, arrow_type(column)) for column in statement.selected_columns])
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    if not conn.in_transaction():
        # copy_out's raw cursor would not autobegin: the "begin" hook sets the timeouts.
        conn.begin()
    with conn.connection.dbapi_connection.cursor() as cursor:
        query = cursor.mogrify(str(compiled), compiled.params).decode()
    return copy_out(conn, query, schema)


def copy_out(conn: sa.Connection, query: str, schema: pa.Schema, first: str = "") -> pa.Table:
    """The rows of the PostgreSQL ``query`` (in a begun transaction) as an Arrow table of
    ``schema`` (its columns in the query's order), through ``COPY (..) TO STDOUT``, after
    the statements ``first`` (if any; their results are discarded).

    COPY's CSV writes NULL as an unquoted empty field and an empty text as ``""``, dates in
    the DateStyle (set to ISO here) and floats as their shortest exact decimal
    (extra_float_digits >= 1), which Arrow parses back to the same double. The settings go
    in the COPY's own round trip.
    """
    buffer = io.BytesIO()
    copy(
        conn,
        f"{first} SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL extra_float_digits = 3;"
        f" COPY ({query}) TO STDOUT WITH (FORMAT csv)",
        buffer,
    )
    if not buffer.getbuffer().nbytes:
        return schema.empty_table()
    return csv.read_csv(
        pa.BufferReader(pa.py_buffer(buffer.getbuffer())),
        read_options=csv.ReadOptions(column_names=schema.names),
        convert_options=csv.ConvertOptions(
            column_types=schema,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )


def same_key(target: sa.Table, stage: sa.Table) -> list:
    return [stage.c[column.name] == column for column in target.primary_key]


def delete_missing_keys(target: sa.Table, stage: sa.Table, days: list[dt.date]) -> sa.Delete:
    """Delete the days' stored rows whose key the staged frame lacks."""
    staged = sa.select(sa.literal(1)).select_from(stage).where(*same_key(target, stage))
    return sa.delete(target).where(target.c[PARTITION_COLUMN].in_(days), ~staged.exists())


def merge_stage(dialect: str, target: sa.Table, stage: sa.Table) -> sa.Insert:
    """Upsert the staged rows, rewriting only rows that differ (NULL-safe comparison)."""
    values = [column.name for column in target.columns if not column.primary_key]
    # SQLite parses INSERT .. SELECT .. ON CONFLICT only when the SELECT has a WHERE.
    staged = sa.select(*stage.columns).where(sa.true())
    insert = DIALECT_INSERTS[dialect](target).from_select(list(stage.c.keys()), staged)
    return insert.on_conflict_do_update(
        index_elements=list(target.primary_key),
        set_={name: insert.excluded[name] for name in values},
        where=sa.or_(*(target.c[name].is_distinct_from(insert.excluded[name]) for name in values)),
    )
