"""max_retries and retry_interval as Dagster step retries: every attempt is in the run's
logs, the step history counts them, and the run fails after the last one (zquant retried
once, whatever max_retries said)."""

import dagster as dg

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
