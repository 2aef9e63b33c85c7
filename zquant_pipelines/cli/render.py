"""How `zquant` lays out what it prints: JSON documents for scripts, and for people aligned
tables, field lists and each command's report, with times on the exchanges' clock.

The one-line errors on stderr stay in ``main``, beside the exit codes they go with.
"""

import datetime as dt
import json
from collections.abc import Sequence

from zquant_pipelines.constants import MARKET_TIMEZONE, PAUSED_SLOTS
from zquant_pipelines.dates import MARKET_ZONE
from zquant_pipelines.history.json_form import json_ready


def emit(document) -> None:
    print(json.dumps(json_ready(document), indent=2, ensure_ascii=False))


def when(moment: dt.datetime | None, missing: str = "-") -> str:
    """The moment on the exchanges' clock, with its UTC offset: "2026-01-05 15:30:00+08:00"."""
    if moment is None:
        return missing
    return moment.astimezone(MARKET_ZONE).isoformat(sep=" ", timespec="seconds")


def count(number: int, noun: str) -> str:
    """A number with its noun in the right number: 1 run, 2 runs."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


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


def run_status(run) -> str:
    """The run's Dagster status; a run that stopped for a pause request says so."""
    return f"{run.status} (paused)" if run.paused else run.status


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
                    run_status(run),
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
        ("id", row.id),
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
        ("status", run_status(run)),
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


# --- each command's report -----------------------------------------------------------------


def print_validation(path, task_count: int, url: str | None) -> None:
    print(f"{path}: {count(task_count, 'task')} OK")
    if url:  # validate reads no server: say so to whoever expected the server's catalog
        print(
            f"(zquant tasks validate validates the local file {path}; the server's catalog"
            f" is checked with `zquant --url {url} reload`)"
        )


def print_edit(command: str, result, reloaded: str) -> None:
    verb = {"add": "added", "update": "updated", "remove": "removed"}.get(command, "imported")
    print(f"{verb} {', '.join(result.names)} in {result.path} (the old file: {result.backup})")
    print(reloaded)


