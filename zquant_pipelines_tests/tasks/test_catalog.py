"""The task catalog: the shipped tasks.yaml, defaults, and one message per validation rule."""

import datetime as dt
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from zquant_pipelines.constants import DEFAULT_TASKS_FILE, MARKET_TIMEZONE
from zquant_pipelines.safe_yaml import MAX_NESTING
from zquant_pipelines.tasks.action_params import (
    ACTION_PARAMS,
    SyncDailyDataParams,
    SyncTradingCalendarParams,
)
from zquant_pipelines.tasks.catalog import (
    MIN_INTERVAL_SECONDS,
    TASK_TYPES,
    CatalogError,
    TaskSpec,
    load_catalog,
    parse_catalog,
)
from zquant_pipelines.tasks.catalog_workflows import DEFAULT_MAX_PARALLEL
from zquant_pipelines.tasks.catalog_yaml import MAX_CATALOG_BYTES

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = os.path.dirname(sys.executable)
DEFINITIONS_MODULE = "zquant_pipelines.definitions"


def common(name, action="sync_stock_list", **fields):
    config = fields.pop("config", {})
    return {
        "name": name,
        "task_type": "common_task",
        "config": {"task_action": action, **config},
        **fields,
    }


def workflow(name, members, **settings):
    return {
        "name": name,
        "task_type": "workflow",
        "config": {"workflow_type": "serial", **settings, "tasks": members},
    }


def member(name, *dependencies):
    return {"name": name, "dependencies": list(dependencies)}


def problems_of(*tasks, **top_level):
    with pytest.raises(CatalogError) as caught:
        parse_catalog({**top_level, "tasks": list(tasks)})
    return caught.value.problems


# --- the shipped catalog ---------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    return load_catalog(REPO_ROOT / DEFAULT_TASKS_FILE)


def test_shipped_catalog_covers_every_task_type_and_action(shipped):
    tasks = list(shipped.tasks.values())

    assert {task.task_type for task in tasks} == set(TASK_TYPES)
    assert {task.action for task in tasks if task.action} == set(ACTION_PARAMS)


def test_shipped_catalog_has_cron_interval_and_manual_tasks(shipped):
    tasks = shipped.tasks

    assert tasks["sync_trading_calendar"].cron_expression == "0 8 * * 0"
    assert tasks["sync_stock_list"].trigger == "cron"
    assert tasks["after_close"].cron_expression == "0 18 * * 1-5"
    assert tasks["after_close"].timezone == MARKET_TIMEZONE
    assert (tasks["heartbeat"].trigger, tasks["heartbeat"].enabled) == ("interval", False)
    assert tasks["heartbeat"].interval_seconds == 300
    assert tasks["repair_daily_bars"].task_type == "manual_task"
    assert tasks["hello_script"].task_type == "manual_task"
    assert tasks["hello_script"].params.script == "hello_pipes.py"


def test_shipped_after_close_chains_the_evening_sync(shipped):
    after_close = shipped.workflow("after_close")

    assert (after_close.workflow_type, after_close.on_failure) == ("parallel", "stop")
    assert after_close.member_names == (
        "sync_stock_list",
        "sync_all_daily_data",
        "sync_daily_basic_data",
        "calculate_factor",
    )
    assert set(after_close.edges) == {
        ("sync_stock_list", "sync_all_daily_data"),
        ("sync_stock_list", "sync_daily_basic_data"),
        ("sync_all_daily_data", "calculate_factor"),
        ("sync_daily_basic_data", "calculate_factor"),
    }
    assert [task.action for task in shipped.workflow_tasks("after_close")] == [
        "sync_stock_list",
        "sync_all_daily_data",
        "sync_daily_basic_data",
        "calculate_factor",
    ]


# zquant's STEP1..STEP10 of 编排任务-核心步骤串行执行, as our actions.
ZQUANT_EVENING_STEPS = (
    "sync_trading_calendar",
    "sync_stock_list",
    "sync_all_daily_data",
    "sync_daily_basic_data",
    "sync_factor_data",
    "sync_stkfactorpro_data",
    "sync_financial_data",
    "calculate_factor",
    "batch_stock_filter",
    "statistics_table_data",
)


