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
from zquant_pipelines.constants import ENV_ALERT_URLS, ENV_DAGSTER_HOME, SYNC_DAILY_TASK
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
    if args.command == "screen":
        return screen_command(args)
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
        if args.command == "api":
            return api_command(args)
        if args.command == "tasks" and args.tasks_command == "validate":
            return validate_catalog(args)
        if args.command == "tasks" and args.tasks_command in CATALOG_EDITS:
            return edit_catalog(args, operations)
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


def edit_catalog(args, operations: Operations | None) -> int:
    """`zquant tasks add/update/remove/import-zquant`: the edit of tasks.yaml, then the
    reload of the code location."""
    # ruamel.yaml and the database drivers load only for edits: the other commands start faster.
    from zquant_pipelines.tasks.definitions import tasks_file
    from zquant_pipelines.tasks.editor import CatalogEditRefused
    from zquant_pipelines.tasks.zquant_import import ZquantImportError

    try:
        result, notes = CATALOG_EDITS[args.tasks_command](tasks_file(), args)
    except (CatalogEditRefused, ZquantImportError) as error:
        if args.json:
            render.emit({"file": str(tasks_file()), "changed": False, "problems": error.problems})
        print(error, file=sys.stderr)
        return EXIT_USAGE
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if result.backup is None:  # a dry run: its command printed what it would write
        return EXIT_OK
    reloaded = reload_after_edit(args, operations)
    if args.json:
        render.emit(
            {
                "file": str(result.path),
                "changed": True,
                "tasks": list(result.names),
                "backup": str(result.backup),
                "reload": reloaded,
            }
        )
    else:
        render.print_edit(args.tasks_command, result, reloaded)
    return EXIT_OK


def reload_after_edit(args, operations: Operations | None) -> str:
    """Reload the code location where it is served: on ``operations`` (a caller's), else as
    ``reload_where_served`` finds it."""
    from zquant_pipelines.operations import reload_where_served

    if operations is not None:
        return operations.reload()
    return reload_where_served(args.url)


def tasks_command(ops: Operations, args) -> int:
    from zquant_pipelines.operations.status import sort_rows

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
    page = sort_rows(rows, args.sort, args.order)[args.skip : args.skip + args.limit]
    if args.json:
        render.emit({"tasks": [row.to_dict() for row in page], "total": len(rows)})
    else:
        render.print_task_rows(page)
        if len(page) < len(rows):
            print(f"(rows {args.skip + 1}-{args.skip + len(page)} of {len(rows)})")
    return EXIT_OK


def trigger_command(ops: Operations, args) -> int:
    from zquant_pipelines.cli.arguments import parse_config_json

    catalog = ops.catalog()
    overrides = parse_config_json(args.config)
    if args.wait:
        with render.RunFollower() as follow:
            outcome = ops.trigger_to_end(catalog, args.name, overrides, follow)
        return report_outcome(outcome, args)
    run_id = ops.trigger(catalog, args.name, overrides)
    if args.json:
        render.emit({"task": args.name, "run_id": run_id})
    else:
        render.print_queued(args.name, run_id)
    return EXIT_OK


def report_outcome(outcome, args, task: str | None = None) -> int:
    """A followed run's end: its outcome printed, exit 1 unless it succeeded."""
    task = task or args.name
    if args.json:
        render.emit({**outcome.to_dict(), "rows_written": outcome.rows_written})
    else:
        render.print_outcome(outcome, task)
    if outcome.status != "SUCCESS":
        print(
            f"zquant {args.command}: run {outcome.run_id} ended {outcome.status};"
            f" see `zquant history --run {outcome.run_id}`",
            file=sys.stderr,
        )
        return EXIT_FAILED
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


def pause_run_command(ops: Operations, args) -> int:
    status = ops.pause_run(args.run_id)
    if args.json:
        render.emit({"run_id": args.run_id, "status": status, "pause_requested": True})
    else:
        render.print_pause_requested(args.run_id, status)
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
        progress = ops.run_progress(args.run_id)
        if args.json:
            render.emit({**detail.to_dict(), "progress": progress.to_dict()})
        else:
            render.print_run_detail(detail)
            if progress.steps:
                render.print_progress(progress)
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

    since = since_day(args.since)
    if args.rebuild:
        runs = ops.rebuild_stats()
        print(f"rebuilt the task run summary from the run store: {runs} runs", file=sys.stderr)
    report = ops.stats(args.name, since)
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
    with render.RunFollower() as follow:
        outcome = ops.sync_daily(ops.catalog(), params, follow)
    return report_outcome(outcome, args, SYNC_DAILY_TASK)


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