def print_task_rows(rows) -> None:
    print(
        table(
            ("ID", "NAME", "TYPE", "TRIGGER", "ENABLED", "NEXT TICK", "STATUS"),
            [
                (
                    row.id,
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


def print_queued(task: str, run_id: str) -> None:
    print(f"Run {run_id} of task {task} is queued.")
    print(
        "It starts when the Dagster daemon takes it from the queue (`make dev` runs one;"
        " a paused task's runs wait for `zquant resume`)."
    )
    print(f"Follow it: zquant history --run {run_id}")


def print_terminated(run_id: str, status: str) -> None:
    if status == "CANCELED":
        print(f"Run {run_id} is CANCELED.")
    else:
        print(f"Run {run_id} is {status}: it is being interrupted and ends CANCELED.")
    print(f"Follow it: zquant history --run {run_id}")


def print_pause_requested(run_id: str, status: str) -> None:
    print(
        f"Run {run_id} ({status}) is asked to pause: a multi-day step stops after the day it"
        " is writing and the run ends paused (a run without one runs to its end)."
    )
    print(f"Go on from there: zquant retry {run_id} --from-failure")


def print_retried(parent_run_id: str, run_id: str, from_failure: bool) -> None:
    steps = "its failed and unfinished steps" if from_failure else "all its steps"
    print(f"Run {run_id} is queued: a re-execution of run {parent_run_id} ({steps}).")
    print(f"Follow it: zquant history --run {run_id}")


def print_trigger_state(task: str, state) -> None:
    word = "RUNNING" if state.running else "STOPPED"
    print(f"Task {task}: {state.instigator_name} is {word}.")


def print_paused(task: str, paused: bool, was_paused: bool) -> None:
    if not paused and was_paused:
        print(f"Task {task} was paused: its held runs are released.")
    elif not paused:
        print(f"Task {task} was not paused: queued runs start as the daemon takes them.")
    else:
        print(
            f"Task {task} is paused: its runs wait in the queue ({PAUSED_SLOTS} slots)"
            f" until `zquant resume {task}`."
        )


def print_history_page(task: str, page, limit: int) -> None:
    print(
        f"Task {task}: {count(page.total, 'run')}"
        + (f" ({', '.join(page.statuses)})" if page.statuses else "")
    )
    print_runs(page.runs)
    if page.next_cursor:
        print(f"More: zquant history {task} --limit {limit} --cursor {page.next_cursor}")


def print_stats(report, task: str | None) -> None:
    rows = [*report.tasks, report.overall] if task is None else report.tasks
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


def print_outcome(outcome, task: str) -> None:
    written = ", ".join(f"{name} {rows}" for name, rows in outcome.rows_written.items())
    print(f"Run {outcome.run_id} ({task}): {outcome.status}")
    if written:
        print(f"Rows written: {written}")
    if outcome.error:
        print(f"Error: {outcome.error}")


def print_freshness(verdicts) -> None:
    """`zquant status`: a line per dataset, then the day expected and its deadline."""
    print(
        table(
            ("DATASET", "LATEST COMPLETE DAY", "EXPECTED DAY", "ON TIME", "MISSING OPEN DAYS"),
            [
                (
                    verdict.dataset,
                    verdict.latest_complete_day or "-",
                    verdict.expected_day,
                    "yes" if verdict.on_time else "LATE",
                    ", ".join(map(str, verdict.missing_days)) or "-",
                )
                for verdict in verdicts
            ],
        )
    )
    if verdicts:
        print(
            f"Each open day is due by {when(verdicts[0].deadline)[11:16]} {MARKET_TIMEZONE};"
            f" the day expected at {when(verdicts[0].checked_at)} is"
            f" {verdicts[0].expected_day} (due {when(verdicts[0].deadline)})."
        )


# --- a run's progress ------------------------------------------------------------------------


def progress_line(progress) -> str:
    """A run's status and progress in one line (the steps' sum, history/progress.py)."""
    line = f"Run {progress.run_id}: {progress.status}"
    if progress.total_items:
        line += (
            f", {progress.processed_items} of {count(progress.total_items, 'day')} written"
            f" ({progress.progress_percent:.1f}%), last {progress.current_item}"
        )
        if progress.estimated_end_time is not None:
            line += f", estimated end {when(progress.estimated_end_time)}"
    return line


def print_progress(progress) -> None:
    """`zquant history --run`: the run's progress and each multi-day step's."""
    print(f"\nProgress: {progress_line(progress)}")
    print(
        table(
            ("STEP", "DONE", "TOTAL", "LAST WRITTEN", "ROWS", "ELAPSED S", "ESTIMATED END"),
            [
                (
                    step.step_key,
                    step.done,
                    step.total,
                    f"{step.table} {step.day}",
                    step.rows,
                    seconds(step.elapsed_seconds),
                    when(step.estimated_end_time),
                )
                for step in progress.steps
            ],
        )
    )


class RunFollower:
    """Shows a followed run's progress on stderr as it goes (a ``ProgressListener``): a live
    bar when stderr is a terminal, else a plain line whenever the line changes. Use as a
    context manager; ``console`` replaces stderr's (a test forces a terminal)."""

    def __init__(self, console=None):
        # rich loads only for the commands that follow a run: the others start faster.
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.bar = None
        self.task_id = None
        self.last_line = None

    def __enter__(self) -> "RunFollower":
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[end]}"),
                console=self.console,
            )
            self.bar.start()
            self.task_id = self.bar.add_task("queued", total=None, end="")
        return self

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, progress) -> None:
        if self.bar is None:
            line = progress_line(progress)
            if line != self.last_line:
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)
                self.last_line = line
            return
        end = progress.estimated_end_time
        self.bar.update(
            self.task_id,
            description=f"{progress.status} {progress.current_item or ''}".rstrip(),
            total=progress.total_items,
            completed=progress.processed_items or 0,
            end=f"end {when(end)}" if end else "",
        )
        # Drawn now rather than at rich's next timed refresh: each look shows its figures.
        self.bar.refresh()


def print_screen_list(listing) -> None:
    """A screen's stocks of one day, with the values its conditions read."""
    print(
        f"{listing.screen} on {listing.trade_date:%Y-%m-%d}: {count(len(listing.stocks), 'stock')}"
    )
    if listing.stocks:
        headers = ("ts_code", "name", *listing.columns)
        print(table(headers, [[cell(stock[h]) for h in headers] for stock in listing.stocks]))


def cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)
