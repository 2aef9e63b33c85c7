"""Scale-out, end to end on loopback: a PostgreSQL-backed instance, two `zquant worker`
Celery workers on Redis, and a parallel sync workflow on the celery executor launched with
`dagster job execute`. Both workers take steps, the data is complete, and the tushare
budget holds across the workers (one budget in Redis, enforced by the wire server too).
Then one partition of the market-data asset job with ZQUANT_EXECUTOR=celery: its steps run
on the workers too."""

import datetime as dt
import socket
import subprocess
from dataclasses import dataclass

import pandas as pd
import pytest

from zquant_pipelines.assets.schedules import MARKET_DATA_JOB_NAME
from zquant_pipelines.constants import API_FIELDS, ENV_EXECUTOR, TRADING_DAY_APIS
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines_tests.support.scale_out import (
    AS_OF,
    PERIODS,
    WORKFLOW,
    ScaleOut,
    market_source_config,
    open_days,
    scale_out,
    served,
    step_workers,
    stop_workers,
)
from zquant_pipelines_tests.support.services import (
    RABBITMQ_URL,
    claimed_rabbitmq_vhost,
    claimed_redis_db,
    create_pg_database,
    drop_pg_database,
    require_service,
)

pytestmark = pytest.mark.slow

WORKERS = ["w1", "w2"]
# A trading day outside the workflow's periods, for the asset job's run.
ASSET_PARTITION = "2026-10-26"
# The budget: 10 calls per API per second. The server allows the same count in a slightly
# shorter window, so a call the shared budget lets through can never be refused for
# network jitter, while two workers each keeping a budget of their own would be.
CALLS_PER_WINDOW, WINDOW_SECONDS, SERVER_WINDOW_SECONDS = 10, 1.0, 0.9
# Small pages: the sync asks for code lists over the workflow's days (a call or two per
# API), so the budget binds only when each page is a call of its own.
PAGE_ROWS = 100
ROW_LIMITS = {api: PAGE_ROWS for api in TRADING_DAY_APIS}
# What the workflow's actions (sync_all_daily_data, sync_daily_basic_data) sync: the bars.
WORKFLOW_APIS = ("daily", "adj_factor", "daily_basic")


@pytest.fixture(scope="module")
def scale_out_redis_url(redis_url):
    """A Redis database of this module's own (broker, results, budget), emptied afterwards."""
    with claimed_redis_db(redis_url) as url:
        yield url


@pytest.fixture(scope="module")
def backing():
    return SampleMarketSource(as_of=AS_OF)


@dataclass
class ScaleOutRuns:
    setup: ScaleOut
    workflow: subprocess.CompletedProcess
    workflow_calls: list
    asset_job: subprocess.CompletedProcess
    warehouse_url: str


@pytest.fixture(scope="module")
def runs(tmp_path_factory, pg_server_url, scale_out_redis_url, backing):
    """On two workers: the workflow, then one partition of the asset job with
    ZQUANT_EXECUTOR=celery."""
    from zquant_pipelines_tests.support.tushare_wire_server import TushareWireServer

    root = tmp_path_factory.mktemp("scale_out")
    instance_url = create_pg_database(pg_server_url, "zq_instance")
    warehouse_url = create_pg_database(pg_server_url, "zq_scale_wh")
    run_config = market_source_config(CALLS_PER_WINDOW, WINDOW_SECONDS, ROW_LIMITS)
    try:
        with (
            TushareWireServer(backing, row_limits=ROW_LIMITS) as server,
            scale_out(root, instance_url, warehouse_url, scale_out_redis_url, server) as setup,
        ):
            server.limit_rate(CALLS_PER_WINDOW, SERVER_WINDOW_SECONDS)
            workers = setup.start_workers(WORKERS)
            try:
                workflow, _ = setup.run_workflow(run_config)
                workflow_calls = server.calls
                asset_job, _ = setup.execute_job(
                    MARKET_DATA_JOB_NAME,
                    run_config,
                    tags={"dagster/partition": ASSET_PARTITION},
                    **{ENV_EXECUTOR: "celery"},
                )
            finally:
                stop_workers(workers)
            yield ScaleOutRuns(setup, workflow, workflow_calls, asset_job, warehouse_url)
    finally:
        drop_pg_database(pg_server_url, warehouse_url)
        drop_pg_database(pg_server_url, instance_url)


@pytest.fixture(scope="module")
def instance(runs):
    with runs.setup.open_instance() as opened:
        yield opened


def run_of(instance, job_name: str):
    found = [run for run in instance.get_runs() if run.job_name == job_name]
    assert len(found) == 1, [run.job_name for run in instance.get_runs()]
    return found[0]


def test_the_workflow_succeeds_on_the_postgres_instance(runs, instance):
    assert runs.workflow.returncode == 0, (
        runs.workflow.stdout[-3000:] + runs.workflow.stderr[-3000:]
    )
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert run_of(instance, f"{WORKFLOW}_job").status.value == "SUCCESS"