def test_shipped_evening_workflow_runs_zquants_ten_steps_after_what_each_reads(shipped):
    evening = shipped.tasks["evening_workflow"]
    workflow = shipped.workflow("evening_workflow")

    assert (evening.cron_expression, evening.timezone) == ("30 18 * * 1-5", MARKET_TIMEZONE)
    assert evening.enabled is False  # as after_close: the asset schedules sync the same tables
    assert (workflow.workflow_type, workflow.on_failure) == ("parallel", "stop")
    assert [task.action for task in shipped.workflow_tasks("evening_workflow")] == list(
        ZQUANT_EVENING_STEPS
    )
    after_stock_list = ZQUANT_EVENING_STEPS[2:7]
    assert set(workflow.edges) == {
        ("sync_trading_calendar", "sync_stock_list"),
        *(("sync_stock_list", step) for step in after_stock_list),
        ("sync_all_daily_data", "calculate_factor"),
        ("sync_daily_basic_data", "calculate_factor"),
        ("calculate_factor", "batch_stock_filter"),
        ("batch_stock_filter", "statistics_table_data"),
        ("sync_factor_data", "statistics_table_data"),
        ("sync_stkfactorpro_data", "statistics_table_data"),
        ("sync_financial_data", "statistics_table_data"),
    }
    # No evening member has a trigger of its own (zquant's steps each kept theirs, so each
    # ran twice); the calendar and stock list keep their morning ones.
    triggered = {name for name in workflow.member_names if shipped.tasks[name].trigger}
    assert triggered == {"sync_trading_calendar", "sync_stock_list"}
    assert all(shipped.tasks[name].cron_expression.split()[1] == "8" for name in sorted(triggered))


def test_shipped_repair_task_names_its_stocks_as_ts_codes(shipped):
    params = shipped.tasks["repair_daily_bars"].params

    assert isinstance(params, SyncDailyDataParams)
    assert params.codelist == ["600082.SH", "000047.SZ", "300012.SZ", "688014.SH", "830270.BJ"]
    assert (params.start_date, params.end_date) == (dt.date(2024, 1, 2), dt.date(2024, 3, 29))


# --- model and defaults ------------------------------------------------------------------


def test_defaults_fill_what_a_task_leaves_out():
    catalog = parse_catalog({"tasks": [common("sync_stock_list")]})
    task = catalog.tasks["sync_stock_list"]

    assert task == TaskSpec(
        name="sync_stock_list",
        task_type="common_task",
        id=1,
        config={"task_action": "sync_stock_list"},
        action="sync_stock_list",
        params=ACTION_PARAMS["sync_stock_list"](),
    )
    assert (task.timezone, task.enabled, task.max_retries, task.retry_interval) == (
        "Asia/Shanghai",
        True,
        3,
        60,
    )
    assert (task.executor, task.retry_backoff, task.tags, task.trigger) == (
        None,  # the deployment's default (executors.py)
        "fixed",
        {},
        None,
    )


def test_every_field_is_read():
    raw = common(
        "calendar",
        "sync_trading_calendar",
        cron_expression="0 8 * * 7",
        timezone="Europe/Berlin",
        enabled=False,
        max_retries=0,
        retry_interval=2.5,
        retry_backoff="exponential",
        description="weekly",
        executor="in_process",
        tags={"team": "data"},
        config={"exchanges": ["SSE"], "start_date": 20240101},
    )

    task = parse_catalog({"tasks": [raw]}).tasks["calendar"]

    assert (task.cron_expression, task.timezone, task.enabled) == (
        "0 8 * * 7",
        "Europe/Berlin",
        False,
    )
    assert (task.max_retries, task.retry_interval, task.retry_backoff) == (0, 2.5, "exponential")
    assert (task.description, task.executor, task.tags) == (
        "weekly",
        "in_process",
        {"team": "data"},
    )
    assert task.config == {
        "task_action": "sync_trading_calendar",
        "exchanges": ["SSE"],
        "start_date": 20240101,
    }
    assert isinstance(task.params, SyncTradingCalendarParams)
    assert task.params.start_date == dt.date(2024, 1, 1)


def test_tasks_keep_file_order():
    names = ["zeta", "alpha", "mid"]

    catalog = parse_catalog({"tasks": [common(name) for name in names]})

    assert list(catalog.tasks) == names


def test_ids_written_are_kept_and_the_others_follow_the_highest_in_file_order():
    catalog = parse_catalog(
        {"tasks": [common("a"), common("b", id=7), common("c"), common("d", id=3)]}
    )

    assert {name: task.id for name, task in catalog.tasks.items()} == {
        "a": 8,
        "b": 7,
        "c": 9,
        "d": 3,
    }
    assert catalog.task_with_id(9).name == "c" and catalog.task_with_id(1) is None
    # last_id, the highest id ever given, counts too: a removed task's id is not given.
    after_last = parse_catalog({"last_id": 12, "tasks": [common("a"), common("b", id=7)]})
    assert after_last.tasks["a"].id == 13


