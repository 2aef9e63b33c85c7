"""Warehouse writes and reads on real SQLite and PostgreSQL (the `warehouse` fixture runs
every test on both): round trips, idempotent upserts, partition replacement, atomicity,
validation errors, the COPY path at size, concurrent writers."""

import datetime as dt
import threading

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from zquant_pipelines.constants import DATE_COLUMNS, ENV_DATA_DIR, ENV_WAREHOUSE_URL, TABLE_KEYS
from zquant_pipelines.resources import warehouse as warehouse_module
from zquant_pipelines.resources.warehouse import Warehouse, default_warehouse_url
from zquant_pipelines.resources.warehouse_schema import (
    FACTOR_COLUMNS,
    INTEGER_COLUMNS,
    TABLE_COLUMNS,
    TABLES,
    TEXT_COLUMNS,
)
from zquant_pipelines_tests.support.warehouse_rows import contents, daily_frame, records

FIRST_DAY = dt.date(2026, 2, 26)
SECOND_DAY = dt.date(2026, 2, 27)
# A text value the CSV of the COPY path has to quote: comma, quote, newline, non-ASCII.
AWKWARD_TEXT = 'Ping An, "Bank"\n平安银行'


def sample_value(table: str, column: str, row: int, position: int):
    """Deterministic values with NULLs sprinkled over every non-key column."""
    if column == "ts_code":
        stock = row if table == "stock_basic" else row // 2
        return f"{600000 + stock}.SH"
    if column == "trade_date":
        return FIRST_DAY + dt.timedelta(days=row % 2)
    if column == "exchange" and table == "trade_cal":
        return ("SSE", "SZSE")[row % 2]
    if column == "cal_date":
        return FIRST_DAY + dt.timedelta(days=row // 2)
    if column in DATE_COLUMNS and column in TABLE_KEYS[table]:
        return FIRST_DAY - dt.timedelta(days=row)  # the financial statements' versions
    if column in TABLE_KEYS[table]:
        return f"{column}{row}"  # stock_screen.screen, table_statistics.table_name
    if row % 3 == 1:
        return None
    if column in DATE_COLUMNS:
        return FIRST_DAY - dt.timedelta(days=100 * (row + 1))
    if column == "is_open":
        return row % 2
    if column in ("name", "area", "industry", "symbol", "market", "exchange"):
        return AWKWARD_TEXT if row == 0 else f"{column}{row}"
    if column in ("list_status", "is_hs"):
        return "LNP"[row % 3]
    if column in TEXT_COLUMNS:
        return f'{{"{column}": {row}}}'  # the JSON documents of the derived tables
    if column in INTEGER_COLUMNS:
        return row * 1000 + position
    # Fractions like 1/7 need every digit to survive the CSV round trip.
    return row * 10.5 + position / 7


def sample_frame(table: str, rows: int = 6) -> pd.DataFrame:
    """Rows in warehouse form (dates as datetime.date, None for NULL), sorted by key."""
    columns = TABLE_COLUMNS[table]
    records = [
        {
            column: sample_value(table, column, row, position)
            for position, column in enumerate(columns)
        }
        for row in range(rows)
    ]
    return pd.DataFrame(records, columns=list(columns)).sort_values(list(TABLE_KEYS[table]))


def with_mixed_date_types(frame: pd.DataFrame) -> pd.DataFrame:
    """The same dates given as date, Timestamp and ISO text, in turn."""
    mixed = frame.copy()
    for column in DATE_COLUMNS.intersection(frame.columns):
        mixed[column] = [
            value if value is None else (value, pd.Timestamp(value), value.isoformat())[i % 3]
            for i, value in enumerate(frame[column])
        ]
    return mixed


def run_ddl(warehouse: Warehouse, postgres: list[str], sqlite: list[str]) -> None:
    warehouse.ensure_schema()
    with warehouse.engine.begin() as conn:
        for statement in postgres if conn.dialect.name == "postgresql" else sqlite:
            conn.execute(sa.text(statement))


def count_updates(warehouse: Warehouse, table: str):
    """Log every UPDATE of ``table`` with a database trigger; return a reader of the count."""
    log_row = "INSERT INTO update_log VALUES (1)"
    run_ddl(
        warehouse,
        postgres=[
            "CREATE TABLE update_log (n INTEGER)",
            "CREATE FUNCTION log_update() RETURNS trigger LANGUAGE plpgsql"
            f" AS $$ BEGIN {log_row}; RETURN NULL; END $$",
            f"CREATE TRIGGER log_update AFTER UPDATE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION log_update()",
        ],
        sqlite=[
            "CREATE TABLE update_log (n INTEGER)",
            f"CREATE TRIGGER log_update AFTER UPDATE ON {table} BEGIN {log_row}; END",
        ],
    )
    return lambda: int(warehouse.read_frame("SELECT COUNT(*) AS n FROM update_log")["n"].iloc[0])


def reject_daily_close(warehouse: Warehouse, close: float) -> None:
    """Make the database itself refuse to insert a daily row with this close."""
    run_ddl(
        warehouse,
        postgres=[
            "CREATE FUNCTION reject_close() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF NEW.close = {close} THEN RAISE EXCEPTION 'close rejected'; END IF;"
            " RETURN NEW; END $$",
            "CREATE TRIGGER reject_close BEFORE INSERT ON daily"
            " FOR EACH ROW EXECUTE FUNCTION reject_close()",
        ],
        sqlite=[
            f"CREATE TRIGGER reject_close BEFORE INSERT ON daily WHEN NEW.close = {close}"
            " BEGIN SELECT RAISE(ABORT, 'close rejected'); END",
        ],
    )


def test_creates_every_table_with_date_columns(warehouse):
    warehouse.ensure_schema()
    warehouse.ensure_schema()

    inspector = sa.inspect(warehouse.engine)
    assert set(inspector.get_table_names()) == set(TABLES)
    for table, columns in TABLE_COLUMNS.items():
        described = {column["name"]: column for column in inspector.get_columns(table)}
        assert list(described) == list(columns)
        for name in DATE_COLUMNS.intersection(columns):
            assert isinstance(described[name]["type"], sa.Date), (table, name)
        assert inspector.get_pk_constraint(table)["constrained_columns"] == list(TABLE_KEYS[table])
    assert list(TABLE_COLUMNS["factor_daily"][2:]) == list(FACTOR_COLUMNS)


def test_a_factor_table_of_an_earlier_version_gains_the_new_factor_columns(warehouse):
    """factor_daily as the first release made it (12 factors, rows stored) is upgraded in
    place: the registry's newer columns are added, stored values stay, new rows fit."""
    old_columns = FACTOR_COLUMNS[:12]
    with warehouse.engine.begin() as conn:
        if warehouse.db_schema is not None:
            conn.execute(sa.schema.CreateSchema(warehouse.db_schema))
        sa.Table(
            "factor_daily",
            sa.MetaData(),
            sa.Column("ts_code", sa.String, primary_key=True),
            sa.Column("trade_date", sa.Date, primary_key=True),
            *(sa.Column(name, sa.Double) for name in old_columns),
        ).create(conn)
        conn.execute(
            sa.text(
                "INSERT INTO factor_daily (ts_code, trade_date, momentum_5)"
                " VALUES ('000001.SZ', :day, 0.25)"
            ),
            {"day": FIRST_DAY},
        )

    warehouse.ensure_schema()

    described = [c["name"] for c in sa.inspect(warehouse.engine).get_columns("factor_daily")]
    assert described == list(TABLE_COLUMNS["factor_daily"])
    stored = warehouse.read_table("factor_daily")
    assert stored["momentum_5"].tolist() == [0.25]
    assert stored["ma5_tr"].isna().all()
    frame = sample_frame("factor_daily")
    assert warehouse.upsert("factor_daily", frame) == len(frame)


@pytest.mark.parametrize("table", sorted(TABLE_COLUMNS))
def test_round_trip_keeps_values_dates_and_nulls(warehouse, table):
    expected = sample_frame(table)

    assert warehouse.upsert(table, with_mixed_date_types(expected)) == len(expected)

    stored = warehouse.read_table(table)
    assert records(stored) == records(expected)
    for column in DATE_COLUMNS.intersection(stored.columns):
        assert {type(value) for value in stored[column] if value is not None} == {dt.date}
    assert warehouse.count_rows(table) == len(expected)


def test_upsert_twice_changes_nothing(warehouse):
    frame = sample_frame("daily_basic")
    updates = count_updates(warehouse, "daily_basic")
    assert warehouse.upsert("daily_basic", frame) == len(frame)
    first = contents(warehouse, "daily_basic")

    assert warehouse.upsert("daily_basic", frame) == len(frame)

    assert contents(warehouse, "daily_basic") == first
    assert updates() == 0


def test_upsert_updates_a_changed_value_only(warehouse):
    frame = sample_frame("daily")
    updates = count_updates(warehouse, "daily")
    warehouse.upsert("daily", frame)
    changed = frame.copy()
    changed.loc[changed.index[0], "close"] = 123.25
    changed.loc[changed.index[2], "vol"] = None

    warehouse.upsert("daily", changed)

    assert contents(warehouse, "daily") == records(changed)
    assert updates() == 2


def test_replace_partition_removes_that_days_stale_rows_only(warehouse):
    warehouse.upsert(
        "daily", pd.concat([daily_frame(FIRST_DAY, range(3)), daily_frame(SECOND_DAY, range(3))])
    )
    second_day_before = records(warehouse.read_table("daily", {"trade_date": SECOND_DAY}))
    replacement = daily_frame(FIRST_DAY, range(1, 3), close=20.0)

    assert warehouse.replace_partition("daily", replacement, FIRST_DAY) == 2

    assert records(warehouse.read_table("daily", {"trade_date": FIRST_DAY})) == records(replacement)
    assert records(warehouse.read_table("daily", {"trade_date": SECOND_DAY})) == second_day_before
    assert warehouse.count_rows("daily", FIRST_DAY) == 2
    assert warehouse.count_rows("daily", SECOND_DAY) == 3


def test_replace_partition_refuses_an_empty_frame(warehouse):
    """An empty reply must never empty a stored day by accident."""
    warehouse.upsert("adj_factor", sample_frame("adj_factor"))
    before = contents(warehouse, "adj_factor")

    with pytest.raises(
        ValueError,
        match="adj_factor: refusing to empty trade_date 2026-02-26 with an empty frame;"
        " pass empty_day_is_genuine=True",
    ):
        warehouse.replace_partition("adj_factor", sample_frame("adj_factor").iloc[0:0], FIRST_DAY)

    assert contents(warehouse, "adj_factor") == before


def test_replace_partition_empties_a_day_the_caller_says_is_genuinely_empty(warehouse):
    warehouse.upsert("adj_factor", sample_frame("adj_factor"))
    other_days = warehouse.count_rows("adj_factor", SECOND_DAY)
    empty = sample_frame("adj_factor").iloc[0:0]

    warehouse.replace_partition("adj_factor", empty, FIRST_DAY, empty_day_is_genuine=True)

    assert warehouse.count_rows("adj_factor", FIRST_DAY) == 0
    assert warehouse.count_rows("adj_factor", SECOND_DAY) == other_days > 0


def test_a_day_stored_by_another_writer_after_the_check_is_still_replaced(warehouse, monkeypatch):
    """A first write of a day loads straight into the table; when another writer stored the
    day between the check and the load, the load fails on the key, leaves nothing, and the
    write merges instead."""
    warehouse.replace_partition("daily", daily_frame(FIRST_DAY, range(3)), FIRST_DAY)
    monkeypatch.setattr(warehouse_module, "any_day_stored", lambda conn, target, days: False)
    replacement = daily_frame(FIRST_DAY, range(2, 5), close=20.0)

    assert warehouse.replace_partition("daily", replacement, FIRST_DAY) == 3

    assert records(warehouse.read_table("daily", {"trade_date": FIRST_DAY})) == records(replacement)


def test_replace_partition_refuses_rows_of_another_day(warehouse):
    frame = pd.concat([daily_frame(FIRST_DAY, range(2)), daily_frame(SECOND_DAY, range(1))])

    with pytest.raises(ValueError, match=r"daily: replacing trade_date 2026-02-26 .*'2026-02-27'"):
        warehouse.replace_partition("daily", frame, FIRST_DAY)
    assert warehouse.count_rows("daily") == 0


def test_replace_partition_needs_a_trading_day_table(warehouse):
    with pytest.raises(ValueError, match="'stock_basic' has no trade_date column"):
        warehouse.replace_partition("stock_basic", sample_frame("stock_basic"), FIRST_DAY)


REJECTED_CLOSE = -1.5


def database_rejects_last_row(warehouse: Warehouse, frame: pd.DataFrame) -> pd.DataFrame:
    reject_daily_close(warehouse, REJECTED_CLOSE)
    frame.loc[frame.index[-1], "close"] = REJECTED_CLOSE
    return frame


def last_row_not_a_number(warehouse: Warehouse, frame: pd.DataFrame) -> pd.DataFrame:
    frame["close"] = frame["close"].astype(object)
    frame.loc[frame.index[-1], "close"] = "n/a"
    return frame


@pytest.mark.parametrize("write", ["upsert", "replace_partition"])
@pytest.mark.parametrize(
    ("spoil", "error"),
    [(database_rejects_last_row, sa.exc.DBAPIError), (last_row_not_a_number, ValueError)],
)
def test_failed_write_leaves_the_table_as_it_was(warehouse, write, spoil, error):
    warehouse.upsert(
        "daily", pd.concat([daily_frame(FIRST_DAY, range(4)), daily_frame(SECOND_DAY, range(4))])
    )
    before = contents(warehouse, "daily")
    # Changes every stored row of the day, drops one stock, adds two; the last one is bad.
    frame = spoil(warehouse, daily_frame(FIRST_DAY, range(1, 6), close=50.0))

    with pytest.raises(error):
        if write == "upsert":
            warehouse.upsert("daily", frame)
        else:
            warehouse.replace_partition("daily", frame, FIRST_DAY)

    assert contents(warehouse, "daily") == before


def test_database_rejection_is_not_a_false_alarm(warehouse):
    """The injected trigger passes good rows, so the failure test above measures rollback."""
    reject_daily_close(warehouse, REJECTED_CLOSE)
    frame = daily_frame(FIRST_DAY, range(3))

    warehouse.replace_partition("daily", frame, FIRST_DAY)

    assert contents(warehouse, "daily") == records(frame)


def test_duplicate_keys_are_named(warehouse):
    frame = pd.concat([daily_frame(FIRST_DAY, range(3)), daily_frame(FIRST_DAY, range(2, 3))])

    with pytest.raises(
        ValueError,
        match=r"'daily' has 2 rows sharing .*ts_code='600002.SH', trade_date='2026-02-26'",
    ):
        warehouse.upsert("daily", frame)
    assert warehouse.count_rows("daily") == 0


def test_duplicate_keys_given_as_different_date_types_are_caught(warehouse):
    frame = pd.concat([daily_frame(FIRST_DAY, range(1)), daily_frame(FIRST_DAY, range(1))])
    frame["trade_date"] = [FIRST_DAY, FIRST_DAY.isoformat()]

    with pytest.raises(ValueError, match="sharing a primary key"):
        warehouse.upsert("daily", frame)


def test_unknown_and_missing_columns_are_named(warehouse):
    frame = daily_frame(FIRST_DAY, range(2)).drop(columns=["vol"]).assign(volume=1.0)

    with pytest.raises(
        ValueError,
        match=r"table 'daily' has missing columns \['vol'\]; unknown columns \['volume'\]",
    ):
        warehouse.upsert("daily", frame)


def test_unknown_table_is_named(warehouse):
    with pytest.raises(ValueError, match="unknown warehouse table 'dayly'"):
        warehouse.upsert("dayly", daily_frame(FIRST_DAY, range(1)))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (
            "trade_date",
            "2026-02-30",
            r"daily.trade_date value '2026-02-30' at frame row 1 is not a date",
        ),
        ("close", "ten", r"daily.close value 'ten' at frame row 1 is not a number"),
        ("ts_code", 600001, r"daily.ts_code value 600001 at frame row 1 is not text"),
        (
            "ts_code",
            None,
            r"daily.ts_code is a key column but is empty in 1 row\(s\), first at frame row 1",
        ),
    ],
)
def test_bad_values_are_named(warehouse, column, value, message):
    frame = daily_frame(FIRST_DAY, range(3)).astype({column: object})
    frame.loc[1, column] = value

    with pytest.raises(ValueError, match=message):
        warehouse.upsert("daily", frame)
    assert warehouse.count_rows("daily") == 0


