"""`zquant api` as a real process on a real instance: every route driven over HTTP with the
bodies zquant's web client sends, responses compared field by field with zquant v0.4's
schemas (the field sets below are written from ../shared/reference/zquant-v0.4.md, not from
our code), the keys, zquant's error body, and a create-trigger-history-stats round trip
whose run really executes (the run queue driven once here, as the daemon would) and whose
task the UI (a Dagster webserver on the same workspace) shows after the reload.
"""

import pytest
import requests

from zquant_pipelines.cli.main import main
from zquant_pipelines.constants import ENV_API_READ_TOKEN, ENV_API_TOKEN, ENV_UI_URL
from zquant_pipelines.history.pause import pause_request_pool
from zquant_pipelines.tasks.builders import job_name
from zquant_pipelines.tasks.catalog import load_catalog
from zquant_pipelines_tests.support.operations_environment import (
    drive_queue_once,
    operations_environment,
    seed_stock_basic,
    serving,
)
from zquant_pipelines_tests.support.waiting import wait_until
from zquant_pipelines_tests.support.zquant_api import (
    FULL_KEY,
    PREFIX,
    READ_KEY,
    post,
    serves_job,
    zquant_api,
)

pytestmark = pytest.mark.slow

RUN_SECONDS = 180
# zquant v0.4 (reference, section 1 and 2): Task = every zq_task_scheduled_tasks column,
# config parsed, plus the latest_* fields and schedule_status; Execution = every
# zq_task_task_executions column, result parsed; Stats; the error body of its handler.
TASK_FIELDS = {
    "id",
    "name",
    "job_id",
    "task_type",
    "cron_expression",
    "interval_seconds",
    "enabled",
    "paused",
    "description",
    "config",
    "max_retries",
    "retry_interval",
    "created_by",
    "updated_by",
    "created_time",
    "updated_time",
    "latest_execution_time",
    "latest_execution_status",
    "latest_execution_current_item",
    "latest_execution_progress",
    "schedule_status",
}
EXECUTION_FIELDS = {
    "id",
    "task_id",
    "status",
    "start_time",
    "end_time",
    "duration_seconds",
    "result",
    "error_message",
    "retry_count",
    "progress_percent",
    "current_item",
    "total_items",
    "processed_items",
    "estimated_end_time",
    "is_paused",
    "terminate_requested",
    "created_by",
    "updated_by",
    "created_time",
    "updated_time",
}
STATS_FIELDS = {
    "total_executions",
    "success_count",
    "failed_count",
    "running_count",
    "success_rate",
    "avg_duration_seconds",
    "latest_execution_time",
}
ERROR_FIELDS = {"success", "message", "data", "code", "error_code", "error_detail"}
TASK_TYPES = {"manual_task", "common_task", "workflow"}
SCHEDULE_STATUSES = {"disabled", "paused", "pending", "running", "success", "failed"}
EXECUTION_STATUSES = {
    "pending",
    "running",
    "paused",
    "success",
    "failed",
    "completed",
    "terminated",
}
# operations_environment's TEST_CATALOG, by zquant id (place in tasks.yaml).
# repair_daily_bars (7) is removed by a test; the others keep their ids.
NIGHTLY, TICKER, BY_HAND, HELD, QUEUED, CHAIN, REPAIR = 1, 2, 3, 4, 5, 6, 7


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with operations_environment(tmp_path_factory.mktemp("api")) as environment:
        seed_stock_basic(environment)
        yield environment


@pytest.fixture(scope="module")
def ui(env):
    """A Dagster webserver on the test workspace: the UI an edit must reach."""
    with serving(env.workspace) as url:
        yield url


@pytest.fixture(scope="module")
def api(env, ui):
    """`zquant api` as a process of its own on the test instance: its base URL."""
    with zquant_api(environment={ENV_UI_URL: ui}) as url:
        yield url


def assert_task(task):
    assert set(task) == TASK_FIELDS
    assert task["task_type"] in TASK_TYPES
    assert task["schedule_status"] in SCHEDULE_STATUSES
    assert isinstance(task["config"], dict)


def assert_execution(execution):
    assert set(execution) == EXECUTION_FIELDS
    assert execution["status"] in EXECUTION_STATUSES


def assert_error(body, code, *words):
    assert set(body) == ERROR_FIELDS
    assert body["success"] is False and body["data"] is None and body["code"] == code
    for word in words:
        assert word in body["message"]