def test_id_problems_name_the_task_and_value_among_every_other_problem():
    problems = problems_of(
        common("a", id=4),
        common("b", id=4, max_retries=-1),
        common("c", id=0),
        common("d", id="5"),
        common("e", id=True),
        last_id=-1,
    )

    assert problems == [
        "last_id -1: must be at least 1",
        "task 'b': id 4 is already used by task 'a'",
        "task 'b': max_retries -1: must be at least 0",
        "task 'c': id 0: must be at least 1",
        "task 'd': id '5': must be a whole number",
        "task 'e': id True: must be a whole number",
    ]


def test_shipped_tasks_each_have_an_id_of_their_own(shipped):
    text = (REPO_ROOT / DEFAULT_TASKS_FILE).read_text()
    ids = [task.id for task in shipped.tasks.values()]

    # Written in the file, not given at load: hand edits before a task cannot move its id.
    assert text.count("\n    id: ") == text.count("\n  - name: ") == len(ids)
    assert len(set(ids)) == len(ids)


def test_triggerless_common_task_and_workflow_are_allowed():
    catalog = parse_catalog({"tasks": [common("by_hand"), workflow("chain", [member("by_hand")])]})

    assert catalog.tasks["by_hand"].trigger is None
    assert catalog.tasks["chain"].trigger is None


def test_interval_at_the_floor_is_accepted():
    catalog = parse_catalog({"tasks": [common("tick", interval_seconds=MIN_INTERVAL_SECONDS)]})

    assert catalog.tasks["tick"].trigger == "interval"


def test_workflow_defaults():
    catalog = parse_catalog(
        {
            "tasks": [
                common("a"),
                workflow("serial_chain", [member("a")]),
                workflow("fan_out", [member("a")], workflow_type="parallel"),
            ]
        }
    )

    serial, parallel = catalog.workflow("serial_chain"), catalog.workflow("fan_out")
    assert (serial.on_failure, serial.max_parallel) == ("stop", None)
    assert (parallel.on_failure, parallel.max_parallel) == ("stop", DEFAULT_MAX_PARALLEL)


def test_members_are_in_topological_order_with_ties_in_list_order():
    tasks = [common(name) for name in "abcde"]
    listed = [member("b", "a"), member("e"), member("a"), member("d", "b", "e"), member("c")]

    catalog = parse_catalog({"tasks": [*tasks, workflow("wf", listed)]})
    wf = catalog.workflow("wf")

    # e is ready first (listed before a); b waits for a; d waits for b and e.
    assert wf.member_names == ("e", "a", "b", "d", "c")
    assert wf.edges == (("a", "b"), ("b", "d"), ("e", "d"))
    assert [task.name for task in catalog.workflow_tasks("wf")] == ["e", "a", "b", "d", "c"]


def test_workflow_of_a_non_workflow_is_a_key_error():
    catalog = parse_catalog({"tasks": [common("a")]})

    with pytest.raises(KeyError, match="task 'a' is a common_task, not a workflow"):
        catalog.workflow("a")


def test_a_manual_task_runs_an_action():
    raw = {"name": "fix", "task_type": "manual_task", "config": {"task_action": "example_task"}}

    task = parse_catalog({"tasks": [raw]}).tasks["fix"]

    assert (task.action, task.trigger) == ("example_task", None)


# --- validation rules: each with its message ---------------------------------------------


