"""The `zquant` console script: parsing and printing over ``zquant_pipelines.operations``.

Every command works on the instance in DAGSTER_HOME, or with ``--url http://HOST:PORT``
(or ZQUANT_DAGSTER_URL) through a running webserver's GraphQL. ``--json`` prints a JSON
document for scripts. Exit codes: 0 done, 1 the operation failed (a failed or missing run,
an unreachable server, a code location that does not load), 2 bad input.
"""

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from zquant_pipelines import demo
from zquant_pipelines.constants import MARKET_TIMEZONE
from zquant_pipelines.dates import market_today
from zquant_pipelines.executors import celery_worker_app, worker_argv
from zquant_pipelines.history.store import json_ready
from zquant_pipelines.operations import (
    ENV_DAGSTER_URL,
    OperationFailed,
    Operations,
    UsageProblem,
    dagster_home_problem,
    open_operations,
)
from zquant_pipelines.operations.base import (
    SYNC_DAILY_TASK,
    find_task,
    parse_config_json,
    sync_daily_params,
)
from zquant_pipelines.tasks.catalog import TASK_TYPES, CatalogError, load_catalog
from zquant_pipelines.tasks.control import PAUSED_SLOTS
from zquant_pipelines.tasks.definitions import tasks_file

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SORT_KEYS = ("name", "type", "next")
# The demo syncs recent days (about a year at most); older history is a backfill.
DEMO_MAX_TRADING_DAYS = 250
MARKET_ZONE = ZoneInfo(MARKET_TIMEZONE)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zquant", description=__doc__)
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
    listing.add_argument("--sort", choices=SORT_KEYS, default="name")
    show = task_commands.add_parser("show", parents=[common], help="one task in detail")
    show.add_argument("name")
    validate = task_commands.add_parser(
        "validate", parents=[common], help="check a tasks.yaml (default: ZQUANT_TASKS_FILE)"
    )
    validate.add_argument("file", nargs="?")

    trigger = commands.add_parser("trigger", parents=[common], help="queue a run of a task")
    trigger.add_argument("name")
    trigger.add_argument(
        "--config",
        help="JSON object merged into the task's params (a workflow: params per member name)",
    )
    for command, text in (
        ("enable", "start the task's schedule or sensor"),
        ("disable", "stop the task's schedule or sensor (runs by hand still start)"),
        ("pause", "hold every run of the task in the queue"),
        ("resume", "release the task's held runs"),
    ):
        commands.add_parser(command, parents=[common], help=text).add_argument("name")

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

    sync_daily = commands.add_parser(
        "sync-daily",
        parents=[common],
        help=f"sync daily bars of some stocks over a range (runs task {SYNC_DAILY_TASK})",
    )
    codes = sync_daily.add_mutually_exclusive_group(required=True)
    codes.add_argument("--codelist", help="comma-separated codes; bare codes get .SH/.SZ/.BJ")
    codes.add_argument("--ts-code", dest="ts_code")
    codes.add_argument("--symbol")
    sync_daily.add_argument("--start-date", dest="start_date", help="YYYYMMDD")
    sync_daily.add_argument("--end-date", dest="end_date", help="YYYYMMDD, not in the future")

    commands.add_parser(
        "reload", parents=[common], help="reload the code location (check it, locally)"
    )

    demo_parser = commands.add_parser(
        "demo", help="sync the most recent trading days into embedded storage (make run)"
    )
    demo_parser.add_argument(
        "--days",
        type=demo_days,
        default=demo.DEFAULT_TRADING_DAYS,
        help=f"trading days, 1 to {DEMO_MAX_TRADING_DAYS} (default {demo.DEFAULT_TRADING_DAYS})",
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


def add_common_options(parser: argparse.ArgumentParser, default_url, default_json) -> None:
    parser.add_argument(
        "--url",
        default=default_url,
        help=f"a Dagster webserver, e.g. http://127.0.0.1:3000 (default: ${ENV_DAGSTER_URL};"
        " without either, the instance in DAGSTER_HOME)",
    )
    parser.add_argument("--json", action="store_true", default=default_json, help="JSON output")


def main(argv: Sequence[str] | None = None, operations: Operations | None = None) -> int:
    """Run one command. ``operations`` replaces the back end chosen from --url and the
    environment (callers that hold one already, e.g. a loaded workspace)."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        # The demo creates a missing DAGSTER_HOME; it cannot use a file or a relative path.
        if problem := dagster_home_problem(os.environ.get("DAGSTER_HOME") or "/", False):
            print(f"zquant demo: {problem}", file=sys.stderr)
            return EXIT_USAGE
        return demo.main(args.days)
    if args.command == "worker":
        try:
            argv = worker_argv(args.name, args.concurrency, args.loglevel)
        except ValueError as error:
            print(f"zquant worker: {error}", file=sys.stderr)
            return EXIT_USAGE
        # Serves steps until stopped (SIGTERM lets the running steps finish, as Celery does).
        celery_worker_app().worker_main(argv)
        return EXIT_OK
    try:
        if args.command == "tasks" and args.tasks_command == "validate":
            return validate_catalog(args)
        if operations is not None:
            return COMMANDS[args.command](operations, args)
        with open_operations(args.url) as opened:
            return COMMANDS[args.command](opened, args)
    except CatalogError as error:
        print(error, file=sys.stderr)
        print("Fix the catalog, then check it with `zquant tasks validate`.", file=sys.stderr)
        return EXIT_USAGE
    except UsageProblem as error:
        print(f"zquant {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OperationFailed as error:
        print(f"zquant {args.command}: {error}", file=sys.stderr)
        return EXIT_FAILED


# --- commands ----------------------------------------------------------------------------


def validate_catalog(args) -> int:
    path = args.file or tasks_file()
    try:
        catalog = load_catalog(path)
    except CatalogError as error:
        if args.json:
            emit({"file": str(path), "valid": False, "problems": error.problems})
        else:
            print(error)
        return EXIT_USAGE
    if args.json:
        emit({"file": str(path), "valid": True, "tasks": len(catalog.tasks), "problems": []})
    else:
        print(f"{path}: {len(catalog.tasks)} tasks OK")
    return EXIT_OK


def tasks_command(ops: Operations, args) -> int:
    catalog = ops.catalog()
    now = dt.datetime.now(dt.UTC)
    if args.tasks_command == "show":
        detail = ops.task_detail(catalog, args.name, now)
        if args.json:
            emit(detail.to_dict())
        else:
            print_detail(detail)
        return EXIT_OK
    rows = ops.task_rows(catalog, now)
    rows = [
        row
        for row in rows
        if (args.task_type is None or row.task_type == args.task_type)
        and (args.enabled is None or row.enabled == args.enabled)
    ]
    order = {
        "name": lambda row: row.name,
        "type": lambda row: (row.task_type, row.name),
        "next": lambda row: (row.next_tick is None, row.next_tick or now, row.name),
    }
    rows.sort(key=order[args.sort])
    if args.json:
        emit([row.to_dict() for row in rows])
        return EXIT_OK
    print(
        table(
            ("NAME", "TYPE", "TRIGGER", "ENABLED", "NEXT TICK", "STATUS"),
            [
                (
                    row.name,
                    row.task_type,
                    row.trigger,
                    "yes" if row.enabled else "no",
                    when(row.next_tick, "due" if row.enabled and row.schedule else "-"),
                    row.status,
                )
                for row in rows
            ],
        )
    )
    print(f"(times in {MARKET_TIMEZONE})")
    return EXIT_OK


def trigger_command(ops: Operations, args) -> int:
    catalog = ops.catalog()
    run_id = ops.trigger(catalog, args.name, parse_config_json(args.config))
    if args.json:
        emit({"task": args.name, "run_id": run_id})
        return EXIT_OK
    print(f"Run {run_id} of task {args.name} is queued.")
    print(
        "It starts when the Dagster daemon takes it from the queue (`make dev` runs one;"
        " a paused task's runs wait for `zquant resume`)."
    )
    print(f"Follow it: zquant history --run {run_id}")
    return EXIT_OK


def trigger_state_command(ops: Operations, args) -> int:
    catalog = ops.catalog()
    state = ops.set_enabled(catalog, args.name, args.command == "enable")
    if args.json:
        emit({"task": args.name, "trigger": state.instigator_name, "running": state.running})
    else:
        word = "RUNNING" if state.running else "STOPPED"
        print(f"Task {args.name}: {state.instigator_name} is {word}.")
    wanted = args.command == "enable"
    if state.running != wanted:
        print(f"zquant {args.command}: the trigger state did not change", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def pause_command(ops: Operations, args) -> int:
    catalog = ops.catalog()
    find_task(catalog, args.name)
    if args.command == "pause":
        ops.pause(args.name)
    else:
        ops.resume(args.name)
    paused = args.name in ops.paused_tasks()
    if args.json:
        emit({"task": args.name, "paused": paused})
    elif paused:
        print(
            f"Task {args.name} is paused: its runs wait in the queue ({PAUSED_SLOTS} slots)"
            f" until `zquant resume {args.name}`."
        )
    else:
        print(f"Task {args.name} is not paused: queued runs start as the daemon takes them.")
    return EXIT_OK if paused == (args.command == "pause") else EXIT_FAILED


def history_command(ops: Operations, args) -> int:
    if args.run_id:
        detail = ops.run_detail(args.run_id)
        if args.json:
            emit(detail.to_dict())
        else:
            print_run_detail(detail)
        return EXIT_OK
    if not args.name:
        raise UsageProblem("give a task name (zquant history NAME) or --run RUN_ID")
    page = ops.history(args.name, args.statuses, args.limit, args.cursor)
    require_known_task(ops, args.name, page.total)
    if args.json:
        emit(page.to_dict())
        return EXIT_OK
    print(
        f"Task {args.name}: {page.total} runs"
        + (f" ({', '.join(page.statuses)})" if page.statuses else "")
    )
    print_runs(page.runs)
    if page.next_cursor:
        print(f"More: zquant history {args.name} --limit {args.limit} --cursor {page.next_cursor}")
    return EXIT_OK


def require_known_task(ops: Operations, name: str, runs_found: int) -> None:
    """A task that left the catalog keeps its runs; a name with neither is a mistake."""
    if not runs_found:
        find_task(ops.catalog(), name)


def stats_command(ops: Operations, args) -> int:
    since = None
    if args.since:
        try:
            day = dt.date.fromisoformat(args.since)
        except ValueError:
            raise UsageProblem(f"--since {args.since!r} is not a date YYYY-MM-DD") from None
        since = dt.datetime.combine(day, dt.time(), MARKET_ZONE)
    report = ops.stats(args.name, since)
    if args.name:
        require_known_task(ops, args.name, report.tasks[0].total_executions)
    if args.json:
        emit(report.to_dict())
        return EXIT_OK
    rows = [*report.tasks, report.overall] if args.name is None else report.tasks
    print(
        table(
            (
                "TASK",
                "TOTAL",
                "SUCCESS",
                "FAILED",
                "RUNNING",
                "CANCELED",
                "SUCCESS %",
                "AVG S",
                "P95 S",
                "LATEST",
            ),
            [
                (
                    stats.task or "(all tasks)",
                    stats.total_executions,
                    stats.success_count,
                    stats.failed_count,
                    stats.running_count,
                    stats.canceled_count,
                    "-" if stats.success_rate is None else f"{100 * stats.success_rate:.1f}",
                    seconds(stats.avg_duration_seconds),
                    seconds(stats.p95_duration_seconds),
                    when(stats.latest_execution_time),
                )
                for stats in rows
            ],
        )
    )
    print("Success % = success / finished runs; running runs are not counted in it.")
    return EXIT_OK


def sync_daily_command(ops: Operations, args) -> int:
    params = sync_daily_params(
        market_today(),
        codelist=args.codelist,
        ts_code=args.ts_code,
        symbol=args.symbol,
        start_date=args.start_date,
        end_date=args.end_date,
    )
    outcome = ops.sync_daily(ops.catalog(), params)
    if args.json:
        emit({**outcome.to_dict(), "rows_written": outcome.rows_written})
    else:
        written = ", ".join(f"{table} {rows}" for table, rows in outcome.rows_written.items())
        print(f"Run {outcome.run_id} ({SYNC_DAILY_TASK}): {outcome.status}")
        if written:
            print(f"Rows written: {written}")
        if outcome.error:
            print(f"Error: {outcome.error}")
    if outcome.status != "SUCCESS":
        print(
            f"zquant sync-daily: run {outcome.run_id} ended {outcome.status};"
            f" see `zquant history --run {outcome.run_id}`",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def reload_command(ops: Operations, args) -> int:
    message = ops.reload()
    if args.json:
        emit({"location": ops.location, "message": message})
    else:
        print(message)
    return EXIT_OK


COMMANDS = {
    "tasks": tasks_command,
    "trigger": trigger_command,
    "enable": trigger_state_command,
    "disable": trigger_state_command,
    "pause": pause_command,
    "resume": pause_command,
    "history": history_command,
    "stats": stats_command,
    "sync-daily": sync_daily_command,
    "reload": reload_command,
}


# --- printing ----------------------------------------------------------------------------


def emit(document) -> None:
    print(json.dumps(json_ready(document), indent=2, ensure_ascii=False))


def when(moment: dt.datetime | None, missing: str = "-") -> str:
    if moment is None:
        return missing
    return moment.astimezone(MARKET_ZONE).strftime("%Y-%m-%d %H:%M:%S")


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(headers: Sequence[str] | None, rows: Sequence[Sequence]) -> str:
    """Aligned columns; ``headers`` None for a two-column list of fields and values."""
    cells = ([list(map(str, headers))] if headers else []) + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def print_runs(runs) -> None:
    if not runs:
        print("(no runs)")
        return
    print(
        table(
            ("RUN ID", "STATUS", "CREATED", "START", "END", "DURATION S", "ATTEMPTS", "ERROR"),
            [
                (
                    run.run_id,
                    run.status,
                    when(run.created),
                    when(run.start),
                    when(run.end),
                    seconds(run.duration_seconds),
                    run.attempts,
                    run.error or "",
                )
                for run in runs
            ],
        )
    )


def print_detail(detail) -> None:
    row = detail.row
    lines = [
        ("task", row.name),
        ("type", row.task_type),
        ("description", row.description or "-"),
        ("job", detail.job_name),
        ("trigger", row.trigger + (f" ({row.schedule})" if row.schedule else "")),
        ("enabled", "yes" if row.enabled else "no"),
        ("next tick", when(row.next_tick)),
        ("status", row.status),
        (
            "retries",
            f"{detail.max_retries} every {detail.retry_interval} s ({detail.retry_backoff})",
        ),
        ("executor", detail.executor),
        ("tags", ", ".join(f"{k}={v}" for k, v in detail.tags.items()) or "-"),
        ("config", json.dumps(json_ready(detail.config), ensure_ascii=False)),
    ]
    if detail.member_of:
        lines.append(("member of", ", ".join(detail.member_of)))
    print(table(None, lines))
    if detail.workflow:
        workflow = detail.workflow
        print(
            f"\nWorkflow: {workflow['workflow_type']}, on_failure {workflow['on_failure']},"
            f" max_parallel {workflow['max_parallel'] or '-'}"
        )
        print(
            table(
                ("MEMBER", "DEPENDS ON"),
                [(m["name"], ", ".join(m["dependencies"]) or "-") for m in workflow["members"]],
            )
        )
    print(f"\nRecent runs ({detail.recent_runs.total} in total):")
    print_runs(detail.recent_runs.runs)


def print_run_detail(detail) -> None:
    run = detail.run
    lines = [
        ("run", run.run_id),
        ("task", run.task or "-"),
        ("job", run.job_name),
        ("status", run.status),
        ("created", when(run.created)),
        ("start", when(run.start)),
        ("end", when(run.end)),
        ("duration s", seconds(run.duration_seconds)),
        ("attempts", run.attempts),
        ("error", run.error or "-"),
        ("parent run", detail.parent_run_id or "-"),
        ("root run", detail.root_run_id or "-"),
    ]
    print(table(None, lines))
    if detail.steps:
        print()
        print(
            table(
                ("STEP", "STATUS", "START", "END", "DURATION S", "ATTEMPTS"),
                [
                    (
                        step.step_key,
                        step.status or "-",
                        when(step.start),
                        when(step.end),
                        seconds(step.duration_seconds),
                        step.attempts or "-",
                    )
                    for step in detail.steps
                ],
            )
        )


if __name__ == "__main__":
    sys.exit(main())