def test_task_list_and_get_answer_with_zquants_fields(api):
    # The list page's body: paging, a type filter, zquant's default order (id desc).
    listed = post(
        api,
        "/tasks/query",
        {"skip": 0, "limit": 20, "task_type": "manual_task", "order_by": "id", "order": "desc"},
    )
    one = post(api, "/tasks/get", {"task_id": BY_HAND})

    names = [task["name"] for task in listed["tasks"]]
    ids = [task["id"] for task in listed["tasks"]]
    # Tasks the other tests add or remove come and go; the first two manual ones stay last.
    assert names[-2:] == ["held", "by_hand"] and ids == sorted(ids, reverse=True)
    assert {task["task_type"] for task in listed["tasks"]} == {"manual_task"}
    assert listed["total"] == len(names)
    for task in listed["tasks"]:
        assert_task(task)
    assert_task(one)
    assert one["id"] == BY_HAND and one["name"] == "by_hand"
    assert one["job_id"] == job_name("by_hand")
    assert one["config"] == {"task_action": "example_task", "message": "by hand"}
    assert (one["enabled"], one["paused"], one["max_retries"]) == (True, False, 0)


def test_create_trigger_history_stats_round_trip(api, env, ui):
    # The web client's create form: every field, nulls for the trigger of a manual task.
    body = {
        "name": "made_over_rest",
        "task_type": "manual_task",
        "cron_expression": None,
        "interval_seconds": None,
        "description": "created by zquant's web client",
        # A multi-day sync (of the offline sample market): its run reports progress.
        "config": {
            "task_action": "sync_daily_data",
            "ts_code": "000047.SZ",
            "start_date": "20240102",
            "end_date": "20240110",
        },
        "max_retries": 0,
        "retry_interval": 60,
        "enabled": True,
    }
    created = post(api, "/tasks", body, expect=201)
    assert_task(created)
    assert created["name"] == "made_over_rest"
    assert created["description"] == "created by zquant's web client"
    assert created["latest_execution_status"] is None
    assert "made_over_rest" in load_catalog(env.tasks_file).tasks
    # The reload reached the UI: its webserver serves the new task's job.
    assert serves_job(ui, "made_over_rest")

    task_id = created["id"]
    assert post(api, "/tasks/trigger", {"task_id": task_id}) == {"message": "任务已触发"}
    queued = post(api, "/tasks/executions/list", {"task_id": task_id, "skip": 0, "limit": 20})
    assert queued["total"] == 1
    (execution,) = queued["executions"]
    assert_execution(execution)
    assert execution["status"] == "pending" and execution["task_id"] == task_id

    drive_queue_once(env)

    def finished():
        got = post(
            api, "/tasks/executions/get", {"task_id": task_id, "execution_id": execution["id"]}
        )
        return got if got["status"] not in ("pending", "running") else None

    done = wait_until(finished, RUN_SECONDS, "the run to end", 0.5)
    assert_execution(done)
    assert done["status"] == "success", done
    assert done["duration_seconds"] is not None and done["end_time"] is not None
    # The progress record: every open day of 2024-01-02..10 written.
    assert done["progress_percent"] == 100.0
    assert done["total_items"] == done["processed_items"] > 0
    assert done["current_item"].endswith("2024-01-10"), done["current_item"]

    stats = post(api, "/stats", {"task_id": task_id})
    assert set(stats) == STATS_FIELDS
    assert (stats["total_executions"], stats["success_count"], stats["failed_count"]) == (1, 1, 0)
    assert stats["success_rate"] == 1.0
    task = post(api, "/tasks/get", {"task_id": task_id})
    assert (task["latest_execution_status"], task["schedule_status"]) == ("success", "success")
    assert task["latest_execution_progress"] == 100.0
    overall = post(api, "/stats", {})
    assert set(overall) == STATS_FIELDS and overall["total_executions"] >= 1