def test_the_error_lists_every_problem_one_per_line_and_nothing_half_loads():
    tasks = [
        common("good"),
        common("bad_cron", cron_expression="0 25 * * *"),
        common("bad_zone", timezone="Mars/Olympus"),
    ]

    with pytest.raises(CatalogError) as caught:
        parse_catalog({"tasks": tasks}, source="my_tasks.yaml")

    assert str(caught.value).splitlines() == [
        "my_tasks.yaml is not a valid task catalog (2 problems):",
        "task 'bad_cron': cron_expression '0 25 * * *': hour 25 is out of range 0-23",
        "task 'bad_zone': timezone 'Mars/Olympus': is not a time zone name (IANA, e.g."
        " Asia/Shanghai, Europe/Berlin, UTC)",
    ]
    assert caught.value.source == "my_tasks.yaml"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (None, "the file is empty: it must be a mapping with a 'tasks' list"),
        ([], "the top level must be a mapping with a 'tasks' list, got list"),
        ({}, "the top level has no 'tasks' list"),
        ({"tasks": {"a": 1}}, "'tasks' must be a list of tasks, got dict"),
        (
            {"tasks": [], "defaults": {}},
            "unknown top-level key 'defaults' (the file holds a 'tasks' list and optionally"
            " 'last_id')",
        ),
        ({"tasks": ["sync_stock_list"]}, "task #1: must be a mapping of fields, got str"),
    ],
)
def test_top_level_shape(data, problem):
    with pytest.raises(CatalogError) as caught:
        parse_catalog(data)

    assert caught.value.problems == [problem]


def test_an_empty_task_list_is_an_empty_catalog():
    assert parse_catalog({"tasks": []}).tasks == {}


