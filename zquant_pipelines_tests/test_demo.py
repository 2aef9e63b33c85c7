"""`make run`'s flow (`zquant demo` as a real process): the last 20 trading days through
Dagster into a fresh SQLite warehouse and instance; the runs are market_data_job's of the
code location (listed under the job in the UI, re-executable); safe to repeat; factors
equal the independent computation."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG as RANGE_END,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_START_TAG as RANGE_START,
)
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

from zquant_pipelines.assets.financials import FINANCIAL_STATEMENTS_JOB_NAME
from zquant_pipelines.assets.partitions import trading_day_partitions
from zquant_pipelines.assets.schedules import MARKET_DATA_JOB_NAME
from zquant_pipelines.constants import (
    ENV_DAGSTER_URL,
    ENV_DATA_DIR,
    ENV_PG_URL,
    ENV_TASKS_FILE,
    ENV_WAREHOUSE_URL,
    REPORT_PERIOD_APIS,
)
from zquant_pipelines.operations.base import REPOSITORY_NAME, location_name
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines_tests.support.factor_oracle import assert_matches_loop, loop_factors

REPO_ROOT = Path(__file__).resolve().parent.parent
TRADING_DAYS = 20
ZQUANT = os.path.join(os.path.dirname(sys.executable), "zquant")
# Two runs, each a fresh run worker process, on a busy two-core machine.
DEMO_TIMEOUT_SECONDS = 600


@pytest.fixture
def demo_env(tmp_path):
    """The environment of `make run` on a fresh checkout: no token, no daemon, a new home."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if name not in (ENV_PG_URL, ENV_DAGSTER_URL, ENV_TASKS_FILE, "TUSHARE_TOKEN")
    }
    environ |= {
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        ENV_WAREHOUSE_URL: f"sqlite:///{tmp_path / 'warehouse.db'}",
        ENV_DATA_DIR: str(tmp_path / "data"),
    }
    return environ


def zquant_demo(environ: dict) -> str:
    completed = subprocess.run(
        [ZQUANT, "demo", "--days", str(TRADING_DAYS)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_SECONDS,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def summary_rows(stdout: str) -> dict[str, int]:
    """The "Rows per table" block of the printed summary."""
    lines = stdout.split("Rows per table")[1].splitlines()[1:]
    rows = {}
    for line in lines:
        if not line.startswith("  "):
            break
        table, count = line.split()
        rows[table] = int(count.replace(",", ""))
    return rows


def backfill_queued(environ: dict, stdout: str, ranged_run: dg.DagsterRun) -> None:
    """The backfill command the summary prints, run as printed, queues one run of
    market_data_job over every partition from the first to the day before the demo's."""
    [command] = [line.strip() for line in stdout.splitlines() if "dagster job launch" in line]
    argv = [os.path.join(os.path.dirname(sys.executable), "dagster"), *shlex.split(command)[1:]]
    completed = subprocess.run(
        argv,
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_SECONDS,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(environ["DAGSTER_HOME"])) as instance:
        [queued] = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
    first_demo_day = ranged_run.tags[RANGE_START]
    wanted = trading_day_partitions.get_partition_keys_in_range(
        dg.PartitionKeyRange(trading_day_partitions.get_first_partition_key(), first_demo_day)
    )[:-1]
    assert queued.job_name == MARKET_DATA_JOB_NAME
    assert (queued.tags[RANGE_START], queued.tags[RANGE_END]) == (wanted[0], wanted[-1])


@pytest.mark.slow
# Two demos and a backfill in one test: pytest.ini's 300 s ran out under `make test`'s two
# workers on a loaded machine; a hang still fails, at each command's own limit.
@pytest.mark.timeout(DEMO_TIMEOUT_SECONDS)
def test_demo_syncs_twenty_days_then_finds_them_done(demo_env, monkeypatch):
    first = zquant_demo(demo_env)
    assert f"Synced {TRADING_DAYS} trading days" in first
    rows = summary_rows(first)
    for table in ("daily", "adj_factor", "daily_basic", "factor_daily"):
        assert rows[table] > 250 * TRADING_DAYS, table
    for table in REPORT_PERIOD_APIS:  # four report periods of some 300 stocks
        assert rows[table] > 3 * 250, table

    monkeypatch.setenv("DAGSTER_HOME", demo_env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        # The query behind a job's Runs tab in the UI (dagster_graphql GraphenePipeline.runs).
        label = f"{REPOSITORY_NAME}@{location_name()}"
        listed = instance.get_runs(
            dg.RunsFilter(job_name=MARKET_DATA_JOB_NAME, tags={REPOSITORY_LABEL_TAG: label})
        )
    # Reference data, one ranged run of the 20 days, one of the last four report periods.
    assert len(runs) == 3
    assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
    statements = [run for run in runs if run.job_name == FINANCIAL_STATEMENTS_JOB_NAME]
    assert len(statements) == 1
    for run in runs:
        assert run.run_id in first
        # Listed under its job of the code location in the UI, with Re-execute.
        origin = run.remote_job_origin
        assert origin is not None, f"run {run.run_id} has no code location origin"
        assert origin.job_name == run.job_name
        assert origin.repository_origin.repository_name == REPOSITORY_NAME
        assert origin.repository_origin.code_location_origin.location_name == location_name()
    assert {run.run_id for run in listed} == {run.run_id for run in runs} - {statements[0].run_id}
    ranged = [
        run
        for run in runs
        if "dagster/asset_partition_range_start" in run.tags
        and run.job_name == MARKET_DATA_JOB_NAME
    ]
    assert len(ranged) == 1 and dg.AssetKey("factor_daily") in ranged[0].asset_selection

    second = zquant_demo(demo_env)
    assert "none: every day and period was already done" in second
    assert summary_rows(second) == rows
    backfill_queued(demo_env, second, ranged[0])

    warehouse = Warehouse(url=demo_env[ENV_WAREHOUSE_URL])
    window = {"start": first.split("trading days ")[1].split(" .. ")[0]}
    window["end"] = first.split(" .. ")[1].split()[0]
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
