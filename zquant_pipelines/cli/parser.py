"""The `zquant` command line: every command, option and flag spelling, as argparse parses it.

``build_parser`` is the whole grammar; ``SYNC_DAILY_OPTIONS`` names each sync-daily param's
flag, so errors about a param can name the flag the user typed. Imports the standard library
and ``constants`` only: `zquant --help` and usage errors print without loading Dagster.
"""

import argparse
import os

from zquant_pipelines.constants import (
    DEFAULT_API_HOST,
    DEFAULT_API_PORT,
    DEMO_TRADING_DAYS,
    ENV_API_READ_TOKEN,
    ENV_API_TOKEN,
    ENV_DAGSTER_URL,
    SYNC_DAILY_TASK,
    TASK_SORT_KEYS,
    TASK_TYPES,
)

# `zquant --help`: what the console script does, its two modes and its exit codes.
DESCRIPTION = """\
The `zquant` console script: parsing and printing over ``zquant_pipelines.operations``.

Every command works on the instance in DAGSTER_HOME, or with ``--url http://HOST:PORT``
(or ZQUANT_DAGSTER_URL) through a running webserver's GraphQL. ``--json`` prints a JSON
document for scripts. Exit codes: 0 done, 1 the operation failed (a failed or missing run,
an unreachable server, a code location that does not load), 2 bad input.
"""
# zquant's paging: skip >= 0, limit 1..1000 (default 100).
MAX_PAGE_LIMIT = 1000
DEFAULT_PAGE_LIMIT = 100
# The demo syncs recent days (about a year at most); older history is a backfill.
DEMO_MAX_TRADING_DAYS = 250
# Each sync_daily_data param `zquant sync-daily` takes, and its flag.
SYNC_DAILY_OPTIONS = {
    "codelist": "--codelist",
    "ts_code": "--ts-code",
    "symbol": "--symbol",
    "start_date": "--start-date",
    "end_date": "--end-date",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zquant", description=DESCRIPTION)
    # Accepted before the command and after it: the subcommands' copies leave the value
    # alone unless given (SUPPRESS), so `zquant --json tasks list` works like
    # `zquant tasks list --json`.
    add_common_options(parser, default_url=None, default_json=False)
    common = argparse.ArgumentParser(add_help=False)
    add_common_options(common, default_url=argparse.SUPPRESS, default_json=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)

    tasks = commands.add_parser("tasks", help="the task catalog and each task's state")
    task_commands = tasks.add_subparsers(dest="tasks_command", required=True)
    listing = task_commands.add_parser("list", parents=[common], help="every task with status")
    listing.add_argument("--type", choices=TASK_TYPES, dest="task_type")
    enabled = listing.add_mutually_exclusive_group()
    enabled.add_argument("--enabled", action="store_const", const=True, dest="enabled")
    enabled.add_argument("--disabled", action="store_const", const=False, dest="enabled")
    listing.add_argument(
        "--sort", choices=TASK_SORT_KEYS, default="id", help="zquant's order_by (default id)"
    )
    listing.add_argument(
        "--order", choices=("asc", "desc"), default="desc", help="zquant's order (default desc)"
    )
    listing.add_argument("--skip", type=whole_number(0, None), default=0, help="rows skipped")
    listing.add_argument(
        "--limit",
        type=whole_number(1, MAX_PAGE_LIMIT),
        default=DEFAULT_PAGE_LIMIT,
        help=f"rows shown, 1 to {MAX_PAGE_LIMIT} (default {DEFAULT_PAGE_LIMIT})",
    )
    show = task_commands.add_parser("show", parents=[common], help="one task in detail")
    show.add_argument("name")
    validate = task_commands.add_parser(
        "validate", parents=[common], help="check a tasks.yaml (default: ZQUANT_TASKS_FILE)"
    )
    validate.add_argument("file", nargs="?")
    spec_help = "one task (or workflow) as tasks.yaml writes it, YAML or JSON; - reads stdin"
    add = task_commands.add_parser(
        "add", parents=[common], help="add a task to tasks.yaml (validated, then reloaded)"
    )
    add.add_argument("--file", required=True, dest="spec_file", help=spec_help)
    update = task_commands.add_parser(
        "update", parents=[common], help="change a task in tasks.yaml (validated, reloaded)"
    )
    update.add_argument("name")
    change = update.add_mutually_exclusive_group(required=True)
    change.add_argument(
        "--file", dest="spec_file", help=f"{spec_help}; fields left out return to defaults"
    )
    change.add_argument(
        "--set",
        action="append",
        dest="assignments",
        metavar="FIELD=VALUE",
        help="set one field (YAML value; config.KEY reaches into config; empty removes it),"
        " repeatable",
    )
    remove = task_commands.add_parser(
        "remove", parents=[common], help="remove a task from tasks.yaml (not a workflow member)"
    )
    remove.add_argument("name")
    importing = task_commands.add_parser(
        "import-zquant",
        parents=[common],
        help="add zquant's scheduled tasks (its MySQL or SQLite database) to tasks.yaml",
    )
    importing.add_argument(
        "database_url", help="SQLAlchemy URL, e.g. mysql+pymysql://user:pw@host/zquant"
    )
    importing.add_argument(
        "--dry-run", action="store_true", help="print the tasks.yaml entries, write nothing"
    )

    trigger = commands.add_parser("trigger", parents=[common], help="queue a run of a task")
    trigger.add_argument("name")
    trigger.add_argument(
        "--config",
        help="JSON object merged into the task's params (a workflow: params per member name)",
    )
    trigger.add_argument(
        "--wait",
        action="store_true",
        help="follow the run to its end with its progress (a bar on a terminal, else lines"
        " on stderr); exit 1 unless it succeeds",
    )
    for command, text in (
        ("enable", "start the task's schedule or sensor"),
        ("disable", "stop the task's schedule or sensor (runs by hand still start)"),
        ("pause", "hold every run of the task in the queue"),
        ("resume", "release the task's held runs"),
    ):
        commands.add_parser(command, parents=[common], help=text).add_argument("name")

    terminate = commands.add_parser(
        "terminate", parents=[common], help="cancel a queued run or interrupt a started one"
    )
    terminate.add_argument("run_id")
    pause_run = commands.add_parser(
        "pause-run",
        parents=[common],
        help="stop a running run after the day it is writing (it ends paused; go on with"
        " `zquant retry RUN --from-failure`)",
    )
    pause_run.add_argument("run_id")
    retry = commands.add_parser("retry", parents=[common], help="re-execute a run (queued)")
    retry.add_argument("run_id")
    retry.add_argument(
        "--from-failure",
        action="store_true",
        help="only the steps that failed or did not run (of a FAILURE or CANCELED run)",
    )

    history = commands.add_parser("history", parents=[common], help="a task's runs, newest first")
    history.add_argument("name", nargs="?")
    history.add_argument("--run", dest="run_id", help="one run in detail")
    history.add_argument(
        "--status",
        nargs="+",
        dest="statuses",
        help="success, failed, running, canceled or a" " Dagster status (QUEUED, STARTED, ...)",
    )
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--cursor", help="the next_cursor of the previous page")

    stats = commands.add_parser("stats", parents=[common], help="execution stats per task")
    stats.add_argument("name", nargs="?")
    stats.add_argument("--since", help="runs created on or after this day (YYYY-MM-DD)")
    stats.add_argument(
        "--rebuild",
        action="store_true",
        help="first rebuild the stats' summary of every run from the run store (local mode)",
    )

    sync_daily = commands.add_parser(
        "sync-daily",
        parents=[common],
        help=f"sync daily bars of some stocks over a range (runs task {SYNC_DAILY_TASK})",
    )
    codes = sync_daily.add_mutually_exclusive_group(required=True)
    codes.add_argument(
        SYNC_DAILY_OPTIONS["codelist"],
        dest="codelist",
        help="comma-separated codes; bare codes get .SH/.SZ/.BJ",
    )
    codes.add_argument(SYNC_DAILY_OPTIONS["ts_code"], dest="ts_code")
    codes.add_argument(SYNC_DAILY_OPTIONS["symbol"], dest="symbol")
    sync_daily.add_argument(SYNC_DAILY_OPTIONS["start_date"], dest="start_date", help="YYYYMMDD")
    sync_daily.add_argument(
        SYNC_DAILY_OPTIONS["end_date"], dest="end_date", help="YYYYMMDD, not in the future"
    )

    commands.add_parser(
        "reload", parents=[common], help="reload the code location (check it, locally)"
    )
    commands.add_parser(
        "status",
        parents=[common],
        help="per dataset: the latest complete trading day and whether it is on time"
        " (local mode: reads the warehouse)",
    )

    screen = commands.add_parser(
        "screen",
        help="the stocks a screen of the screens file selects on a day (from the warehouse)",
    )
    screen.add_argument("name", help="a screen's name in the screens file (ZQUANT_SCREENS_FILE)")
    screen.add_argument("--date", help="YYYY-MM-DD or YYYYMMDD (default: the latest trading day)")
    screen.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="JSON output"
    )

    api = commands.add_parser(
        "api",
        parents=[common],
        help=f"serve zquant's scheduler REST API (keys: ${ENV_API_TOKEN}, ${ENV_API_READ_TOKEN})",
    )
    api.add_argument("--host", default=DEFAULT_API_HOST, help=f"default {DEFAULT_API_HOST}")
    api.add_argument(
        "--port", type=whole_number(0, 65535), default=DEFAULT_API_PORT, help="default %(default)s"
    )
    api.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without keys (refused unless --host is a loopback address)",
    )

    demo_parser = commands.add_parser(
        "demo", help="sync the most recent trading days into embedded storage (make run)"
    )
    demo_parser.add_argument(
        "--days",
        type=demo_days,
        default=DEMO_TRADING_DAYS,
        help=f"trading days, 1 to {DEMO_MAX_TRADING_DAYS} (default {DEMO_TRADING_DAYS})",
    )

    alerts = commands.add_parser(
        "alerts", help="the notification targets of ZQUANT_ALERT_URLS (Apprise URLs)"
    )
    alert_commands = alerts.add_subparsers(dest="alerts_command", required=True)
    alert_commands.add_parser(
        "test", help="send a test notification from this machine to every target"
    )

    worker = commands.add_parser(
        "worker",
        help="serve steps of celery-executor runs (broker: $ZQUANT_CELERY_BROKER)",
    )
    worker.add_argument(
        "--name",
        default=f"zquant-{os.getpid()}",
        help="the worker's name, unique per machine (shown on each step it runs)",
    )
    worker.add_argument(
        "--concurrency", type=int, default=1, help="steps this worker runs at once (default 1)"
    )
    worker.add_argument("--loglevel", default="INFO")
    return parser


def demo_days(text: str) -> int:
    """--days as argparse checks it: a bad value is a usage error naming it (exit 2)."""
    try:
        days = int(text)
    except ValueError:
        days = 0
    if not 1 <= days <= DEMO_MAX_TRADING_DAYS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of trading days from 1 to {DEMO_MAX_TRADING_DAYS}"
        )
    return days


def whole_number(minimum: int, maximum: int | None):
    """An argparse type: a whole number in [minimum, maximum] (a usage error otherwise)."""

    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            number = None
        if number is None or number < minimum or (maximum is not None and number > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number {bound}")
        return number

    return parse


def add_common_options(parser: argparse.ArgumentParser, default_url, default_json) -> None:
    parser.add_argument(
        "--url",
        default=default_url,
        help=f"a Dagster webserver, e.g. http://127.0.0.1:3000 (default: ${ENV_DAGSTER_URL};"
        " without either, the instance in DAGSTER_HOME)",
    )
    parser.add_argument("--json", action="store_true", default=default_json, help="JSON output")
