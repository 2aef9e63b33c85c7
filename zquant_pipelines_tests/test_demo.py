"""`make run`'s flow (zquant demo): the last 20 trading days through Dagster into a fresh
SQLite warehouse and instance; safe to repeat; factors equal the independent computation."""

import dagster as dg
import pytest

from zquant_pipelines.assets.definitions import build_asset_definitions
from zquant_pipelines.demo import run_demo
from zquant_pipelines.instance_home import prepare_home
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines_tests.support.factor_oracle import assert_matches_loop, loop_factors

TRADING_DAYS = 20


@pytest.fixture
def demo_setup(tmp_path, monkeypatch):
    home = prepare_home(tmp_path / "dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    resources = {"market_source": SampleMarketSource(), "warehouse": warehouse}
    defs = dg.Definitions.merge(build_asset_definitions(), dg.Definitions(resources=resources))
    return defs, warehouse


@pytest.mark.slow
def test_demo_syncs_twenty_days_then_finds_them_done(demo_setup):
    defs, warehouse = demo_setup
    first = run_demo(defs, TRADING_DAYS)
    assert first["trading_days"] == TRADING_DAYS
    assert len(first["run_ids"]) == 2  # reference data, then one ranged run of the 20 days
    assert warehouse.count_rows("stock_basic") >= 300
    for table in ("daily", "adj_factor", "daily_basic", "factor_daily"):
        assert first["rows"][table] > 250 * TRADING_DAYS, table
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_run_records()
        assert {r.dagster_run.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    second = run_demo(defs, TRADING_DAYS)
    assert second["run_ids"] == []
    assert second["rows"] == first["rows"]

    window = {"start": first["first_day"], "end": first["last_day"]}
    inputs = {
        table: warehouse.read_frame(
            f"SELECT * FROM {table} WHERE trade_date BETWEEN :start AND :end", window
        )
        for table in ("daily", "adj_factor", "daily_basic")
    }
    stored = warehouse.read_table("factor_daily")
    factor_columns = [c for c in stored.columns if c not in ("ts_code", "trade_date")]
    stored[factor_columns] = stored[factor_columns].astype(float)  # all-NULL columns read as None
    assert_matches_loop(
        stored, loop_factors(inputs["daily"], inputs["adj_factor"], inputs["daily_basic"])
    )
    assert stored["momentum_5"].notna().any() and stored["volatility_20"].isna().all()
