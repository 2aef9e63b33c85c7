"""Run configs of task runs and zquant's sync-daily arguments (operations/base.py)."""

import datetime as dt

import pytest

from zquant_pipelines.operations.base import (
    RunOutcome,
    UsageProblem,
    op_configs,
    parse_config_json,
    run_config,
    sync_daily_params,
)
from zquant_pipelines.tasks.catalog import parse_catalog

TODAY = dt.date(2024, 3, 1)


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


@pytest.mark.parametrize("text", ["{", "[]", '"text"'])
def test_config_json_must_be_an_object(text):
    with pytest.raises(UsageProblem) as raised:
        parse_config_json(text)
    assert repr(text) in str(raised.value)


def test_sync_daily_params_normalise_codes():
    params = sync_daily_params(TODAY, ts_code="430047", start_date="20240102", end_date="20240301")
    assert params == {"ts_code": "430047.BJ", "start_date": "20240102", "end_date": "20240301"}
    assert sync_daily_params(TODAY, codelist="600000,000001") == {"codelist": "600000,000001"}


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"symbol": "600000", "end_date": "20240302"}, "--end-date 20240302 is in the future"),
        ({"symbol": "600000", "start_date": "20240302"}, "--start-date 20240302 is in the future"),
        (
            {"codelist": "600000", "start_date": "20240201", "end_date": "20240101"},
            "--start-date 20240201 is after --end-date 20240101",
        ),
        ({"codelist": "600000,700000"}, "'700000'"),
        ({"symbol": "6000"}, "--symbol '6000'"),
    ],
)
def test_sync_daily_params_refuse_with_the_option_and_value(arguments, message):
    with pytest.raises(UsageProblem) as raised:
        sync_daily_params(TODAY, **arguments)
    assert message in str(raised.value)


def test_rows_written_from_output_metadata():
    outcome = RunOutcome(
        run_id="r",
        status="SUCCESS",
        metadata={"daily_rows": 7, "daily_api_calls": 1, "adj_factor_rows": 6},
        error=None,
    )
    assert outcome.rows_written == {"daily": 7, "adj_factor": 6}