def test_update_and_delete_edit_tasks_yaml(api, env):
    # Each edit reloads two code locations (ours and the UI's): one update, one removal.
    # The web client's edit form sends every field, null where unchanged.
    updated = post(
        api,
        "/tasks/update",
        {
            "task_id": TICKER,
            "name": None,
            "cron_expression": None,
            "interval_seconds": 120,
            "description": "edited",
            "config": {"task_action": "example_task", "message": "edited"},
            "max_retries": 2,
            "retry_interval": None,
        },
    )
    assert_task(updated)
    assert (updated["interval_seconds"], updated["description"], updated["max_retries"]) == (
        120,
        "edited",
        2,
    )
    spec = load_catalog(env.tasks_file).tasks["ticker"]
    assert (spec.interval_seconds, spec.config["message"]) == (120, "edited")

    before = env.tasks_file.read_bytes()
    refused = post(
        api, "/tasks/update", {"task_id": TICKER, "cron_expression": "0 18 * * *"}, expect=400
    )
    assert_error(refused, 400, "ticker", "cron_expression")
    # A workflow's member is not removed (the editor's rule), naming the workflow.
    kept = post(api, "/tasks/delete", {"task_id": BY_HAND}, expect=400)
    assert_error(kept, 400, "chain")
    assert env.tasks_file.read_bytes() == before

    assert post(api, "/tasks/delete", {"task_id": REPAIR}, expect=204) is None
    assert "repair_daily_bars" not in load_catalog(env.tasks_file).tasks


def test_ids_stay_with_their_task_when_an_earlier_task_is_removed(api):
    # A zquant client holds a task's id for the task's life (zquant's autoincrement id):
    # removing a task before it must not make the id address another task.
    spec = {"task_type": "manual_task", "config": {"task_action": "example_task"}}
    first, kept, last = (
        post(api, "/tasks", {"name": name, **spec}, expect=201)["id"]
        for name in ("removed_first", "kept_by_id", "added_last")
    )
    assert first < kept < last

    assert post(api, "/tasks/delete", {"task_id": first}, expect=204) is None
    assert post(api, "/tasks/get", {"task_id": kept})["name"] == "kept_by_id"
    assert post(api, "/tasks/get", {"task_id": last})["name"] == "added_last"
    assert_error(post(api, "/tasks/get", {"task_id": first}, expect=404), 404, str(first))
    post(api, "/tasks/trigger", {"task_id": kept})
    (run,) = post(api, "/tasks/executions/list", {"task_id": kept, "skip": 0, "limit": 5})[
        "executions"
    ]
    post(api, "/executions/terminate", {"execution_id": run["id"]})
    assert post(api, "/tasks/get", {"task_id": last})["latest_execution_status"] is None
    assert post(api, "/tasks/delete", {"task_id": kept}, expect=204) is None
    assert post(api, "/tasks/get", {"task_id": last})["name"] == "added_last"
    # Nor is a removed task's id given to a new task, not even the highest one's.
    assert post(api, "/tasks/delete", {"task_id": last}, expect=204) is None
    assert post(api, "/tasks", {"name": "added_after", **spec}, expect=201)["id"] > last
    assert_error(post(api, "/tasks/get", {"task_id": last}, expect=404), 404, str(last))


def test_enable_disable_pause_resume(api):
    disabled = post(api, "/tasks/disable", {"task_id": NIGHTLY})
    assert (disabled["enabled"], disabled["schedule_status"]) == (False, "disabled")
    enabled = post(api, "/tasks/enable", {"task_id": NIGHTLY})
    assert (enabled["enabled"], enabled["schedule_status"]) == (True, "pending")
    paused = post(api, "/tasks/pause", {"task_id": HELD})
    assert (paused["paused"], paused["schedule_status"]) == (True, "paused")
    resumed = post(api, "/tasks/resume", {"task_id": HELD})
    assert resumed["paused"] is False
    for task in (disabled, enabled, paused, resumed):
        assert_task(task)
    # A manual task has no schedule to enable: bad input, saying what to do instead.
    assert_error(post(api, "/tasks/enable", {"task_id": HELD}, expect=400), 400, "pause")