def test_empty_text_is_stored_as_null(warehouse):
    frame = sample_frame("stock_basic")
    frame["area"] = ""

    warehouse.upsert("stock_basic", frame)

    assert warehouse.read_table("stock_basic")["area"].isna().all()


def test_fifty_thousand_rows_in_one_upsert(warehouse):
    stocks, days = 5_000, 10
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "ts_code": np.tile([f"{stock:06d}.SZ" for stock in range(stocks)], days),
            "trade_date": np.repeat(
                [FIRST_DAY - dt.timedelta(days=d) for d in range(days)], stocks
            ),
            **{column: rng.random(stocks * days) * 100 for column in TABLE_COLUMNS["daily"][2:]},
        }
    )
    frame.loc[::97, "pre_close"] = np.nan

    assert warehouse.upsert("daily", frame) == stocks * days

    assert warehouse.count_rows("daily") == stocks * days
    assert warehouse.count_rows("daily", FIRST_DAY) == stocks
    nulls = warehouse.read_frame("SELECT COUNT(*) AS n FROM daily WHERE pre_close IS NULL")
    assert nulls["n"].iloc[0] == frame["pre_close"].isna().sum()
    sample = frame.iloc[[0, 12_345, stocks * days - 1]]
    for row in records(sample):
        stored = warehouse.read_table(
            "daily", {"ts_code": row["ts_code"], "trade_date": row["trade_date"]}
        )
        assert records(stored) == [row]