@pytest.mark.parametrize(
    ("tasks", "problems"),
    [
        (
            [common("a", schedule="daily", retries=1)],
            [
                "task 'a': unknown fields 'schedule', 'retries' (known: name, id, task_type,"
                " cron_expression, interval_seconds, timezone, enabled, max_retries,"
                " retry_interval, retry_backoff, description, config, executor, tags)"
            ],
        ),
        (
            [{"task_type": "common_task", "config": {"task_action": "sync_stock_list"}}],
            ["task #1: name is required"],
        ),
        ([common(7)], ["task #1: name 7 must be text"]),
        (
            [common(True)],
            [
                "task #1: name True must be text (YAML reads unquoted yes/no/on/off as"
                " true/false: quote the name)"
            ],
        ),
        (
            [common("a"), common("b"), common("a")],
            ["task 'a' (#3): name 'a' is already used by task #1"],
        ),
        (
            [common("sync-daily")],
            [
                "task 'sync-daily': name 'sync-daily' is not an identifier (letters, digits and"
                " _, not starting with a digit)"
            ],
        ),
        (
            [common("1st_sync")],
            [
                "task '1st_sync': name '1st_sync' is not an identifier (letters, digits and _,"
                " not starting with a digit)"
            ],
        ),
        (
            [common("lambda")],
            [
                "task 'lambda': name 'lambda' is reserved (a Python keyword or a name Dagster"
                " refuses)"
            ],
        ),
        (
            [common("config")],
            [
                "task 'config': name 'config' is reserved (a Python keyword or a name Dagster"
                " refuses)"
            ],
        ),
        (
            [{"name": "a", "config": {"task_action": "sync_stock_list"}}],
            ["task 'a': task_type is required (one of manual_task, common_task, workflow)"],
        ),
        (
            [{**common("a"), "task_type": "cron_task"}],
            ["task 'a': task_type 'cron_task': must be one of manual_task, common_task, workflow"],
        ),
        (
            [common("a", cron_expression="0 25 * * 9")],
            [
                "task 'a': cron_expression '0 25 * * 9': hour 25 is out of range 0-23",
                "task 'a': cron_expression '0 25 * * 9': day-of-week 9 is out of range 0-7",
            ],
        ),
        (
            [common("a", cron_expression="0 18 * *")],
            [
                "task 'a': cron_expression '0 18 * *': expected 5 fields (minute hour"
                " day-of-month month day-of-week), got 4"
            ],
        ),
        (
            [common("a", cron_expression=1800)],
            ["task 'a': cron_expression 1800: must be text"],
        ),
        (
            [common("a", cron_expression="0 18 * * *", interval_seconds=300)],
            ["task 'a': cron_expression and interval_seconds are both set: a task has one trigger"],
        ),
        (
            [{**common("a", cron_expression="0 18 * * *"), "task_type": "manual_task"}],
            [
                "task 'a': cron_expression is not allowed on a manual_task (it runs only when"
                " triggered)"
            ],
        ),
        (
            [{**common("a", interval_seconds=60), "task_type": "manual_task"}],
            [
                "task 'a': interval_seconds is not allowed on a manual_task (it runs only when"
                " triggered)"
            ],
        ),
        (
            [common("a", interval_seconds=MIN_INTERVAL_SECONDS - 1)],
            [f"task 'a': interval_seconds {MIN_INTERVAL_SECONDS - 1}: must be at least 10"],
        ),
        (
            [common("a", interval_seconds=30.5)],
            ["task 'a': interval_seconds 30.5: must be a whole number"],
        ),
        (
            [common("a", timezone="Asia/Beijing")],
            [
                "task 'a': timezone 'Asia/Beijing': is not a time zone name (IANA, e.g."
                " Asia/Shanghai, Europe/Berlin, UTC)"
            ],
        ),
        (
            [common("a", timezone="localtime")],
            [
                "task 'a': timezone 'localtime': is not a time zone name (IANA, e.g."
                " Asia/Shanghai, Europe/Berlin, UTC)"
            ],
        ),
        ([common("a", max_retries=-1)], ["task 'a': max_retries -1: must be at least 0"]),
        ([common("a", max_retries=True)], ["task 'a': max_retries True: must be a whole number"]),
        ([common("a", retry_interval=-5)], ["task 'a': retry_interval -5: must be at least 0"]),
        (
            [common("a", retry_interval="60s")],
            ["task 'a': retry_interval '60s': must be a number of seconds"],
        ),
        (
            [common("a", retry_backoff="linear")],
            ["task 'a': retry_backoff 'linear': must be one of fixed, exponential"],
        ),
        ([common("a", enabled="no")], ["task 'a': enabled 'no': must be true or false"]),
        (
            [common("a", executor="dask")],
            ["task 'a': executor 'dask': must be one of in_process, multiprocess, celery"],
        ),
        (
            [
                common("a"),
                {**workflow("w", [member("a")]), "executor": "celery"},
            ],
            [
                "task 'w': executor 'celery': a serial workflow runs its members in order on one"
                " executor; use multiprocess or in_process"
            ],
        ),
        (
            [
                common("a"),
                {
                    **workflow("w", [member("a")], workflow_type="parallel", max_parallel=2),
                    "executor": "celery",
                },
            ],
            [
                "task 'w': config.max_parallel 2: not applied under executor 'celery', where the"
                " workers' slots bound how many members run at once (zquant worker"
                " --concurrency); remove it"
            ],
        ),
        (
            [common("a", tags={"zquant/task": "x"})],
            [
                "task 'a': tags {'zquant/task': 'x'}: tag 'zquant/task' uses a reserved prefix"
                " (dagster/, .dagster/, zquant/)"
            ],
        ),
        (
            [common("a", tags={"priority": 1})],
            ["task 'a': tags {'priority': 1}: tag 'priority': 1 must be text: text"],
        ),
        (
            [common("a", description=["x"])],
            ["task 'a': description ['x']: must be text"],
        ),
        (
            [{"name": "a", "task_type": "common_task"}],
            ["task 'a': config.task_action is required (the action the task runs)"],
        ),
        (
            [{"name": "a", "task_type": "common_task", "config": "sync_stock_list"}],
            ["task 'a': config must be a mapping, got str"],
        ),
        (
            [common("a", "sync_everything")],
            [
                "task 'a': config.task_action 'sync_everything' is not an action (known:"
                " sync_stock_list, sync_trading_calendar, sync_daily_data, sync_all_daily_data,"
                " sync_daily_basic_data, sync_factor_data, sync_stkfactorpro_data,"
                " calculate_factor, batch_stock_filter, statistics_table_data, sync_financial_data,"
                " run_script,"
                " example_task)"
            ],
        ),
        (
            [common("a", "sync_daily_data", config={"ts_code": "600000.SH", "days": 5})],
            [
                "task 'a': config.days: sync_daily_data has no parameter of that name (it takes:"
                " start_date, end_date, ts_code, symbol, codelist)"
            ],
        ),
        (
            [
                common(
                    "a",
                    "sync_daily_data",
                    config={"ts_code": "600000", "start_date": 20240230, "end_date": "2024-03-01"},
                )
            ],
            [
                "task 'a': config.start_date 20240230: is not a real calendar date",
                "task 'a': config.end_date '2024-03-01': must be a date written YYYYMMDD, e.g."
                " 20240102",
                "task 'a': config.ts_code '600000': must be a ts_code like 600000.SH (6 digits,"
                " '.', SH, SZ or BJ)",
            ],
        ),
        (
            [
                common(
                    "a",
                    "sync_daily_data",
                    config={"symbol": "600000", "start_date": 20240301, "end_date": 20240201},
                )
            ],
            ["task 'a': config: start_date 20240301 is after end_date 20240201"],
        ),
        (
            [common("a", "run_script", config={"script": "../../bin/rm", "args": ["-rf", 1]})],
            [
                "task 'a': config.script '../../bin/rm': must not contain '..': scripts run only"
                " from the scripts folder",
                "task 'a': config.args[1] 1: Input should be a valid string",
            ],
        ),
    ],
)
def test_task_rules(tasks, problems):
    assert problems_of(*tasks) == problems


