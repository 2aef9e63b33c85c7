"""Run configs of task runs and the run outcome's rows (operations/base.py)."""

import pytest

from zquant_pipelines.operations.base import (
    RunOutcome,
    UsageProblem,
    op_configs,
    run_config,
)
from zquant_pipelines.tasks.catalog import parse_catalog


@pytest.fixture(scope="module")
def catalog():
    return parse_catalog(
        {
            "tasks": [
                {
                    "name": "bars",
                    "task_type": "manual_task",
                    "config": {
                        "task_action": "sync_daily_data",
                        "codelist": ["600000"],
                        "start_date": "20240102",
                    },
                },
                {
                    "name": "hello",
                    "task_type": "common_task",
                    "config": {"task_action": "example_task", "message": "hi"},
                },
                {
                    "name": "both",
                    "task_type": "workflow",
                    "config": {
                        "workflow_type": "serial",
                        "tasks": [{"name": "hello"}, {"name": "bars", "dependencies": ["hello"]}],
                    },
                },
            ]
        }
    )


def test_config_merges_into_the_task_params(catalog):
    configs = op_configs(catalog, catalog.tasks["bars"], {"end_date": "20240131"})
    assert run_config(configs) == {
        "ops": {
            "bars": {
                "config": {"codelist": ["600000"], "start_date": "20240102", "end_date": "20240131"}
            }
        }
    }


def test_workflow_config_is_per_member(catalog):
    configs = op_configs(catalog, catalog.tasks["both"], {"hello": {"fail": True}})
    assert configs == {
        "hello": {"message": "hi", "fail": True},
        "bars": {"codelist": ["600000"], "start_date": "20240102"},
    }


@pytest.mark.parametrize(
    "task, overrides, named",
    [
        ("bars", {"start_date": "20240301", "end_date": "20240102"}, "is after end_date"),
        ("bars", {"ts_code": "600000.SH"}, "exactly one of"),
        ("hello", {"sleep_seconds": "long"}, "--config hello.sleep_seconds"),
        ("both", {"hell": {}}, "'hell'"),
        ("both", {"hello": 3}, "hello"),
    ],
)
def test_bad_config_names_what_is_wrong(catalog, task, overrides, named):
    with pytest.raises(UsageProblem, match=named):
        op_configs(catalog, catalog.tasks[task], overrides)


def test_rows_written_from_output_metadata():
    outcome = RunOutcome(
        run_id="r",
        status="SUCCESS",
        metadata={"daily_rows": 7, "daily_api_calls": 1, "adj_factor_rows": 6},
        error=None,
    )
    assert outcome.rows_written == {"daily": 7, "adj_factor": 6}
