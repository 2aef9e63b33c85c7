"""The `zquant` console script's entry point: ``main`` parses argv, runs the command on a
back end from ``zquant_pipelines.operations`` and turns the outcome into an exit code (0 done,
1 the operation failed, 2 bad input), with a one-line error on stderr.

Loading Dagster, pandas and the back ends takes seconds, so this module, ``parser`` and
``render`` import only the standard library and light modules (``constants``, ``dates``,
``history.json_form``) at the top; ``main`` and each command import their heavy parts inside,
after argv is parsed (`zquant --help` and usage errors print without them).
test_cli_startup.py holds every command to that.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from zquant_pipelines.cli import render
from zquant_pipelines.cli.parser import build_parser
from zquant_pipelines.constants import ENV_ALERT_URLS, ENV_DAGSTER_HOME
from zquant_pipelines.dates import market_today

if TYPE_CHECKING:
    from zquant_pipelines.operations import Operations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None, operations: Operations | None = None) -> int:
    """Run one command. ``operations`` replaces the back end chosen from --url and the
    environment (callers that hold one already, e.g. a loaded workspace)."""
    args = build_parser().parse_args(argv)
    from zquant_pipelines.operations import (
        OperationFailed,
        UsageProblem,
        dagster_home_problem,
        open_operations,
    )
    from zquant_pipelines.tasks.catalog import CatalogError

    if args.command == "demo":
        # The demo creates a missing DAGSTER_HOME; it cannot use a file or a relative path.
        if problem := dagster_home_problem(os.environ.get(ENV_DAGSTER_HOME) or "/", False):
            print(f"zquant demo: {problem}", file=sys.stderr)
            return EXIT_USAGE
        from zquant_pipelines import demo

        return demo.main(args.days)
    if args.command == "alerts":
        return alerts_test_command()
    if args.command == "worker":
        from zquant_pipelines.executors import celery_worker_app, worker_argv

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
    from zquant_pipelines.tasks.catalog import CatalogError, load_catalog
    from zquant_pipelines.tasks.definitions import tasks_file

    path = args.file or tasks_file()
    try:
        catalog = load_catalog(path)
    except CatalogError as error:
        if args.json:
            render.emit({"file": str(path), "valid": False, "problems": error.problems})
        else:
            print(error)
        return EXIT_USAGE
    if args.json:
        render.emit({"file": str(path), "valid": True, "tasks": len(catalog.tasks), "problems": []})
    else:
        render.print_validation(path, len(catalog.tasks), args.url)
    return EXIT_OK


def tasks_command(ops: Operations, args) -> int:
    catalog = ops.catalog()
    now = dt.datetime.now(dt.UTC)
    if args.tasks_command == "show":
        detail = ops.task_detail(catalog, args.name, now)
        if args.json:
            render.emit(detail.to_dict())
        else:
            render.print_detail(detail)
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
        render.emit([row.to_dict() for row in rows])
    else:
        render.print_task_rows(rows)
    return EXIT_OK


def trigger_command(ops: Operations, args) -> int:
    from zquant_pipelines.cli.arguments import parse_config_json

    catalog = ops.catalog()
    run_id = ops.trigger(catalog, args.name, parse_config_json(args.config))
    if args.json:
        render.emit({"task": args.name, "run_id": run_id})
    else:
        render.print_queued(args.name, run_id)
    return EXIT_OK


def trigger_state_command(ops: Operations, args) -> int:
    catalog = ops.catalog()
    state = ops.set_enabled(catalog, args.name, args.command == "enable")
    if args.json:
        render.emit({"task": args.name, "trigger": state.instigator_name, "running": state.running})
    else:
        render.print_trigger_state(args.name, state)
    wanted = args.command == "enable"
    if state.running != wanted:
        print(f"zquant {args.command}: the trigger state did not change", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def pause_command(ops: Operations, args) -> int:
    from zquant_pipelines.operations.base import find_task

    catalog = ops.catalog()
    find_task(catalog, args.name)
    was_paused = args.name in ops.paused_tasks()
    if args.command == "pause":
        ops.pause(args.name)
    else:
        ops.resume(args.name)
    paused = args.name in ops.paused_tasks()
    if args.json:
        render.emit({"task": args.name, "paused": paused})
    else:
        render.print_paused(args.name, paused, was_paused)
    return EXIT_OK if paused == (args.command == "pause") else EXIT_FAILED


def terminate_command(ops: Operations, args) -> int:
    status = ops.terminate(args.run_id)
    if args.json:
        render.emit({"run_id": args.run_id, "status": status})
    else:
        render.print_terminated(args.run_id, status)
    return EXIT_OK


def retry_command(ops: Operations, args) -> int:
    run_id = ops.retry(args.run_id, args.from_failure)
    if args.json:
        render.emit(
            {"parent_run_id": args.run_id, "run_id": run_id, "from_failure": args.from_failure}
        )
    else:
        render.print_retried(args.run_id, run_id, args.from_failure)
    return EXIT_OK


def history_command(ops: Operations, args) -> int:
    from zquant_pipelines.operations import UsageProblem

    if args.run_id:
        detail = ops.run_detail(args.run_id)
        if args.json:
            render.emit(detail.to_dict())
        else:
            render.print_run_detail(detail)
        return EXIT_OK
    if not args.name:
        raise UsageProblem("give a task name (zquant history NAME) or --run RUN_ID")
    page = ops.history(args.name, args.statuses, args.limit, args.cursor)
    require_known_task(ops, args.name, page.total)
    if args.json:
        render.emit(page.to_dict())
    else:
        render.print_history_page(args.name, page, args.limit)
    return EXIT_OK


def require_known_task(ops: Operations, name: str, runs_found: int) -> None:
    """A task that left the catalog keeps its runs; a name with neither is a mistake."""
    from zquant_pipelines.operations.base import find_task

    if not runs_found:
        find_task(ops.catalog(), name)


def stats_command(ops: Operations, args) -> int:
    from zquant_pipelines.cli.arguments import since_day

    report = ops.stats(args.name, since_day(args.since))
    if args.name:
        require_known_task(ops, args.name, report.tasks[0].total_executions)
    if args.json:
        render.emit(report.to_dict())
    else:
        render.print_stats(report, args.name)
    return EXIT_OK


def sync_daily_command(ops: Operations, args) -> int:
    from zquant_pipelines.cli.arguments import sync_daily_params

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
        render.emit({**outcome.to_dict(), "rows_written": outcome.rows_written})
    else:
        render.print_sync_outcome(outcome)
    if outcome.status != "SUCCESS":
        print(
            f"zquant sync-daily: run {outcome.run_id} ended {outcome.status};"
            f" see `zquant history --run {outcome.run_id}`",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def alerts_test_command() -> int:
    from zquant_pipelines.alerts.messages import test_alert
    from zquant_pipelines.alerts.notify import alert_urls, send, ui_url

    urls = alert_urls()
    if not urls:
        print(f"zquant alerts test: {ENV_ALERT_URLS} names no target", file=sys.stderr)
        return EXIT_USAGE
    failed = send(test_alert(ui_url()), urls)
    print(f"test notification delivered to {len(urls) - len(failed)} of {len(urls)} targets")
    if failed:
        print(f"zquant alerts test: not delivered to: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def reload_command(ops: Operations, args) -> int:
    message = ops.reload()
    if args.json:
        render.emit({"location": ops.location, "message": message})
    else:
        print(message)
    return EXIT_OK


def status_command(ops: Operations, args) -> int:
    verdicts = ops.freshness(dt.datetime.now(dt.UTC))
    if args.json:
        render.emit([verdict.to_dict() for verdict in verdicts])
    else:
        render.print_freshness(verdicts)
    return EXIT_OK


COMMANDS = {
    "tasks": tasks_command,
    "trigger": trigger_command,
    "enable": trigger_state_command,
    "disable": trigger_state_command,
    "pause": pause_command,
    "resume": pause_command,
    "terminate": terminate_command,
    "retry": retry_command,
    "history": history_command,
    "stats": stats_command,
    "sync-daily": sync_daily_command,
    "reload": reload_command,
    "status": status_command,
}