@pytest.mark.parametrize(
    ("members", "settings", "problems"),
    [
        (
            [member("a")],
            {"workflow_type": "dag"},
            ["task 'wf': config.workflow_type 'dag': must be serial or parallel"],
        ),
        (
            [member("a")],
            {"workflow_type": None},
            ["task 'wf': config.workflow_type is required (serial or parallel)"],
        ),
        (
            [member("a")],
            {"on_failure": "retry"},
            ["task 'wf': config.on_failure 'retry': must be stop or continue"],
        ),
        (
            [member("a")],
            {"workflow_type": "parallel", "max_parallel": 0},
            ["task 'wf': config.max_parallel 0: must be at least 1"],
        ),
        (
            [member("a")],
            {"max_parallel": 2},
            ["task 'wf': config.max_parallel applies only to a parallel workflow"],
        ),
        (
            [member("a")],
            {"task_action": "sync_stock_list"},
            [
                "task 'wf': config.task_action: not a workflow setting (known: workflow_type,"
                " on_failure, max_parallel, tasks)"
            ],
        ),
        (
            [],
            {},
            ["task 'wf': config.tasks must be a non-empty list of {name, dependencies} entries"],
        ),
        (
            [member("a"), member("nowhere")],
            {},
            ["task 'wf': config.tasks[1].name 'nowhere': no task of that name in the catalog"],
        ),
        (
            [member("a"), member("off")],
            {},
            [
                "task 'wf': config.tasks[1].name 'off': is disabled (enabled: false): a workflow"
                " runs only enabled tasks"
            ],
        ),
        (
            [member("a"), member("inner")],
            {},
            [
                "task 'wf': config.tasks[1].name 'inner': is a workflow: nested workflows are"
                " not supported (list its members instead)"
            ],
        ),
        (
            [member("a"), member("wf")],
            {},
            ["task 'wf': config.tasks[1].name 'wf': a workflow cannot contain itself"],
        ),
        (
            [member("a"), {"dependencies": ["a"]}],
            {},
            ["task 'wf': config.tasks[1].name None: each member needs the name of a task"],
        ),
        (
            ["a"],
            {},
            ["task 'wf': config.tasks[0] must be a mapping {name, dependencies}, got 'a'"],
        ),
        (
            [{"name": "a", "task_id": 3}],
            {},
            [
                "task 'wf': config.tasks[0].task_id: not a member setting (known: name,"
                " dependencies)"
            ],
        ),
        (
            [member("a"), member("b", "ghost")],
            {},
            ["task 'wf': config.tasks[1].dependencies: 'ghost' is not a member of this workflow"],
        ),
        (
            [member("a"), member("b", "b")],
            {},
            ["task 'wf': config.tasks[1].dependencies: 'b' depends on itself"],
        ),
        (
            [member("a"), member("b", "a", "a")],
            {},
            ["task 'wf': config.tasks[1].dependencies: 'a' listed twice"],
        ),
        (
            [member("a"), {"name": "b", "dependencies": "a"}],
            {},
            ["task 'wf': config.tasks[1].dependencies 'a': must be a list of member names"],
        ),
        (
            [member("a"), member("b", "a"), member("a")],
            {},
            ["task 'wf': config.tasks[2].name 'a': already listed at config.tasks[0]"],
        ),
        (
            [member("a", "b"), member("b", "a")],
            {},
            ["task 'wf': config.tasks: dependency cycle a -> b -> a (a -> b: b depends on a)"],
        ),
        (
            [member("a", "c"), member("b", "a"), member("c", "b"), member("d", "c")],
            {},
            [
                "task 'wf': config.tasks: dependency cycle a -> b -> c -> a (a -> b: b depends"
                " on a)"
            ],
        ),
        (
            [member("a", "b"), member("b", "a"), member("c", "d"), member("d", "c", "a")],
            {},
            [
                "task 'wf': config.tasks: dependency cycle a -> b -> a (a -> b: b depends on a)",
                "task 'wf': config.tasks: dependency cycle c -> d -> c (a -> b: b depends on a)",
            ],
        ),
    ],
)
def test_workflow_rules(members, settings, problems):
    others = [
        common("a"),
        common("b"),
        common("c"),
        common("d"),
        common("off", enabled=False),
        workflow("inner", [member("a")]),
    ]

    assert problems_of(*others, workflow("wf", members, **settings)) == problems


