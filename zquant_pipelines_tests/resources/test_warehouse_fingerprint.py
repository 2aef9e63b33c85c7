"""The row fingerprint of the float tables (resources/warehouse_fingerprint.py) on real
PostgreSQL: numpy computes exactly the number the generated column holds, for every kind of
float8 value; a row changed behind the warehouse's back is repaired by the next write of its
day; a table made without the column, or with one over other columns, gets it."""

import datetime as dt
import io
import struct

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

from zquant_pipelines.resources import warehouse as warehouse_module
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.resources.warehouse_fingerprint import (
    FINGERPRINT_COLUMN,
    FINGERPRINTED,
    fingerprinted,
    fingerprints,
)
from zquant_pipelines.resources.warehouse_schema import TABLES
from zquant_pipelines_tests.support.warehouse_rows import (
    contents,
    count_updates,
    daily_frame,
    exact_contents,
    records,
)

DAY = dt.date(2026, 2, 26)
NEXT_DAY = dt.date(2026, 2, 27)
on_postgres = pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)

# float8 values whose hash takes another path or whose bits are easy to get wrong.
SPECIAL = np.array(
    [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        5e-324,  # the smallest subnormal
        -2.2250738585072009e-308,  # the largest negative subnormal
        2.2250738585072014e-308,  # the smallest normal
        1.7976931348623157e308,
        -1.7976931348623157e308,
        1e-300,
        1.0,
        1 / 7,
        np.nextafter(1 / 7, 1),
    ]
)
# NaNs of other bits than the canonical one (payload, sign): PostgreSQL hashes them as it.
NANS = np.array([0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FFFFFFFFFFFFFFF])


def random_values(rng: np.random.Generator, rows: int, columns: int) -> np.ndarray:
    """(columns, rows) float8 values: normal numbers of every magnitude, the special values,
    NaNs and random bit patterns; the first rows all 0.0, all -0.0, all NaN."""
    values = rng.normal(size=(columns, rows)) * 10.0 ** rng.integers(-300, 300, (columns, rows))
    pick = rng.random((columns, rows))
    values = np.where(pick < 0.3, rng.choice(SPECIAL, (columns, rows)), values)
    values = np.where(pick > 0.95, rng.choice(NANS, (columns, rows)).view(np.float64), values)
    bits = rng.integers(0, 2**63, (columns, rows), dtype=np.int64).view(np.float64)
    values = np.where((pick > 0.9) & (pick <= 0.95), bits, values)
    values[:, :3] = np.array([0.0, -0.0, np.nan])
    return values


def binary_copy(
    codes: list[str], days: list[dt.date], values: np.ndarray, null: np.ndarray
) -> bytes:
    """Rows (ts_code, trade_date, values..) in PostgreSQL's binary COPY format, so every float
    arrives with its exact bits (NaN payloads included)."""
    out = io.BytesIO()
    out.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
    for row, (code, day) in enumerate(zip(codes, days, strict=True)):
        out.write(struct.pack(">h", 2 + len(values)))
        encoded = code.encode()
        since = (day - dt.date(2000, 1, 1)).days  # binary dates count from 2000-01-01
        out.write(struct.pack(">i", len(encoded)) + encoded + struct.pack(">ii", 4, since))
        for column in range(len(values)):
            if null[column, row]:
                out.write(struct.pack(">i", -1))
            else:
                out.write(struct.pack(">id", 8, values[column, row]))
    out.write(struct.pack(">h", -1))
    return out.getvalue()


def load_exact(warehouse: Warehouse, table: str, values: np.ndarray, null: np.ndarray):
    """Store the rows of ``values`` (NULL where ``null``), on DAY and NEXT_DAY in turn;
    their keys."""
    columns = FINGERPRINTED[table]
    codes = [f"{600000 + row // 2}.SH" for row in range(values.shape[1])]
    days = [(DAY, NEXT_DAY)[row % 2] for row in range(values.shape[1])]
    names = ", ".join(f'"{name}"' for name in ("ts_code", "trade_date", *columns))
    with warehouse.engine.begin() as conn:
        warehouse_module.copy(
            conn,
            f'COPY "{table}" ({names}) FROM STDIN WITH (FORMAT binary)',
            io.BytesIO(binary_copy(codes, days, values, null)),
        )
    return list(zip(codes, (day.isoformat() for day in days), strict=True))


