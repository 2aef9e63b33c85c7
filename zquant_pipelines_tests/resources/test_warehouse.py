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
from zquant_pipelines.resources.warehouse_fingerprint import FINGERPRINT_COLUMN, FINGERPRINTED
from zquant_pipelines.resources.warehouse_schema import (
    FACTOR_COLUMNS,
    INTEGER_COLUMNS,
    TABLE_COLUMNS,
    TABLES,
    TEXT_COLUMNS,
)
from zquant_pipelines_tests.support.warehouse_rows import (
    contents,
    count_updates,
    daily_frame,
    exact_contents,
    records,
    run_ddl,
)

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
        # PostgreSQL keeps a generated fingerprint after the float tables' own columns.
        fingerprint = table in FINGERPRINTED and warehouse.engine.dialect.name == "postgresql"
        assert list(described) == [*columns, *([FINGERPRINT_COLUMN] if fingerprint else [])]
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


def test_a_column_added_to_one_warehouse_is_not_assumed_by_another(warehouse, tmp_path):
    """add_columns (a factor window factor_daily lacks) widens the table of its own warehouse:
    another warehouse of the same process keeps the declared table, reads and writes it."""
    other = Warehouse(url=f"sqlite:///{tmp_path / 'other.db'}")
    other.ensure_schema()
    declared = list(TABLE_COLUMNS["factor_daily"])
    frame = sample_frame("factor_daily")
    try:
        assert warehouse.add_columns("factor_daily", ["ma7_tr"]) == [*declared, "ma7_tr"]

        assert other.add_columns("factor_daily", []) == declared
        assert list(TABLES["factor_daily"].c.keys()) == declared
        assert other.upsert("factor_daily", frame) == len(frame)
        assert list(other.read_table("factor_daily").columns) == declared
    finally:
        other.dispose()
    described = [c["name"] for c in sa.inspect(warehouse.engine).get_columns("factor_daily")]
    assert described == [*declared, "ma7_tr"]
    assert warehouse.upsert("factor_daily", frame.assign(ma7_tr=1.5)) == len(frame)
    assert warehouse.read_table("factor_daily")["ma7_tr"].tolist() == [1.5] * len(frame)


def test_partition_writes_read_the_stored_rows_of_their_own_table_and_warehouse(
    warehouse, tmp_path
):
    """A partition write reads the day's stored rows with a statement built once per table
    and columns: a widened factor_daily and the declared one of another warehouse (another
    schema of the same database, or file) each compare their own columns and rows."""
    if warehouse.db_schema is None:
        other = Warehouse(url=f"sqlite:///{tmp_path / 'other.db'}")
    else:
        other = Warehouse(url=warehouse.url, db_schema=f"{warehouse.db_schema}_other")
    frame = sample_frame("factor_daily").query("trade_date == @FIRST_DAY").reset_index(drop=True)
    try:
        warehouse.add_columns("factor_daily", ["ma7_tr"])
        other.ensure_schema()
        widened = frame.assign(ma7_tr=1.5)
        warehouse.replace_partition("factor_daily", widened, FIRST_DAY)
        other.replace_partition("factor_daily", frame, FIRST_DAY)
        writes = count_updates(warehouse, "factor_daily", events=("INSERT", "DELETE"))
        widened.loc[0, "ma7_tr"] = 2.5
        changed = frame.copy()
        changed.loc[1, "momentum_5"] = 9.25

        warehouse.replace_partition("factor_daily", widened, FIRST_DAY)
        other.replace_partition("factor_daily", changed, FIRST_DAY)

        assert writes() == 2  # the row whose added column changed, deleted and inserted
        assert contents(warehouse, "factor_daily") == records(widened)
        assert contents(other, "factor_daily") == records(changed)
    finally:
        other.dispose()
        if other.db_schema is not None:
            with warehouse.engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{other.db_schema}" CASCADE'))


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
    day after the write read it (one that does not lock the day), the load fails on the key,
    leaves nothing, and the write merges instead."""
    warehouse.replace_partition("daily", daily_frame(FIRST_DAY, range(3)), FIRST_DAY)
    nothing_stored = warehouse_module.stored_rows
    monkeypatch.setattr(
        warehouse_module,
        "stored_rows",
        lambda conn, target, days: nothing_stored(conn, target, days).slice(0, 0),
    )
    replacement = daily_frame(FIRST_DAY, range(2, 5), close=20.0)

    assert warehouse.replace_partition("daily", replacement, FIRST_DAY) == 3

    assert records(warehouse.read_table("daily", {"trade_date": FIRST_DAY})) == records(replacement)


# stk_factor_pro: a fingerprinted table (PostgreSQL) with three negative-zero masks.
PARTITION_TABLES = ["daily", "stk_factor_pro", "table_statistics", "stock_screen"]


def random_value(column: sa.Column, rng: np.random.Generator):
    """A value of the column's type, NULL about one time in five; floats include -0.0 and
    fractions whose every digit matters."""
    if rng.random() < 0.2:
        return None
    if isinstance(column.type, sa.String):
        return str(rng.choice(["a", "b", AWKWARD_TEXT, '{"pe": 1}']))
    if isinstance(column.type, sa.Integer):
        return int(rng.integers(-3, 3))
    return float(rng.choice([0.0, -0.0, 1 / 7, -2.5, 1e-300, float(rng.integers(0, 3))]))


def random_day(table: str, keys: range, rng: np.random.Generator) -> pd.DataFrame:
    """Rows of FIRST_DAY for the given key numbers, random values in every other column."""
    target = TABLES[table]
    rows = []
    for key in keys:
        row = {}
        for column in target.columns:
            if column.name == "trade_date":
                row[column.name] = FIRST_DAY
            elif column.primary_key:
                row[column.name] = f"{600000 + key}.SH" if column.name == "ts_code" else f"k{key}"
            else:
                row[column.name] = random_value(column, rng)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(target.c.keys()))


def changed_day(frame: pd.DataFrame, table: str, rng: np.random.Generator) -> pd.DataFrame:
    """``frame`` with some rows dropped, some added and some values changed (NULL <-> value
    included), in shuffled order."""
    target = TABLES[table]
    kept = frame[rng.random(len(frame)) > 0.15].reset_index(drop=True)
    for column in target.columns:
        if not column.primary_key:
            for row in np.flatnonzero(rng.random(len(kept)) < 0.15):
                kept.at[row, column.name] = random_value(column, rng)
    added = random_day(table, range(1000, 1000 + int(rng.integers(0, 6))), rng)
    rows = kept.to_dict("records") + added.to_dict("records")
    return pd.DataFrame([rows[i] for i in rng.permutation(len(rows))], columns=list(frame.columns))


def fully_replaced(warehouse: Warehouse, table: str, frame: pd.DataFrame) -> list[dict]:
    """The table's exact contents once FIRST_DAY is emptied and ``frame`` loaded into it."""
    warehouse.replace_partition(table, frame.iloc[:0], FIRST_DAY, empty_day_is_genuine=True)
    warehouse.replace_partition(table, frame, FIRST_DAY)
    return exact_contents(warehouse, table)