def screen_command(args) -> int:
    """One screen's list of a day, computed from the warehouse of this machine's settings
    (ZQUANT_WAREHOUSE_URL, ZQUANT_SCREENS_FILE); no run, so no --url."""
    # pandas and SQLAlchemy load only for this command: the other commands start faster.
    from sqlalchemy.exc import SQLAlchemyError

    from zquant_pipelines.cli.arguments import screen_date
    from zquant_pipelines.operations import UsageProblem
    from zquant_pipelines.resources.warehouse import Warehouse, default_warehouse_url
    from zquant_pipelines.screening.run import NotATradingDayError, screen_list
    from zquant_pipelines.screening.screens import ScreensError, find_screen, load_screens

    try:
        day = screen_date(args.date)
        screen = find_screen(load_screens(), args.name)
    except (UsageProblem, ScreensError) as error:
        print(f"zquant screen: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyError as error:
        print(f"zquant screen: {error.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    warehouse = Warehouse(url=default_warehouse_url())
    try:
        listing = screen_list(warehouse, screen, day, market_today())
    except NotATradingDayError as error:
        print(f"zquant screen: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, SQLAlchemyError) as error:
        # Inputs missing that day, a calendar not synced, a warehouse out of reach.
        print(f"zquant screen: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        warehouse.dispose()
    if args.json:
        render.emit(listing.to_dict())
    else:
        render.print_screen_list(listing)
    return EXIT_OK


def api_command(args) -> int:
    """Serve the REST API until stopped; keys and the address checked first."""
    from zquant_pipelines.api.app import api_keys, serve, startup_problem

    if problem := startup_problem(args.host, args.no_auth, *api_keys(args.no_auth)):
        print(f"zquant api: {problem}", file=sys.stderr)
        return EXIT_USAGE
    serve(args.host, args.port, args.no_auth, args.url)
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


def add_command(path, args):
    from zquant_pipelines.cli.arguments import spec_text
    from zquant_pipelines.tasks import editor

    spec = editor.parse_spec(*spec_text(args.spec_file))
    return editor.add_task(path, spec), []


def update_command(path, args):
    from zquant_pipelines.cli.arguments import spec_text
    from zquant_pipelines.tasks import editor

    if args.spec_file is not None:
        spec = editor.parse_spec(*spec_text(args.spec_file))
        return editor.replace_task(path, args.name, spec), []
    return editor.update_task(path, args.name, editor.parse_assignments(args.assignments)), []


def remove_command(path, args):
    from zquant_pipelines.tasks import editor

    return editor.remove_task(path, args.name), []


def import_zquant_command(path, args):
    from zquant_pipelines.tasks import editor, zquant_import

    imported = zquant_import.map_zquant_tasks(zquant_import.read_zquant_tasks(args.database_url))
    if not imported.specs:
        raise zquant_import.ZquantImportError(["zquant's task table holds no task"])
    result = editor.add_tasks(path, imported.specs, dry_run=args.dry_run, renumber_taken_ids=True)
    # The entries as written: an id tasks.yaml uses already was renumbered.
    specs = [{**spec, "id": result.catalog.tasks[spec["name"]].id} for spec in imported.specs]
    if args.dry_run and args.json:
        render.emit({"tasks": specs, "notes": imported.notes})
    elif args.dry_run:
        print(editor.entries_yaml(specs), end="")
    return result, imported.notes


CATALOG_EDITS = {
    "add": add_command,
    "update": update_command,
    "remove": remove_command,
    "import-zquant": import_zquant_command,
}

COMMANDS = {
    "tasks": tasks_command,
    "trigger": trigger_command,
    "enable": trigger_state_command,
    "disable": trigger_state_command,
    "pause": pause_command,
    "resume": pause_command,
    "terminate": terminate_command,
    "pause-run": pause_run_command,
    "retry": retry_command,
    "history": history_command,
    "stats": stats_command,
    "sync-daily": sync_daily_command,
    "reload": reload_command,
    "status": status_command,
}
