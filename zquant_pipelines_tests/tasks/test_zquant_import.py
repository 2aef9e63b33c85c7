"""`zquant tasks import-zquant`: zquant's scheduled tasks, in a database laid out as zquant's
model lays it out (SQLite, and MariaDB on this machine), become tasks.yaml entries through
the catalog editor; what cannot map is refused with the task and the reason."""

import json
import re

import pytest
import sqlalchemy as sa
import yaml

from zquant_pipelines import cli
from zquant_pipelines.constants import ENV_TASKS_FILE, ENV_UI_URL, REPO_ROOT
from zquant_pipelines.tasks.catalog import load_catalog
from zquant_pipelines.tasks.zquant_import import ZquantImportError, map_zquant_tasks
from zquant_pipelines_tests.support.ports import unused_port
from zquant_pipelines_tests.support.services import (
    MARIADB_ADMIN_URL,
    create_mariadb_database,
    drop_mariadb_database,
    require_service,
)
from zquant_pipelines_tests.support.zquant_database import fill_zquant_database

SCRIPTS = "python zquant/scheduler/job"
# Part of zquant's default catalog (reference section 4) and tasks of each kind a user adds.
ZQUANT_TASKS = [
    {
        "name": "STEP1-同步交易日历（当日）-命令执行",
        "task_type": "common_task",
        "cron_expression": "0 18 * * *",
        "retry_interval": 300,
        "config": {"command": f"{SCRIPTS}/sync_trading_calendar.py", "timeout_seconds": 600},
    },
    {
        "name": "STEP2-同步股票列表（当日）-命令执行",
        "task_type": "common_task",
        "cron_expression": "0 18 * * *",
        "retry_interval": 300,
        "config": {"command": f"{SCRIPTS}/sync_stock_list.py", "timeout_seconds": 600},
    },
    {
        "name": "同步日线数据-手动",
        "task_type": "manual_task",
        "enabled": False,
        "retry_interval": 1800,
        "description": "手动同步日线",
        "config": {
            "command": f"{SCRIPTS}/sync_daily_data.py --start-date 20240101",
            "timeout_seconds": 36000,
        },
    },
    {
        "name": "weekday_bars",
        "task_type": "common_task",
        "cron_expression": "30 18 * * 0-4",  # APScheduler: Monday to Friday
        "config": {"task_action": "sync_all_daily_data", "codelist": "000001,600000"},
    },
    {
        "name": "weekend_demo",
        "task_type": "common_task",
        "cron_expression": "0 9 * * sat,sun",
        "paused": True,
        "max_retries": 0,
        "config": {
            "task_action": "example_task",
            "message": "hi",
            "duration_seconds": 3,
            "success_rate": 1.0,
            "steps": 5,
        },
    },
    {
        "name": "factor_calc",
        "task_type": "common_task",
        "interval_seconds": 3600,
        "config": {
            "task_action": "calculate_factor",
            "factor_id": 1,
            "codes": ["000001.SZ"],
            "start_date": "2024-01-02",
            "end_date": "2024-01-05",
        },
    },
    {
        "name": "编排任务-核心步骤串行执行",
        "task_type": "workflow",
        "cron_expression": "30 18 * * *",
        "retry_interval": 600,
        "config": {
            "workflow_type": "serial",
            "on_failure": "stop",
            "tasks": [
                {"task_id": 1, "name": "STEP1-同步交易日历（当日）-命令执行", "dependencies": []},
                {"task_id": 2, "name": "STEP2-同步股票列表（当日）-命令执行", "dependencies": [1]},
                {"task_id": 4, "name": "weekday_bars", "dependencies": [2]},
            ],
        },
    },
    {
        "name": "balance_sheets",
        "task_type": "manual_task",
        "config": {"task_action": "sync_financial_data", "statement_type": "balance"},
    },
]
IMPORTED_NAMES = [
    "zquant_1",
    "zquant_2",
    "zquant_3",
    "weekday_bars",
    "weekend_demo",
    "factor_calc",
    "zquant_7",
    "balance_sheets",
]