def test_execution_terminate_resume_and_pause(api, env):
    post(api, "/tasks/trigger", {"task_id": QUEUED})
    (queued,) = post(api, "/tasks/executions/list", {"task_id": QUEUED, "skip": 0, "limit": 1})[
        "executions"
    ]

    terminated = post(api, "/executions/terminate", {"execution_id": queued["id"]})
    assert_execution(terminated)
    assert (terminated["id"], terminated["status"]) == (queued["id"], "terminated")
    resumed = post(api, "/executions/resume", {"execution_id": queued["id"]})
    assert_execution(resumed)
    assert resumed["id"] == queued["id"]
    new_id = resumed["result"]["resumed_as_execution_id"]
    listed = post(api, "/tasks/executions/list", {"task_id": QUEUED, "skip": 0, "limit": 5})
    assert [execution["id"] for execution in listed["executions"]][:2] == [new_id, queued["id"]]
    post(api, "/executions/terminate", {"execution_id": new_id})

    # A run that ended has nothing to pause. One that has not is asked to: it stops at its
    # next day boundary (a multi-day step's: operations/test_terminate_retry.py pauses one
    # and resumes it); until then it is as it was.
    ended = post(api, "/executions/pause", {"execution_id": queued["id"]}, expect=400)
    assert_error(ended, 400, queued["id"], "already ended")
    asked_ids = []
    for _ in range(2):
        post(api, "/tasks/trigger", {"task_id": QUEUED})
        listed = post(api, "/tasks/executions/list", {"task_id": QUEUED, "skip": 0, "limit": 1})
        asked_ids.append(listed["executions"][0]["id"])
        asked = post(api, "/executions/pause", {"execution_id": asked_ids[-1]})
        assert_execution(asked)
        assert (asked["id"], asked["status"], asked["is_paused"]) == (
            asked_ids[-1],
            "pending",
            False,
        )
        assert "pause requested" in asked["result"]["message"]
        post(api, "/executions/terminate", {"execution_id": asked_ids[-1]})
    # The request of the first run, which ended without stopping for it, was withdrawn by
    # the second request.
    requests_standing = env.instance.event_log_storage.get_concurrency_keys()
    assert pause_request_pool(asked_ids[0]) not in requests_standing
    assert pause_request_pool(asked_ids[1]) in requests_standing
    unknown = post(api, "/executions/terminate", {"execution_id": "no-such-run"}, expect=404)
    assert_error(unknown, 404, "no-such-run")
    other_task = post(
        api, "/tasks/executions/get", {"task_id": HELD, "execution_id": queued["id"]}, expect=404
    )
    assert_error(other_task, 404, "execution_id")


def test_workflow_routes_speak_in_task_ids(api):
    members = post(api, "/tasks/workflow/tasks", {"task_id": CHAIN})
    workflow = post(api, "/tasks/get", {"task_id": CHAIN})
    # The workflow editor's body: members and dependencies by id.
    valid = post(
        api,
        "/tasks/workflow/validate",
        {
            "task_id": CHAIN,
            "config": {
                "workflow_type": "serial",
                "tasks": [
                    {"task_id": BY_HAND, "name": "by_hand", "dependencies": []},
                    {"task_id": QUEUED, "name": "queued", "dependencies": [BY_HAND]},
                ],
                "on_failure": "stop",
            },
        },
    )
    invalid = post(
        api,
        "/tasks/workflow/validate",
        {
            "task_id": CHAIN,
            "config": {
                "workflow_type": "serial",
                "tasks": [{"task_id": QUEUED, "name": "queued", "dependencies": [BY_HAND]}],
                "on_failure": "stop",
            },
        },
    )

    assert [task["name"] for task in members] == ["by_hand", "queued"]
    for task in members:
        assert_task(task)
    assert workflow["config"]["tasks"] == [
        {"task_id": BY_HAND, "name": "by_hand", "dependencies": []},
        {"task_id": QUEUED, "name": "queued", "dependencies": [BY_HAND]},
    ]
    assert valid == {"valid": True, "message": "workflow config is valid"}
    assert invalid["valid"] is False and "by_hand" in invalid["message"]
    assert_error(post(api, "/tasks/workflow/tasks", {"task_id": HELD}, expect=400), 400, "task_id")


def test_older_routes_do_the_same_work(api):
    headers = {"Authorization": f"Bearer {FULL_KEY}"}
    listed = requests.get(f"{api}{PREFIX}/tasks?skip=0&limit=2", headers=headers, timeout=60)
    one = requests.get(f"{api}{PREFIX}/tasks/{BY_HAND}", headers=headers, timeout=60)
    members = requests.get(f"{api}{PREFIX}/tasks/{CHAIN}/workflow", headers=headers, timeout=60)
    stats = requests.get(f"{api}{PREFIX}/stats?task_id={BY_HAND}", headers=headers, timeout=60)
    paused = requests.post(f"{api}{PREFIX}/tasks/{HELD}/pause", headers=headers, timeout=60)
    resumed = requests.post(f"{api}{PREFIX}/tasks/{HELD}/resume", headers=headers, timeout=60)

    assert len(listed.json()["tasks"]) == 2 and listed.json()["total"] >= 6
    assert one.json() == post(api, "/tasks/get", {"task_id": BY_HAND})
    assert [task["name"] for task in members.json()] == ["by_hand", "queued"]
    assert set(stats.json()) == STATS_FIELDS
    assert (paused.json()["paused"], resumed.json()["paused"]) == (True, False)


