"""max_retries and retry_interval as Dagster step retries: every attempt is in the run's
logs, the step history counts them, and the run fails after the last one (zquant retried
once, whatever max_retries said). An error no retry can fix (a refused token, a denied API)
fails the run at its first attempt."""

import dagster as dg
import pytest

from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.tushare_client import TushareClient
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines_tests.tasks.support import example, step_event_types, task_definitions


def flaky(fail_attempts: int, max_retries: int = 3) -> dict:
    return example(
        "flaky",
        task_type="manual_task",
        max_retries=max_retries,
        retry_interval=0,
        config={"fail_attempts": fail_attempts},
    )


def run_flaky(resources, instance, fail_attempts: int, max_retries: int = 3):
    job = task_definitions([flaky(fail_attempts, max_retries)], resources).resolve_job_def(
        "flaky_job"
    )
    return job.execute_in_process(instance=instance, raise_on_error=False)


def test_step_succeeds_on_the_third_attempt_after_two_failures(resources, instance):
    result = run_flaky(resources, instance, fail_attempts=2)

    assert result.success
    (stats,) = instance.get_run_step_stats(result.run_id)
    assert (stats.step_key, stats.status.value, stats.attempts) == ("flaky", "SUCCESS", 3)
    events = step_event_types(instance, result.run_id)["flaky"]
    assert events.count("STEP_UP_FOR_RETRY") == 2
    assert events.count("STEP_RESTARTED") == 2
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    assert output.event_specific_data.metadata["attempt"] == dg.IntMetadataValue(3)


def test_run_fails_after_max_retries_plus_one_attempts(resources, instance):
    result = run_flaky(resources, instance, fail_attempts=5, max_retries=3)

    assert not result.success
    assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.FAILURE
    (stats,) = instance.get_run_step_stats(result.run_id)
    assert (stats.status.value, stats.attempts) == ("FAILURE", 4)
    events = step_event_types(instance, result.run_id)["flaky"]
    assert events.count("STEP_UP_FOR_RETRY") == 3
    assert events[-1] == "STEP_FAILURE"


def test_no_retries_means_one_attempt(resources, instance):
    result = run_flaky(resources, instance, fail_attempts=1, max_retries=0)

    assert not result.success
    (stats,) = instance.get_run_step_stats(result.run_id)
    assert stats.attempts == 1
    assert "STEP_UP_FOR_RETRY" not in step_event_types(instance, result.run_id)["flaky"]


def test_invalid_run_config_fails_at_once_naming_the_field(resources, instance):
    job = task_definitions([flaky(0)], resources).resolve_job_def("flaky_job")

    result = job.execute_in_process(
        instance=instance,
        run_config={"ops": {"flaky": {"config": {"fail_attempts": -1}}}},
        raise_on_error=False,
    )

    assert not result.success
    (stats,) = instance.get_run_step_stats(result.run_id)
    assert stats.attempts == 1
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.event_specific_data.error.message
    assert "invalid run config for task flaky" in message
    assert "ops.flaky.config.fail_attempts -1:" in message


# --- errors retrying cannot fix: a real task job, the real tushare wire protocol -------------

WRONG_TOKEN = "wrong-token-for-the-wire-server-42"


def deny_stock_basic(server) -> dict:
    server.deny("stock_basic")
    return {}


def send_a_wrong_token(server) -> dict:
    return {"token": WRONG_TOKEN}


def set_a_zero_budget(server) -> dict:
    return {"calls_per_minute": 0}


@pytest.mark.parametrize(
    ("fault", "error_text", "calls"),
    [
        (send_a_wrong_token, "token不对", 1),
        (deny_stock_basic, "没有访问该接口的权限", 1),
        (set_a_zero_budget, "TushareClient.calls_per_minute must be > 0, got 0", 0),
    ],
)
def test_refused_token_permission_or_setting_fails_after_one_attempt(
    tushare_server_factory, tmp_path, instance, fault, error_text, calls
):
    server = tushare_server_factory(SampleMarketSource())
    settings = {"token": server.token, **fault(server)}
    token = settings["token"]
    client = TushareClient(
        api_url=server.url, rate_limit_dir=str(tmp_path / "ratelimit"), **settings
    )
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'wh.db'}")
    # The shipped sync tasks retry for hours: 30 s apart here, so a retry would show.
    task = {
        "name": "sync_stock_list",
        "task_type": "common_task",
        "max_retries": 3,
        "retry_interval": 30,
        "config": {"task_action": "sync_stock_list"},
    }
    resources = {"market_source": client, "warehouse": warehouse}
    job = task_definitions([task], resources).resolve_job_def("sync_stock_list_job")

    result = job.execute_in_process(instance=instance, raise_on_error=False)
    warehouse.dispose()

    assert not result.success
    assert len(server.calls_to("stock_basic")) == calls
    (stats,) = instance.get_run_step_stats(result.run_id)
    assert stats.attempts == 1
    assert "STEP_UP_FOR_RETRY" not in step_event_types(instance, result.run_id)["sync_stock_list"]
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.event_specific_data.error.message
    assert "sync_stock_list failed, not retried" in message and error_text in message
    if calls:
        assert "tushare stock_basic" in message
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert all(token not in text for text in [message, *logged])
