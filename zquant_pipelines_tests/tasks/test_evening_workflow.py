"""The shipped evening_workflow (zquant's ten steps) run once end to end, offline: the
shipped catalog's job in process on the sample market and a SQLite warehouse, with the
members' shipped parameters (the latest trading day, the last two report periods). Every
step succeeds, none starts before the steps it depends on succeeded, and every table the
steps write holds rows."""

import dagster as dg
import pytest

from zquant_pipelines.constants import DEFAULT_TASKS_FILE, REPO_ROOT
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.tasks.builders import build_task_definitions, job_name
from zquant_pipelines.tasks.catalog import load_catalog
from zquant_pipelines_tests.tasks.support import first_time, member_outcomes

WORKFLOW = "evening_workflow"
# What the ten steps write, zquant's STEP1..STEP10 in turn.
WRITTEN_TABLES = (
    "trade_cal",
    "stock_basic",
    "daily",
    "adj_factor",
    "daily_basic",
    "stk_factor",
    "stk_factor_pro",
    "income",
    "balancesheet",
    "cashflow",
    "fina_indicator",
    "factor_daily",
    "stock_screen",
    "table_statistics",
)


@pytest.fixture(scope="module")
def evening_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evening")
    catalog = load_catalog(REPO_ROOT / DEFAULT_TASKS_FILE)
    warehouse = Warehouse(url=f"sqlite:///{folder / 'wh.db'}")
    resources = {"market_source": SampleMarketSource(), "warehouse": warehouse}
    defs = dg.Definitions.merge(
        build_task_definitions(catalog), dg.Definitions(resources=resources)
    )
    (folder / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(folder / "dagster_home")) as instance:
        job = defs.resolve_job_def(job_name(WORKFLOW))
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        yield catalog.workflow(WORKFLOW), instance, result, warehouse
    warehouse.dispose()


@pytest.mark.slow
def test_every_step_ran_after_the_steps_it_depends_on(evening_run):
    workflow, instance, result, _ = evening_run

    outcomes = member_outcomes(instance, result.run_id, list(workflow.member_names))
    assert outcomes == dict.fromkeys(workflow.member_names, "succeeded")
    assert result.success
    assert len(workflow.edges) >= len(workflow.member_names) - 1
    for upstream, downstream in workflow.edges:
        done = first_time(instance, result.run_id, upstream, "STEP_SUCCESS")
        started = first_time(instance, result.run_id, downstream, "STEP_START")
        assert done <= started, f"{downstream} started before {upstream} succeeded"


@pytest.mark.slow
def test_every_table_of_the_ten_steps_got_rows(evening_run):
    *_, warehouse = evening_run

    rows = {
        table: int(warehouse.read_frame(f"SELECT COUNT(*) AS n FROM {table}")["n"].iloc[0])
        for table in WRITTEN_TABLES
    }
    assert [table for table, count in rows.items() if count == 0] == [], rows