def test_bad_bodies_are_zquants_error_naming_the_field(api):
    missing = post(api, "/tasks/get", {}, expect=422)
    unknown_field = post(api, "/tasks/get", {"task_id": BY_HAND, "colour": 1}, expect=422)
    bad_type = post(api, "/tasks", {"name": "x", "task_type": "daily"}, expect=422)
    no_task = post(api, "/tasks/get", {"task_id": 999}, expect=404)

    assert_error(missing, 422, "task_id")
    assert_error(unknown_field, 422, "colour")
    assert_error(bad_type, 422, "task_type")
    assert_error(no_task, 404, "task_id", "999")


def test_keys(api, env):
    before = env.tasks_file.read_bytes()
    create = {"name": "by_reader", "task_type": "manual_task", "config": {}}

    assert_error(post(api, "/tasks/query", {}, key=None, expect=403), 403, "Authorization")
    assert_error(post(api, "/tasks/query", {}, key="wrong", expect=401), 401, "not valid")
    assert post(api, "/tasks/query", {}, key=READ_KEY)["total"] >= 6
    assert set(post(api, "/stats", {}, key=READ_KEY)) == STATS_FIELDS
    for route, body in (("/tasks", create), ("/tasks/trigger", {"task_id": BY_HAND})):
        assert_error(post(api, route, body, key=READ_KEY, expect=403), 403, "read-only")
    assert env.tasks_file.read_bytes() == before
    # The same key as an X-API-Key header.
    by_header = requests.post(
        f"{api}{PREFIX}/tasks/get",
        json={"task_id": BY_HAND},
        headers={"X-API-Key": READ_KEY},
        timeout=60,
    )
    assert by_header.status_code == 200 and by_header.json()["name"] == "by_hand"


def test_api_refuses_to_start_without_keys_or_off_loopback(monkeypatch, capsys):
    monkeypatch.delenv(ENV_API_TOKEN, raising=False)
    monkeypatch.delenv(ENV_API_READ_TOKEN, raising=False)

    assert main(["api"]) == 2
    assert ENV_API_TOKEN in capsys.readouterr().err
    assert main(["api", "--no-auth", "--host", "0.0.0.0"]) == 2
    assert "loopback" in capsys.readouterr().err


def test_openapi_page_lists_zquants_18_routes(api):
    # The reference's table: 18 POST routes, as zquant's web/src/services/zquant/scheduler.ts
    # wraps them.
    zquant_routes = {
        "/tasks",
        "/tasks/query",
        "/tasks/get",
        "/tasks/update",
        "/tasks/delete",
        "/tasks/trigger",
        "/tasks/enable",
        "/tasks/disable",
        "/tasks/pause",
        "/tasks/resume",
        "/tasks/executions/list",
        "/tasks/executions/get",
        "/executions/pause",
        "/executions/resume",
        "/executions/terminate",
        "/tasks/workflow/tasks",
        "/tasks/workflow/validate",
        "/stats",
    }
    paths = requests.get(f"{api}/openapi.json", timeout=60).json()["paths"]

    posted = {path.removeprefix(PREFIX) for path, methods in paths.items() if "post" in methods}
    assert zquant_routes <= posted
    assert len(zquant_routes) == 18


def test_openapi_declares_both_ways_to_send_a_key_and_every_route_requires_one(api):
    spec = requests.get(f"{api}/openapi.json", timeout=60).json()
    schemes = spec["components"]["securitySchemes"]
    # What /docs' Authorize button offers: a bearer token, or the X-API-Key header.
    assert {
        name: {k: v for k, v in scheme.items() if k != "description"}
        for name, scheme in schemes.items()
    } == {
        "BearerKey": {"type": "http", "scheme": "bearer"},
        "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    operations = {
        (method, path): operation
        for path, methods in spec["paths"].items()
        if path.startswith(PREFIX)
        for method, operation in methods.items()
    }
    assert len(operations) >= 18
    unguarded = [
        route
        for route, operation in operations.items()
        if operation.get("security") != [{"BearerKey": []}, {"ApiKeyHeader": []}]
    ]
    assert unguarded == []
    # The key as the Authorize button sends it: the header scheme works as the bearer does.
    by_scheme = requests.post(
        f"{api}{PREFIX}/stats", json={}, headers={"X-API-Key": FULL_KEY}, timeout=60
    )
    assert by_scheme.status_code == 200 and set(by_scheme.json()) == STATS_FIELDS