def test_a_disabled_member_does_not_also_count_as_an_unknown_dependency():
    tasks = [
        common("a", enabled=False),
        common("b"),
        workflow("wf", [member("a"), member("b", "a")]),
    ]

    assert problems_of(*tasks) == [
        "task 'wf': config.tasks[0].name 'a': is disabled (enabled: false): a workflow runs only"
        " enabled tasks"
    ]


# --- loading files ----------------------------------------------------------------------


def test_load_reads_a_file(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text(
        "tasks:\n"
        "  - name: nightly\n"
        "    task_type: common_task\n"
        "    cron_expression: '30 2 * * 1-5'\n"
        "    config: {task_action: sync_daily_basic_data, start_date: 20240102}\n"
    )

    catalog = load_catalog(path)

    assert catalog.source == str(path)
    assert catalog.tasks["nightly"].params.start_date == dt.date(2024, 1, 2)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text("tasks:\n  - name: a\n    config: {task_action: x\n  - name: b\n")

    with pytest.raises(CatalogError) as caught:
        load_catalog(path)

    assert caught.value.problems == [
        "YAML syntax error at line 4, column 9: expected ',' or '}', but got ':' (while parsing"
        " a flow mapping)"
    ]
    assert str(caught.value).startswith(f"{path} is not a valid task catalog (1 problem):")


def test_an_unquoted_star_cron_gets_a_quoting_hint(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text("tasks:\n  - name: a\n    cron_expression: */5 * * * *\n")

    with pytest.raises(CatalogError) as caught:
        load_catalog(path)

    assert caught.value.problems == [
        "YAML syntax error at line 3, column 23: expected alphabetic or numeric character, but"
        " found '/' (while scanning an alias); quote values that start with '*', e.g."
        " cron_expression: '*/5 * * * *'"
    ]


def test_a_key_given_twice_is_an_error_not_a_silent_override(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text(
        "tasks:\n"
        "  - name: a\n"
        "    task_type: common_task\n"
        "    cron_expression: '0 18 * * *'\n"
        "    cron_expression: '0 6 * * *'\n"
    )

    with pytest.raises(CatalogError) as caught:
        load_catalog(path)

    assert caught.value.problems == [
        "YAML syntax error at line 5, column 5: found the key 'cron_expression' twice (while"
        " reading a mapping)"
    ]


def test_a_missing_file_is_a_catalog_error(tmp_path):
    path = tmp_path / "absent.yaml"

    with pytest.raises(CatalogError) as caught:
        load_catalog(path)

    assert caught.value.problems == [f"cannot read {path}: No such file or directory"]


# --- hostile files ----------------------------------------------------------------------

# "Billion laughs": nine levels of nine aliases, 9**9 copies of "lol" once expanded (a few
# GB as Python objects, more as the text an error would quote), from a 516-byte file.
ALIAS_BOMB = (
    'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    + "".join(
        f"{level}: &{level} [{', '.join([f'*{below}'] * 9)}]\n"
        for below, level in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "tasks:\n"
    "  - name: boom\n"
    "    task_type: manual_task\n"
    "    config: {task_action: example_task, message: *i}\n"
)
MEMORY_LIMIT_BYTES = 1024**3
# A deadline for the process, not a measure: today's code runs out of memory after ~15 s
# at 1 GiB (a minute at 2 GB); a refusal takes the time to start Python and Dagster.
PROCESS_DEADLINE_SECONDS = 240
LONG_VALUE = "x" * 100_000


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def run_limited(argv: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=PROCESS_DEADLINE_SECONDS,
        preexec_fn=limit_memory,
    )


def load_problems(path: Path) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    return caught.value.problems


def test_an_alias_bomb_is_refused_by_zquant_tasks_validate(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)

    completed = run_limited([os.path.join(VENV_BIN, "zquant"), "tasks", "validate", str(bomb)])

    assert completed.returncode == 2, completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    assert "line 2, column 8: found the alias *a: aliases are not allowed" in completed.stdout


def test_an_alias_bomb_stops_the_code_location_with_the_same_message(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    home = tmp_path / "home"
    home.mkdir()

    completed = run_limited(
        [os.path.join(VENV_BIN, "dagster"), "definitions", "validate", "-m", DEFINITIONS_MODULE],
        DAGSTER_HOME=str(home),
        ZQUANT_TASKS_FILE=str(bomb),
        ZQUANT_WAREHOUSE_URL=f"sqlite:///{tmp_path / 'warehouse.db'}",
    )

    output = completed.stdout + completed.stderr  # Dagster logs the failure to stdout
    assert completed.returncode == 1
    assert "MemoryError" not in output
    assert f"{bomb} is not a valid task catalog (1 problem)" in output
    assert "found the alias *a: aliases are not allowed in a task catalog" in output


@pytest.mark.parametrize(
    "text, problem",
    [
        (
            "tasks: &all []\nalso: *all\n",
            "YAML syntax error at line 2, column 7: found the alias *all: aliases are not"
            " allowed in a task catalog, write the value out; quote values that start with"
            " '*', e.g. cron_expression: '*/5 * * * *'",
        ),
        (
            "tasks: " + "[" * 10_000 + "]" * 10_000 + "\n",
            f"YAML syntax error at line 1, column {7 + MAX_NESTING}: nested deeper than"
            f" {MAX_NESTING} levels",
        ),
        (
            "tasks:\n  - {name: a, task_type: manual_task, config: {message: 2024-13-45}}\n",
            "YAML syntax error at line 2, column 57: cannot read '2024-13-45': month must be"
            " in 1..12",
        ),
        (
            f"tasks:\n  - {{name: a, interval_seconds: {'9' * 5000}}}\n",
            "YAML syntax error at line 2, column 33: cannot read '"
            + "9" * 79
            + "... (5,002 characters): Exceeds the limit (4300 digits) for integer string"
            " conversion: value has 5000 digits; use sys.set_int_max_str_digits()",
        ),
    ],
    ids=["alias", "nesting", "impossible-date", "huge-integer"],
)
def test_a_hostile_yaml_construct_is_one_problem_at_its_line(tmp_path, text, problem):
    path = tmp_path / "tasks.yaml"
    path.write_text(text)

    problems = load_problems(path)

    assert len(problems) == 1
    assert problems[0].startswith(problem)
    assert len(problems[0]) < 500


def test_a_file_over_the_size_limit_is_refused_naming_file_size_and_limit(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text("tasks: []\n" + "#" * MAX_CATALOG_BYTES + "\n")

    assert load_problems(path) == [
        f"{path} is {MAX_CATALOG_BYTES + 11:,} bytes, over the {MAX_CATALOG_BYTES:,}-byte"
        " limit of a task catalog"
    ]


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_bytes(b"tasks:\n  - name: caf\xe9\n")

    assert load_problems(path) == [f"{path} is not UTF-8 text: byte 0xe9 at offset 20"]


def test_every_value_an_error_quotes_is_shortened():
    long_name = "a" * 100_000
    member_name = "m" * 100_000
    tasks = [
        {"name": LONG_VALUE, "task_type": "manual_task"},
        common(long_name, tags={"dagster/" + LONG_VALUE: "x"}, **{LONG_VALUE: 1}),
        common("long_cron", cron_expression=LONG_VALUE, timezone=LONG_VALUE),
        common("long_action", action=LONG_VALUE),
        common("long_codes", action="sync_daily_data", config={"codelist": LONG_VALUE}),
        common("many_codes", action="sync_daily_data", config={"codelist": ["1"] * 10_000}),
        common("long_date", action="sync_daily_data", config={"start_date": LONG_VALUE}),
        workflow("long_members", [member(member_name, LONG_VALUE), member(member_name)]),
        {"name": "bad_type", "task_type": LONG_VALUE},
    ]

    problems = problems_of(*tasks)

    assert len(problems) == 12
    assert all(len(problem) < 1000 for problem in problems), max(map(len, problems))
    assert all("... (100,0" in problem for problem in problems if "many_codes" not in problem)
    assert any("and 9,995 more" in problem for problem in problems)


@pytest.mark.parametrize("seconds", [float("inf"), float("nan")])
def test_a_retry_interval_that_is_not_finite_is_refused(seconds):
    assert problems_of(common("a", retry_interval=seconds)) == [
        f"task 'a': retry_interval {seconds!r}: must be a finite number of seconds"
    ]


def test_a_huge_retry_interval_is_a_problem_not_a_crash():
    assert problems_of(common("a", retry_interval=10**400)) == [
        f"task 'a': retry_interval 1{'0' * 79}... (401 characters): must be at most 86400 (a day)"
    ]