def test_read_frame_binds_dates_and_returns_dates(warehouse):
    warehouse.upsert(
        "daily", pd.concat([daily_frame(FIRST_DAY, range(2)), daily_frame(SECOND_DAY, range(3))])
    )

    frame = warehouse.read_frame(
        "SELECT trade_date, COUNT(*) AS n FROM daily WHERE trade_date BETWEEN :start AND :end"
        " GROUP BY trade_date ORDER BY trade_date",
        {"start": FIRST_DAY, "end": SECOND_DAY},
    )
    latest = warehouse.read_frame("SELECT MAX(trade_date) AS trade_date FROM daily")

    assert records(frame) == [{"trade_date": FIRST_DAY, "n": 2}, {"trade_date": SECOND_DAY, "n": 3}]
    assert latest["trade_date"].tolist() == [SECOND_DAY]
    assert type(latest["trade_date"].iloc[0]) is dt.date


def test_reads_on_a_fresh_warehouse_find_empty_tables(warehouse):
    assert warehouse.read_frame("SELECT * FROM trade_cal").empty
    assert list(warehouse.read_table("factor_daily").columns) == list(TABLE_COLUMNS["factor_daily"])
    assert warehouse.count_rows("factor_daily", FIRST_DAY) == 0


def test_read_table_rejects_an_unknown_filter_column(warehouse):
    with pytest.raises(ValueError, match="table 'daily' has no column 'day'"):
        warehouse.read_table("daily", {"day": FIRST_DAY})