@pytest.mark.parametrize("table", PARTITION_TABLES)
@pytest.mark.parametrize("seed", range(4))
def test_rewriting_a_stored_day_leaves_exactly_what_a_full_replace_would(warehouse, table, seed):
    """A partition write touches only the rows that differ; the result must be the frame's
    rows exactly, as writing the frame into an emptied day gives them."""
    rng = np.random.default_rng(seed)
    other_day = random_day(table, range(5), rng).assign(trade_date=SECOND_DAY)
    warehouse.replace_partition(table, other_day, SECOND_DAY)
    stored = random_day(table, range(40), rng)
    warehouse.replace_partition(table, stored, FIRST_DAY)
    doubles = [c.name for c in TABLES[table].columns if isinstance(c.type, sa.Double)]
    if doubles and warehouse.engine.dialect.name == "postgresql":
        # A NaN stored by another tool (a frame's NaN is stored as NULL) must be rewritten.
        with warehouse.engine.begin() as conn:
            conn.execute(
                sa.text(f"UPDATE {table} SET {doubles[0]} = 'NaN' WHERE trade_date = :day"),
                {"day": FIRST_DAY},
            )
    frame = changed_day(stored, table, rng)

    warehouse.replace_partition(table, frame, FIRST_DAY)
    rewritten = exact_contents(warehouse, table)

    assert rewritten == fully_replaced(warehouse, table, frame)
    assert warehouse.count_rows(table, FIRST_DAY) == len(frame)


def test_rewriting_a_stored_day_sees_every_kind_of_value_change(warehouse):
    """Each row differs from the stored one in one value only: 0.0 -> -0.0, NULL -> value,
    value -> NULL, the last bit of a fraction, a stored NaN (PostgreSQL) -> NULL; few
    enough rows change that the write deletes and inserts them by key."""
    stored = daily_frame(FIRST_DAY, range(20))
    stored.loc[:5, "close"] = [0.0, np.nan, 1.0, 1 / 7, 2.0, 3.0]
    warehouse.replace_partition("daily", stored, FIRST_DAY)
    if warehouse.engine.dialect.name == "postgresql":
        with warehouse.engine.begin() as conn:
            conn.execute(sa.text("UPDATE daily SET close = 'NaN' WHERE ts_code = '600005.SH'"))
    frame = stored.copy()
    frame.loc[:5, "close"] = [-0.0, 5.0, np.nan, np.nextafter(1 / 7, 1), 2.0, np.nan]

    warehouse.replace_partition("daily", frame, FIRST_DAY)
    rewritten = exact_contents(warehouse, "daily")

    assert rewritten == fully_replaced(warehouse, "daily", frame)
    # Row 0 is 0.0 or -0.0, as the dialect stores -0.0 (SQLite: 0.0).
    assert [row["close"] for row in rewritten][1:6] == [
        (5.0).hex(),
        None,
        np.nextafter(1 / 7, 1).hex(),
        (2.0).hex(),
        None,
    ]


def test_rewriting_a_day_with_one_changed_row_writes_only_that_row(warehouse):
    frame = daily_frame(FIRST_DAY, range(20))
    warehouse.replace_partition("daily", frame, FIRST_DAY)
    writes = count_updates(warehouse, "daily", events=("INSERT", "UPDATE", "DELETE"))
    frame.loc[3, "close"] = 99.5

    warehouse.replace_partition("daily", frame, FIRST_DAY)
    warehouse.replace_partition("daily", frame, FIRST_DAY)

    # The changed row deleted and inserted once; the unchanged rewrite writes nothing.
    assert writes() == 2
    assert contents(warehouse, "daily") == records(frame)


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