@pytest.fixture(scope="module", params=["sqlite", "mariadb"])
def zquant_url(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('zquant') / 'zquant.db'}"
        fill_zquant_database(url, ZQUANT_TASKS)
        yield url
        return
    try:
        url = create_mariadb_database(MARIADB_ADMIN_URL, "zquant_import")
    except sa.exc.SQLAlchemyError as error:  # not reachable: skip, or fail under CI=true
        require_service("MariaDB", error)
    try:
        fill_zquant_database(url, ZQUANT_TASKS)
        yield url
    finally:
        drop_mariadb_database(MARIADB_ADMIN_URL, url)


@pytest.fixture
def tasks_file(tmp_path, monkeypatch):
    path = tmp_path / "tasks.yaml"
    path.write_bytes((REPO_ROOT / "tasks.yaml").read_bytes())
    monkeypatch.setenv(ENV_TASKS_FILE, str(path))
    monkeypatch.setenv(ENV_UI_URL, f"http://127.0.0.1:{unused_port()}")  # no webserver there
    return path


def zquant(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_prints_the_entries_and_writes_nothing(zquant_url, tasks_file, capsys):
    before = tasks_file.read_bytes()
    code, out, err = zquant(capsys, "tasks", "import-zquant", zquant_url, "--dry-run")
    assert code == 0, err
    printed = yaml.safe_load(out)["tasks"]
    assert [task["name"] for task in printed] == IMPORTED_NAMES
    # The shipped catalog uses ids 1 to 15: the entries as they would be written.
    assert [task["id"] for task in printed] == list(range(16, 24))
    code, out, err = zquant(capsys, "tasks", "import-zquant", zquant_url, "--dry-run", "--json")
    assert code == 0, err
    assert json.loads(out)["tasks"] == printed
    assert tasks_file.read_bytes() == before


def test_import_writes_equivalent_tasks(zquant_url, tasks_file, capsys):
    # zquant's ids are kept where free: every shipped task but the one of id 3 moved away.
    tasks_file.write_text(
        re.sub(
            r"\n    id: (\d+)\n",
            lambda found: found[0] if found[1] == "3" else f"\n    id: {int(found[1]) + 100}\n",
            tasks_file.read_text(),
        )
    )
    before = tasks_file.read_text()
    code, out, err = zquant(capsys, "tasks", "import-zquant", zquant_url, "--json")
    assert code == 0, err
    assert json.loads(out)["tasks"] == IMPORTED_NAMES
    # The catalog's own tasks untouched; last_id records the highest new id.
    assert tasks_file.read_text().replace("last_id: 116", "last_id: 15").startswith(before)
    assert "paused in zquant" in err and "zquant pause weekend_demo" in err

    tasks = load_catalog(tasks_file).tasks
    step1 = tasks["zquant_1"]
    assert (step1.task_type, step1.cron_expression, step1.enabled) == (
        "common_task",
        "0 18 * * *",
        True,
    )
    assert (step1.max_retries, step1.retry_interval) == (3, 300)
    assert step1.description == "STEP1-同步交易日历（当日）-命令执行"
    assert step1.tags == {"zquant_id": "1"}
    assert step1.action == "run_script"
    assert step1.params.script == "zquant/scheduler/job/sync_trading_calendar.py"
    assert (step1.params.args, step1.params.timeout_seconds) == ([], 600)

    manual = tasks["zquant_3"]
    assert manual.task_type == "manual_task" and manual.trigger is None
    assert manual.params.args == ["--start-date", "20240101"]
    assert manual.description == "同步日线数据-手动: 手动同步日线"

    assert tasks["weekday_bars"].cron_expression == "30 18 * * 1-5"  # standard: 1-5 Mon-Fri
    assert tasks["weekday_bars"].params.codelist == ["000001.SZ", "600000.SH"]
    demo = tasks["weekend_demo"]
    assert demo.cron_expression == "0 9 * * 0,6"
    assert (demo.params.message, demo.params.sleep_seconds) == ("hi", 3)
    factor = tasks["factor_calc"]
    assert (factor.interval_seconds, factor.params.codes) == (3600, ["000001.SZ"])
    assert f"{factor.params.start_date:%Y%m%d}-{factor.params.end_date:%Y%m%d}" == (
        "20240102-20240105"
    )
    workflow = tasks["zquant_7"].workflow
    assert (workflow.workflow_type, workflow.on_failure) == ("serial", "stop")
    assert workflow.member_names == ("zquant_1", "zquant_2", "weekday_bars")
    assert workflow.edges == (("zquant_1", "zquant_2"), ("zquant_2", "weekday_bars"))
    ids = [tasks[name].id for name in IMPORTED_NAMES]
    assert ids == [1, 2, 116, 4, 5, 6, 7, 8]  # zquant_3's id 3 was taken: after the highest
    balance = tasks["balance_sheets"]
    assert (balance.action, balance.params.apis) == ("sync_financial_data", ("balancesheet",))

    # A second import finds every name taken: refused whole, nothing written.
    after_first = tasks_file.read_bytes()
    code, _, err = zquant(capsys, "tasks", "import-zquant", zquant_url)
    assert code == 2
    assert "task 'weekday_bars': already in the catalog" in err
    assert tasks_file.read_bytes() == after_first


UNMAPPABLE = [
    (
        {"task_action": "batch_stock_filter"},
        "0 18 * * *",
        "config.task_action 'batch_stock_filter': no such action here",
    ),
    ({"command": "ls -l /tmp"}, None, "runs the program 'ls'"),
    ({"command": "python /opt/zquant/job.py"}, None, "by its relative path"),
    (
        {"task_action": "example_task", "success_rate": 0.5},
        None,
        "config.success_rate 0.5: random failures are not supported",
    ),
    (
        {"task_action": "sync_stock_list"},
        "0 18 1 * mon",
        "restricts day of month and day of week",
    ),
    ({"task_action": "sync_stock_list", "exchange": "SSE"}, None, "config.exchange:"),
    (
        {"task_action": "sync_financial_data", "symbol": "000001"},
        None,
        "config.symbol: sync_financial_data takes no such parameter here",
    ),
]


def test_what_cannot_map_is_refused_with_task_and_reason(tmp_path, tasks_file, capsys):
    rows = [
        {
            "name": f"任务{number}",
            "task_type": "common_task",
            "cron_expression": cron,
            "config": config,
        }
        for number, (config, cron, _) in enumerate(UNMAPPABLE, start=1)
    ]
    url = f"sqlite:///{tmp_path / 'zquant.db'}"
    fill_zquant_database(url, rows)
    before = tasks_file.read_bytes()
    code, _, err = zquant(capsys, "tasks", "import-zquant", url)
    assert code == 2
    for number, (_, _, reason) in enumerate(UNMAPPABLE, start=1):
        line = next(line for line in err.splitlines() if f"zquant task {number} " in line)
        assert f"'任务{number}'" in line and reason in line, (reason, line)
    assert tasks_file.read_bytes() == before


def test_a_workflow_member_missing_from_the_database_is_refused():
    rows = [
        {
            "id": 5,
            "name": "flow",
            "task_type": "WORKFLOW",
            "cron_expression": None,
            "interval_seconds": None,
            "enabled": True,
            "paused": False,
            "description": None,
            "max_retries": 3,
            "retry_interval": 60,
            "config_json": json.dumps(
                {"workflow_type": "parallel", "tasks": [{"task_id": 9, "name": "gone"}]}
            ),
        }
    ]
    with pytest.raises(ZquantImportError) as refused:
        map_zquant_tasks(rows)
    assert refused.value.problems == [
        "zquant task 5 'flow': config.tasks: 9 is no task of this database"
    ]


def test_an_unreachable_database_or_missing_table_is_refused(tmp_path, tasks_file, capsys):
    code, _, err = zquant(capsys, "tasks", "import-zquant", f"sqlite:///{tmp_path / 'empty.db'}")
    assert code == 2
    assert "has no table zq_task_scheduled_tasks" in err
    code, _, err = zquant(capsys, "tasks", "import-zquant", "mysql://who:secret@127.0.0.1:1/zquant")
    assert code == 2
    assert "cannot read mysql+pymysql://who:***@127.0.0.1:1/zquant" in err
    assert "secret" not in err