@on_postgres
@pytest.mark.parametrize("table", ["daily", "stk_factor_pro"])
def test_numpy_fingerprints_are_the_ones_postgresql_generates(warehouse, table):
    """Every kind of float8 value, NULLs, rows all NULL and rows without one; stk_factor_pro
    has 117 value columns, so three negative-zero masks."""
    columns = FINGERPRINTED[table]
    rng = np.random.default_rng(7)
    rows = 600
    values = random_values(rng, rows, len(columns))
    null = rng.random(values.shape) < 0.2
    null[:, 3], null[:, 4] = True, False
    warehouse.ensure_schema()
    keys = load_exact(warehouse, table, values, null)

    with warehouse.engine.begin() as conn:
        generated = {
            (code, day.isoformat()): fingerprint
            for code, day, fingerprint in conn.execute(
                sa.text(f"SELECT ts_code, trade_date, {FINGERPRINT_COLUMN} FROM {table}")
            )
        }
        # What a partition write reads: the keys and fingerprints, one COPY row per day.
        stored = warehouse_module.stored_rows(conn, TABLES[table], [DAY, NEXT_DAY])
    computed = fingerprints([pa.array(values[i], mask=null[i]) for i in range(len(columns))])

    assert [generated[key] for key in keys] == computed.tolist()
    assert stored.column_names == ["ts_code", "trade_date", FINGERPRINT_COLUMN]
    read = zip(*(stored[name].to_pylist() for name in stored.column_names), strict=True)
    assert {(code, day): fingerprint for code, day, fingerprint in read} == generated
    # Rows all 0.0, all -0.0, all NaN and all NULL: four fingerprints.
    assert len(set(computed[:4].tolist())) == 4


@on_postgres
def test_a_row_changed_behind_the_warehouses_back_is_repaired_by_the_next_write(warehouse):
    """PostgreSQL regenerates the fingerprint on any UPDATE, so the next write of the day
    sees the changed rows (one value moved, one 0.0 made -0.0) and rewrites them only."""
    frame = daily_frame(DAY, range(20))
    frame.loc[5, "vol"] = 0.0
    warehouse.replace_partition("daily", frame, DAY)
    with warehouse.engine.begin() as conn:
        conn.execute(sa.text("UPDATE daily SET close = close + 1 WHERE ts_code = '600003.SH'"))
        conn.execute(sa.text("UPDATE daily SET vol = '-0' WHERE ts_code = '600005.SH'"))
    writes = count_updates(warehouse, "daily", events=("INSERT", "DELETE"))

    warehouse.replace_partition("daily", frame, DAY)

    assert contents(warehouse, "daily") == records(frame)
    assert [row["vol"] for row in exact_contents(warehouse, "daily")][5] == (0.0).hex()
    assert writes() == 4  # the two changed rows, deleted and inserted


def create_daily_of_an_earlier_version(warehouse: Warehouse, fingerprint: str | None) -> None:
    """daily as a version without the fingerprint made it (or with ``fingerprint``: a
    fingerprint column covering open only), holding a day of rows."""
    with warehouse.engine.begin() as conn:
        conn.execute(sa.schema.CreateSchema(warehouse.db_schema))
        TABLES["daily"].to_metadata(sa.MetaData()).create(conn)
        if fingerprint is not None:
            conn.execute(
                sa.text(
                    f"ALTER TABLE daily ADD COLUMN {FINGERPRINT_COLUMN} bigint GENERATED ALWAYS"
                    " AS (hash_record_extended(ROW(open), 1)) STORED"
                )
            )
            conn.execute(
                sa.text(f"COMMENT ON COLUMN daily.{FINGERPRINT_COLUMN} IS :comment"),
                {"comment": fingerprint},
            )
        warehouse_module.load_rows(
            conn,
            TABLES["daily"],
            warehouse_module.prepare_rows(TABLES["daily"], daily_frame(DAY, range(10))),
        )


@on_postgres
@pytest.mark.parametrize("fingerprint", [None, "row fingerprint over: open"])
def test_a_daily_table_of_an_earlier_version_gets_the_fingerprint(warehouse, fingerprint):
    create_daily_of_an_earlier_version(warehouse, fingerprint)

    warehouse.ensure_schema()

    described = [c["name"] for c in sa.inspect(warehouse.engine).get_columns("daily")]
    assert described == [*TABLES["daily"].c.keys(), FINGERPRINT_COLUMN]
    frame = daily_frame(DAY, range(10))
    rows = warehouse_module.prepare_rows(TABLES["daily"], frame)
    generated = warehouse.read_frame(f"SELECT {FINGERPRINT_COLUMN} FROM daily ORDER BY ts_code")
    assert generated[FINGERPRINT_COLUMN].tolist() == (
        fingerprints([rows[name] for name in FINGERPRINTED["daily"]]).tolist()
    )
    writes = count_updates(warehouse, "daily", events=("INSERT", "DELETE"))
    frame.loc[3, "close"] = 99.5
    warehouse.replace_partition("daily", frame, DAY)
    assert writes() == 2
    assert contents(warehouse, "daily") == records(frame)


def test_the_float_trading_day_tables_are_fingerprinted_on_postgresql_only():
    assert set(FINGERPRINTED) == {
        "daily",
        "adj_factor",
        "daily_basic",
        "stk_factor",
        "stk_factor_pro",
    }
    assert FINGERPRINTED["daily"] == tuple(TABLES["daily"].c.keys())[2:]
    assert fingerprinted("postgresql", TABLES["daily"]) == FINGERPRINTED["daily"]
    assert fingerprinted("sqlite", TABLES["daily"]) is None
    assert fingerprinted("postgresql", TABLES["factor_daily"]) is None
    # A definition other than the declared one (add_columns' widened copy) compares values.
    assert fingerprinted("postgresql", TABLES["daily"].to_metadata(sa.MetaData())) is None
