"""How a followed run's progress is shown: rich's live bar on a terminal (a console forced to
be one), a plain line per change otherwise, and the progress section of `history --run`;
from progress tags as the steps write them (history/progress.py)."""

import datetime as dt
import io

from rich.console import Console

from zquant_pipelines.cli import render
from zquant_pipelines.history.progress import StepProgress, progress_tag, run_progress

RUN_ID = "0f1e2d3c-aaaa-bbbb-cccc-1234567890ab"
START = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)


def tags_after(done: int, total: int = 14) -> dict[str, str]:
    """The run's tags once its one step has written ``done`` of ``total`` days."""
    record = StepProgress(
        step_key="backfill_bars",
        run_id=RUN_ID,
        table="daily",
        day=f"2024-01-{1 + done:02d}",
        done=done,
        total=total,
        rows=5000,
        elapsed_seconds=2.0 * done,
        estimated_end_time=START + dt.timedelta(seconds=2 * total),
        updated=START + dt.timedelta(seconds=2 * done),
        days="2024-01-02..2024-01-10",
        written_through={"daily": f"2024-01-{1 + done:02d}"},
    )
    return {"zquant/task": "backfill_bars", progress_tag("backfill_bars"): record.tag_value()}


def follow(console: Console, steps: list[tuple[str, int]]) -> str:
    with render.RunFollower(console) as follower:
        for status, done in steps:
            follower(run_progress(RUN_ID, status, tags_after(done) if done else {}))
    return console.file.getvalue()


def test_a_terminal_gets_a_live_bar():
    console = Console(file=io.StringIO(), force_terminal=True, width=160, color_system=None)
    shown = follow(console, [("QUEUED", 0), ("STARTED", 3), ("STARTED", 7), ("SUCCESS", 14)])
    assert "━" in shown  # rich's bar
    for figures in ("3/14", "7/14", "14/14", "100%"):
        assert figures in shown, shown
    assert "STARTED daily 2024-01-08" in shown
    assert "end 2026-01-05 18:00:28+08:00" in shown  # the steps' estimate, market clock
    assert "Run " not in shown  # no plain lines on a terminal


def test_other_output_gets_a_plain_line_per_change():
    console = Console(file=io.StringIO(), force_terminal=False, width=80)
    shown = follow(
        console, [("QUEUED", 0), ("QUEUED", 0), ("STARTED", 3), ("STARTED", 3), ("SUCCESS", 14)]
    )
    assert shown.splitlines() == [
        f"Run {RUN_ID}: QUEUED",
        f"Run {RUN_ID}: STARTED, 3 of 14 days written (21.4%), last daily 2024-01-04,"
        " estimated end 2026-01-05 18:00:28+08:00",
        f"Run {RUN_ID}: SUCCESS, 14 of 14 days written (100.0%), last daily 2024-01-15",
    ]


def test_a_run_shows_only_the_progress_its_own_steps_wrote():
    # A re-execution starts with its parent's tags: their records are not its progress.
    assert run_progress("another-run", "QUEUED", tags_after(5)).steps == []
    progress = run_progress(RUN_ID, "STARTED", {**tags_after(5), progress_tag("odd"): "by hand"})
    assert [step.step_key for step in progress.steps] == ["backfill_bars"]


def test_history_shows_each_steps_progress(capsys):
    render.print_progress(run_progress(RUN_ID, "STARTED", tags_after(5)))
    shown = capsys.readouterr().out
    assert f"Progress: Run {RUN_ID}: STARTED, 5 of 14 days written (35.7%)" in shown
    row = next(line for line in shown.splitlines() if line.startswith("backfill_bars"))
    assert row.split()[:5] == ["backfill_bars", "5", "14", "daily", "2024-01-06"]