def test_both_workers_took_steps_and_each_step_ran_once(runs, instance):
    ran = step_workers(instance, run_of(instance, f"{WORKFLOW}_job").run_id)
    members = {"calendar", "stocks"} | {
        f"{kind}_{p}" for kind in ("bars", "basic") for p, *_ in PERIODS
    }
    assert set(ran) == members
    assert all(len(workers) == 1 for workers in ran.values()), ran
    assert {workers[0] for workers in ran.values()} == set(WORKERS), ran


def test_the_asset_job_runs_its_steps_on_the_workers_with_zquant_executor_celery(
    runs, instance, backing
):
    assert runs.asset_job.returncode == 0, runs.asset_job.stderr[-3000:]
    run = run_of(instance, MARKET_DATA_JOB_NAME)
    assert run.status.value == "SUCCESS"
    ran = step_workers(instance, run.run_id)
    assert {"stock_basic", "trade_cal", *TRADING_DAY_APIS, "factor_daily"} <= set(ran), ran
    assert {worker for workers in ran.values() for worker in workers} <= set(WORKERS)
    warehouse = Warehouse(url=runs.warehouse_url)
    day = dt.date.fromisoformat(ASSET_PARTITION)
    for api_name in TRADING_DAY_APIS:
        stored = warehouse.read_frame(
            f"SELECT * FROM {api_name} WHERE trade_date = :day ORDER BY ts_code", {"day": day}
        )
        pd.testing.assert_frame_equal(
            stored.loc[:, list(API_FIELDS[api_name])].reset_index(drop=True),
            served(backing, api_name, day).loc[:, list(API_FIELDS[api_name])],
            check_dtype=False,
        )


def test_the_warehouse_holds_every_day_that_was_served(runs, backing):
    warehouse = Warehouse(url=runs.warehouse_url)
    days = open_days(backing)
    assert len(days) > 2 * CALLS_PER_WINDOW
    for api_name in WORKFLOW_APIS:
        stored = warehouse.read_frame(
            f"SELECT * FROM {api_name} WHERE trade_date <> :other ORDER BY trade_date, ts_code",
            {"other": dt.date.fromisoformat(ASSET_PARTITION)},
        )
        expected = pd.concat([served(backing, api_name, day) for day in days], ignore_index=True)
        pd.testing.assert_frame_equal(
            stored.loc[:, list(API_FIELDS[api_name])].reset_index(drop=True),
            expected.loc[:, list(API_FIELDS[api_name])],
            check_dtype=False,
        )
    assert warehouse.count_rows("stock_basic") == sum(
        len(backing.query("stock_basic", list_status=s)) for s in ("L", "D", "P")
    )


def test_the_budget_held_across_both_workers(runs):
    calls = runs.workflow_calls
    refused = [call for call in calls if call.outcome != "ok"]
    assert refused == []
    for api_name in WORKFLOW_APIS:
        times = sorted(call.received_at for call in calls if call.api_name == api_name)
        # More calls than one window's budget: the limit was binding, not idle.
        assert len(times) > 2 * CALLS_PER_WINDOW
        for index in range(len(times) - CALLS_PER_WINDOW):
            assert times[index + CALLS_PER_WINDOW] - times[index] > SERVER_WINDOW_SECONDS


def test_a_rabbitmq_broker_carries_the_steps_too(
    tmp_path, pg_server_url, scale_out_redis_url, backing
):
    """ZQUANT_CELERY_BROKER=amqp://...: the run and the worker meet on RabbitMQ (on a virtual
    host of this test's own; results by Celery's rpc:// backend); Redis keeps only the
    tushare budget."""
    from zquant_pipelines_tests.support.tushare_wire_server import TushareWireServer

    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=3).close()
    except OSError as error:
        require_service(f"RabbitMQ at {RABBITMQ_URL}", error)
    instance_url = create_pg_database(pg_server_url, "zq_instance")
    warehouse_url = create_pg_database(pg_server_url, "zq_scale_wh")
    try:
        with (
            claimed_rabbitmq_vhost(RABBITMQ_URL) as broker_url,
            TushareWireServer(backing) as server,
            scale_out(
                tmp_path, instance_url, warehouse_url, scale_out_redis_url, server, broker_url
            ) as setup,
        ):
            workers = setup.start_workers(["rabbit1"])
            try:
                result, _ = setup.run_workflow(market_source_config(10_000, 1.0))
            finally:
                stop_workers(workers)
            assert result.returncode == 0, result.stderr[-3000:]
            with setup.open_instance() as instance:
                ran = step_workers(instance, run_of(instance, f"{WORKFLOW}_job").run_id)
        assert len(ran) == 2 + 2 * len(PERIODS)
        assert {worker for workers in ran.values() for worker in workers} == {"rabbit1"}
    finally:
        drop_pg_database(pg_server_url, warehouse_url)
        drop_pg_database(pg_server_url, instance_url)
