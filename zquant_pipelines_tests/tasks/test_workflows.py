"""Workflows: serial and parallel, on_failure stop and continue, against a failure of the first,
a middle and the last member, and of one parallel branch while another runs. Each member's
outcome is read from the run's event log; the run fails whenever a member failed (zquant
marked such a workflow a success)."""

import dagster as dg
import pytest

from zquant_pipelines.tasks.builders import job_name
from zquant_pipelines_tests.tasks.support import (
    example,
    first_time,
    location_repository,
    member,
    member_outcomes,
    reason_for,
    step_start_order,
    task_definitions,
    workflow,
)

# a -> b, a -> c, (b, c) -> d; e stands alone. Listed so that the topological order with ties
# in list order (a, e, b, c, d) differs from both the list order and alphabetical order.
MEMBERS = [member("a"), member("e"), member("c", "a"), member("b", "a"), member("d", "b", "c")]
SERIAL_ORDER = ["a", "e", "c", "b", "d"]
NAMES = sorted(SERIAL_ORDER)
DOWNSTREAM = {"a": {"b", "c", "d"}, "b": {"d"}, "c": {"d"}, "d": set(), "e": set()}
OK, FAILED, SKIPPED, NOT_RUN = "succeeded", "failed", "skipped", "not run"


def run_workflow(resources, instance, workflow_type, on_failure, failing=None, **settings):
    tasks = [example(name) for name in NAMES]
    tasks.append(
        workflow("wf", workflow_type, on_failure, MEMBERS, executor="in_process", **settings)
    )
    job = task_definitions(tasks, resources).resolve_job_def(job_name("wf"))
    run_config = {"ops": {failing: {"config": {"fail": True}}}} if failing else None
    result = job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)
    return result, member_outcomes(instance, result.run_id, NAMES)


def outcomes(**by_member) -> dict:
    return {name: by_member.get(name, OK) for name in NAMES}


@pytest.mark.parametrize("workflow_type", ["serial", "parallel"])
def test_workflow_without_failures_runs_every_member_and_succeeds(
    resources, instance, workflow_type
):
    result, seen = run_workflow(resources, instance, workflow_type, "stop")

    assert result.success
    assert seen == outcomes()


def test_serial_runs_members_in_topological_order_with_ties_in_list_order(resources, instance):
    result, _ = run_workflow(resources, instance, "serial", "continue")

    assert step_start_order(instance, result.run_id) == SERIAL_ORDER


SERIAL_CASES = {
    ("stop", "a"): outcomes(a=FAILED, e=SKIPPED, b=NOT_RUN, c=NOT_RUN, d=NOT_RUN),
    # d waits on c (failed) and b (skipped, no output): Dagster skips it for b.
    ("stop", "c"): outcomes(c=FAILED, b=SKIPPED, d=SKIPPED),
    ("stop", "d"): outcomes(d=FAILED),
    ("continue", "a"): outcomes(a=FAILED, b=NOT_RUN, c=NOT_RUN, d=NOT_RUN),
    ("continue", "c"): outcomes(c=FAILED, d=NOT_RUN),
    ("continue", "d"): outcomes(d=FAILED),
}


@pytest.mark.parametrize(
    ("on_failure", "failing"), list(SERIAL_CASES), ids=[f"{a}-{b}" for a, b in SERIAL_CASES]
)
def test_serial_workflow_against_each_failure_position(resources, instance, on_failure, failing):
    result, seen = run_workflow(resources, instance, "serial", on_failure, failing)

    assert seen == SERIAL_CASES[on_failure, failing]
    assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.FAILURE
    started = step_start_order(instance, result.run_id)
    assert started == [name for name in SERIAL_ORDER if name in started]
    for name, outcome in seen.items():
        if outcome == NOT_RUN:
            assert reason_for(instance, result.run_id, name).endswith("Not executing.")
        if outcome == SKIPPED:
            assert reason_for(instance, result.run_id, name) in (
                f"{name} skipped: member(s) {failing} failed and the workflow's on_failure"
                " is 'stop'",
                f"Skipping step {name} due to skipped dependencies: ['b.result'].",
            )


@pytest.mark.parametrize("failing", ["a", "c", "d"])
def test_parallel_continue_runs_everything_not_downstream_of_the_failure(
    resources, instance, failing
):
    result, seen = run_workflow(resources, instance, "parallel", "continue", failing)

    expected = outcomes(**{failing: FAILED}, **{name: NOT_RUN for name in DOWNSTREAM[failing]})
    assert seen == expected
    assert not result.success
    for name in DOWNSTREAM[failing]:
        assert reason_for(instance, result.run_id, name).endswith("Not executing.")