def test_concurrent_writers_all_succeed(warehouse):
    """Parallel steps write different days of one table at the same time."""
    days = [FIRST_DAY - dt.timedelta(days=d) for d in range(12)]
    errors: list[BaseException] = []

    def write_days(mine: list[dt.date]) -> None:
        try:
            for day in mine:
                warehouse.replace_partition("daily", daily_frame(day, range(50)), day)
                warehouse.read_frame("SELECT COUNT(*) AS n FROM daily")
        except BaseException as error:  # noqa: BLE001 - handed to the main thread to fail on
            errors.append(error)

    workers = [threading.Thread(target=write_days, args=(days[i::4],)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert not any(worker.is_alive() for worker in workers)
    assert errors == []
    assert warehouse.count_rows("daily") == 50 * len(days)


def test_sqlite_file_is_in_wal_mode_and_its_folder_is_created(tmp_path):
    store = Warehouse(url=f"sqlite:///{tmp_path / 'nested' / 'dir' / 'warehouse.db'}")
    try:
        store.ensure_schema()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert (tmp_path / "nested" / "dir" / "warehouse.db").is_file()
    finally:
        store.dispose()


def test_default_url_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_WAREHOUSE_URL, raising=False)
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "market"))
    assert default_warehouse_url() == f"sqlite:///{tmp_path / 'market' / 'warehouse.db'}"

    monkeypatch.setenv(ENV_WAREHOUSE_URL, "postgresql://quant@db.internal/market")
    assert default_warehouse_url() == "postgresql://quant@db.internal/market"


@pytest.mark.parametrize(
    ("url", "db_schema", "message"),
    [
        ("mysql+pymysql://quant@127.0.0.1/market", None, "dialect 'mysql' is not supported"),
        ("postgresql+psycopg://quant@127.0.0.1/market", None, "driver 'postgresql\\+psycopg'"),
        ("sqlite:///unused.db", "market", "db_schema 'market' is for PostgreSQL only"),
        ("postgresql://quant@127.0.0.1/market", "market; DROP", "db_schema 'market; DROP'"),
    ],
)
def test_unsupported_settings_are_named(url, db_schema, message):
    with pytest.raises(ValueError, match=message):
        Warehouse(url=url, db_schema=db_schema).ensure_schema()


def test_works_as_a_dagster_resource_configured_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'warehouse.db'}")
    expected = sample_frame("trade_cal")

    @dg.asset
    def trade_cal(warehouse: Warehouse) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"rows": warehouse.upsert("trade_cal", expected)})

    result = dg.materialize(
        [trade_cal], resources={"warehouse": Warehouse(url=dg.EnvVar("TEST_WAREHOUSE_URL"))}
    )

    assert result.success
    store = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    try:
        assert contents(store, "trade_cal") == records(expected)
    finally:
        store.dispose()
