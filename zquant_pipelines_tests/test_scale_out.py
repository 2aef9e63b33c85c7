"""Scale-out, end to end on loopback: a PostgreSQL-backed instance, two `zquant worker`
Celery workers on Redis, and a parallel sync workflow on the celery executor launched with
`dagster job execute`. Both workers take steps, the data is complete, and the tushare
budget holds across the workers (one budget in Redis, enforced by the wire server too)."""

from urllib.parse import urlsplit

import pandas as pd
import pytest

from zquant_pipelines.constants import API_FIELDS, TRADING_DAY_APIS
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines_tests.conftest import create_pg_database, drop_pg_database
from zquant_pipelines_tests.scale_out import (
    AS_OF,
    PERIODS,
    WORKFLOW,
    market_source_config,
    open_days,
    scale_out,
    served,
    step_workers,
    stop_workers,
)

pytestmark = pytest.mark.slow

# A Redis database of this module's own (broker, results, budget), flushed before and after.
SCALE_OUT_REDIS_DB = 14
WORKERS = ["w1", "w2"]
# The budget: 10 calls per API per second. The server allows the same count in a slightly
# shorter window, so a call the shared budget lets through can never be refused for
# network jitter, while two workers each keeping a budget of their own would be.
CALLS_PER_WINDOW, WINDOW_SECONDS, SERVER_WINDOW_SECONDS = 10, 1.0, 0.9


@pytest.fixture(scope="module")
def scale_out_redis_url(redis_url):
    return urlsplit(redis_url)._replace(path=f"/{SCALE_OUT_REDIS_DB}").geturl()


@pytest.fixture(scope="module")
def backing():
    return SampleMarketSource(as_of=AS_OF)


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory, pg_server_url, scale_out_redis_url, backing):
    """The workflow run once on two workers; what the test functions inspect."""
    from zquant_pipelines_tests.tushare_wire_server import TushareWireServer

    root = tmp_path_factory.mktemp("scale_out")
    instance_url = create_pg_database(pg_server_url, "zq_instance")
    warehouse_url = create_pg_database(pg_server_url, "zq_scale_wh")
    try:
        with (
            TushareWireServer(backing) as server,
            scale_out(root, instance_url, warehouse_url, scale_out_redis_url, server) as setup,
        ):
            server.limit_rate(CALLS_PER_WINDOW, SERVER_WINDOW_SECONDS)
            workers = setup.start_workers(WORKERS)
            try:
                result, _ = setup.run_workflow(
                    market_source_config(CALLS_PER_WINDOW, WINDOW_SECONDS)
                )
            finally:
                stop_workers(workers)
            yield setup, result, server.calls, warehouse_url
    finally:
        drop_pg_database(pg_server_url, warehouse_url)
        drop_pg_database(pg_server_url, instance_url)


@pytest.fixture(scope="module")
def instance(workflow_run):
    setup, *_ = workflow_run
    with setup.open_instance() as opened:
        yield opened


def the_run(instance):
    runs = instance.get_runs()
    assert len(runs) == 1, [run.job_name for run in runs]
    return runs[0]


def test_the_workflow_succeeds_on_the_postgres_instance(workflow_run, instance):
    setup, result, _, _ = workflow_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    run = the_run(instance)
    assert run.job_name == f"{WORKFLOW}_job"
    assert run.status.value == "SUCCESS"


def test_both_workers_took_steps_and_each_step_ran_once(workflow_run, instance):
    ran = step_workers(instance, the_run(instance).run_id)
    members = {"calendar", "stocks"} | {
        f"{kind}_{m}" for kind in ("bars", "basic") for m, *_ in PERIODS
    }
    assert set(ran) == members
    assert all(len(workers) == 1 for workers in ran.values()), ran
    assert {workers[0] for workers in ran.values()} == set(WORKERS), ran


def test_the_warehouse_holds_every_day_that_was_served(workflow_run, backing):
    *_, warehouse_url = workflow_run
    warehouse = Warehouse(url=warehouse_url)
    days = open_days(backing)
    assert len(days) > 2 * CALLS_PER_WINDOW
    for api_name in TRADING_DAY_APIS:
        stored = warehouse.read_frame(f"SELECT * FROM {api_name} ORDER BY trade_date, ts_code")
        expected = pd.concat([served(backing, api_name, day) for day in days], ignore_index=True)
        pd.testing.assert_frame_equal(
            stored.loc[:, list(API_FIELDS[api_name])].reset_index(drop=True),
            expected.loc[:, list(API_FIELDS[api_name])],
            check_dtype=False,
        )
    assert warehouse.count_rows("stock_basic") == sum(
        len(backing.query("stock_basic", list_status=s)) for s in ("L", "D", "P")
    )


def test_the_budget_held_across_both_workers(workflow_run):
    _, _, calls, _ = workflow_run
    refused = [call for call in calls if call.outcome != "ok"]
    assert refused == []
    for api_name in TRADING_DAY_APIS:
        times = sorted(call.received_at for call in calls if call.api_name == api_name)
        # More calls than one window's budget: the limit was binding, not idle.
        assert len(times) > 2 * CALLS_PER_WINDOW
        for index in range(len(times) - CALLS_PER_WINDOW):
            assert times[index + CALLS_PER_WINDOW] - times[index] > SERVER_WINDOW_SECONDS