@pytest.mark.parametrize("failing", ["a", "c", "d"])
def test_parallel_stop_starts_no_member_after_a_failure(resources, instance, failing):
    """Which members start before the failure is the executor's choice here (one step at a
    time); the multiprocess tests below pin a member that must start after it."""
    result, seen = run_workflow(resources, instance, "parallel", "stop", failing)

    assert not result.success
    assert seen[failing] == FAILED
    assert all(seen[name] == NOT_RUN for name in DOWNSTREAM[failing])
    failed_at = first_time(instance, result.run_id, failing, "STEP_FAILURE")
    others = set(NAMES) - {failing} - DOWNSTREAM[failing]
    for name in others:
        started_at = first_time(instance, result.run_id, name, "STEP_START")
        assert seen[name] == (SKIPPED if started_at > failed_at else OK), name


def test_each_member_has_its_own_result_duration_and_attempts(resources, instance):
    tasks = [example(name) for name in NAMES if name != "e"]
    tasks.append(example("e", max_retries=1, retry_interval=0, config={"fail_attempts": 1}))
    tasks.append(workflow("wf", "serial", "continue", MEMBERS, executor="in_process"))
    job = task_definitions(tasks, resources).resolve_job_def(job_name("wf"))
    b_fails = {"ops": {"b": {"config": {"fail": True}}}}
    result = job.execute_in_process(instance=instance, run_config=b_fails, raise_on_error=False)

    stats = {s.step_key: s for s in instance.get_run_step_stats(result.run_id)}
    assert {name: s.status.value for name, s in stats.items()} == {
        "a": "SUCCESS",
        "e": "SUCCESS",
        "c": "SUCCESS",
        "b": "FAILURE",
    }
    assert {name: s.attempts for name, s in stats.items()} == {"a": 1, "e": 2, "c": 1, "b": 1}
    assert all(s.end_time >= s.start_time for s in stats.values())


# --- parallel branches really run at once (multiprocess executor) -------------------------

# boom fails while slow sleeps (both sleep so that the two steps overlap even when one worker
# process starts seconds after the other); after_slow starts once slow is done, after the failure.
BRANCHES = [
    member("slow"),
    member("boom"),
    member("after_boom", "boom"),
    member("after_slow", "slow"),
]
BRANCH_TASKS = [
    example("slow", config={"sleep_seconds": 6}),
    example("boom", config={"sleep_seconds": 3, "fail": True}),
    example("after_boom"),
    example("after_slow"),
    workflow("branches_stop", "parallel", "stop", BRANCHES),
    workflow("branches_continue", "parallel", "continue", BRANCHES),
]


def run_branches(use_catalog, instance, workflow_name):
    use_catalog(BRANCH_TASKS)
    job = location_repository().get_reconstructable_job(job_name(workflow_name))
    with dg.execute_job(job, instance, raise_on_error=False) as result:
        run_id = result.run_id
    names = ["slow", "boom", "after_boom", "after_slow"]
    return run_id, member_outcomes(instance, run_id, names)


def assert_branches_overlapped(instance, run_id):
    slow_start = first_time(instance, run_id, "slow", "STEP_START")
    slow_end = first_time(instance, run_id, "slow", "STEP_SUCCESS")
    boom_start = first_time(instance, run_id, "boom", "STEP_START")
    boom_end = first_time(instance, run_id, "boom", "STEP_FAILURE")
    assert slow_start < boom_end and boom_start < slow_end
    assert boom_end < first_time(instance, run_id, "after_slow", "STEP_START")


@pytest.mark.slow
def test_parallel_stop_lets_the_running_branch_finish_and_starts_nothing_new(use_catalog, instance):
    run_id, seen = run_branches(use_catalog, instance, "branches_stop")

    assert seen == {"slow": OK, "boom": FAILED, "after_boom": NOT_RUN, "after_slow": SKIPPED}
    assert_branches_overlapped(instance, run_id)
    # zquant's parallel stop could run a task twice: here each member starts once at most.
    starts = step_start_order(instance, run_id)
    assert sorted(starts) == sorted(set(starts)) == ["after_slow", "boom", "slow"]
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
    assert "member(s) boom failed" in reason_for(instance, run_id, "after_slow")


@pytest.mark.slow
def test_parallel_continue_runs_the_other_branch_to_its_end(use_catalog, instance):
    run_id, seen = run_branches(use_catalog, instance, "branches_continue")

    assert seen == {"slow": OK, "boom": FAILED, "after_boom": NOT_RUN, "after_slow": OK}
    assert_branches_overlapped(instance, run_id)
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
    assert "failed: ['boom']" in reason_for(instance, run_id, "after_boom")
