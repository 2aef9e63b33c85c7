"""Benchmark: task stats and history pages at scale, on SQLite and PostgreSQL instance storage.

For each storage, a fresh instance is filled with N runs (default 100,000) of zquant tasks,
then timed (median of R repetitions): ``task_stats`` over every task, ``task_stats`` of one
task, one history page (20 runs and the true total), and the naive count that zquant did
(``get_run_records()`` loads every run, Python counts). The SQL and naive figures are also
compared, so the timing is of two computations that agree.

Filling goes around the API: one bulk INSERT into Dagster's ``runs`` and ``run_tags`` tables
through the run storage's own connection (``add_run`` costs a round trip or more per run:
tens of minutes at this size). The rows hold what Dagster writes: the serialized run with
its tags, status, creation/update timestamps, start/end times, and one ``run_tags`` row per
tag. PostgreSQL gets an ANALYZE afterwards, as autovacuum would give a table this size;
SQLite gets none, as Dagster never runs one.

Run: ``.venv/bin/python -m bench.bench_history [--runs N] [--repeats R]
[--storage sqlite postgres] [--pg-admin-url URL]``
"""

import argparse
import math
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa
from dagster._core.storage.runs.schema import RunsTable, RunTagsTable
from dagster._serdes import serialize_value

from zquant_pipelines.history.runs import task_history
from zquant_pipelines.history.stats import task_stats
from zquant_pipelines.history.store import sql_run_storage
from zquant_pipelines.tasks.action_params import ACTION_PARAMS
from zquant_pipelines_tests.support.naive_stats import naive_task_stats, stats_differences
from zquant_pipelines_tests.support.services import PG_ADMIN_URL
from zquant_pipelines_tests.support.synthetic_runs import (
    STORAGES,
    fresh_instance,
    synthetic_dagster_run,
)

DEFAULT_RUNS = 100_000
DEFAULT_REPEATS = 3
# One synthetic task per action name.
TASKS = tuple(ACTION_PARAMS)
# One run in twenty is not a task (asset materializations, ad-hoc jobs).
UNTAGGED_SHARE = 0.05
S = dg.DagsterRunStatus
STATUS_WEIGHTS = {
    S.SUCCESS: 0.85,
    S.FAILURE: 0.07,
    S.CANCELED: 0.02,
    S.CANCELING: 0.002,
    S.STARTED: 0.01,
    S.STARTING: 0.005,
    S.QUEUED: 0.04,
    S.NOT_STARTED: 0.003,
}
HISTORY_SPAN = timedelta(days=365)
INSERT_CHUNK = 5_000


def run(
    runs: int = DEFAULT_RUNS,
    repeats: int = DEFAULT_REPEATS,
    storages: tuple[str, ...] = STORAGES,
    pg_admin_url: str = PG_ADMIN_URL,
    seed: int = 20260227,
) -> dict:
    """Fill, time and compare on each storage; print a table and return the figures."""
    if runs < 1 or repeats < 1:
        raise ValueError(f"runs and repeats must be positive, got runs={runs}, repeats={repeats}")
    unknown = set(storages) - set(STORAGES)
    if unknown:
        raise ValueError(f"storages: unknown {sorted(unknown)}; expected some of {STORAGES}")
    results = {}
    for storage in storages:
        try:
            with fresh_instance(storage, pg_admin_url) as instance:
                results[storage] = _bench_instance(instance, storage, runs, repeats, seed)
        except sa.exc.OperationalError as error:
            results[storage] = {"skipped": f"{storage} unreachable: {error.orig}"}
    report = {"runs": runs, "repeats": repeats, "results": results}
    _print_table(report)
    return report


def _bench_instance(
    instance: dg.DagsterInstance, storage: str, runs: int, repeats: int, seed: int
) -> dict:
    started = time.perf_counter()
    fill_run_store(instance, runs, seed)
    fill_seconds = time.perf_counter() - started
    one_task = TASKS[2]

    differences = stats_differences(task_stats(instance), naive_task_stats(instance))
    print(f"{storage}: filled {runs} runs in {fill_seconds:.1f} s; SQL vs naive differences:")
    print("  " + ("none" if not differences else "\n  ".join(differences)))
    timings = {
        "stats_all_tasks": _median_seconds(lambda: task_stats(instance), repeats),
        "stats_one_task": _median_seconds(lambda: task_stats(instance, task=one_task), repeats),
        "history_page": _median_seconds(
            lambda: task_history(instance, task=one_task, limit=20), repeats
        ),
        "naive_count": _median_seconds(lambda: naive_task_stats(instance), repeats),
    }
    return {
        "fill_seconds": fill_seconds,
        "agree": not differences,
        "differences": differences,
        "seconds": timings,
        "speedup_all_tasks": timings["naive_count"] / timings["stats_all_tasks"],
        "speedup_one_task": timings["naive_count"] / timings["stats_one_task"],
        "speedup_history_page": timings["naive_count"] / timings["history_page"],
    }


def _median_seconds(work: Callable[[], object], repeats: int) -> float:
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        durations.append(time.perf_counter() - started)
    return statistics.median(durations)


def fill_run_store(instance: dg.DagsterInstance, runs: int, seed: int) -> None:
    """Bulk-insert ``runs`` runs (see the module docstring) into the instance's run store."""
    storage = sql_run_storage(instance)
    rows = _synthetic_rows(runs, random.Random(seed))
    with storage.connect() as conn:
        for first in range(0, runs, INSERT_CHUNK):
            chunk = [next(rows) for _ in range(min(INSERT_CHUNK, runs - first))]
            conn.execute(RunsTable.insert(), [run_row for run_row, _ in chunk])
            conn.execute(RunTagsTable.insert(), [tag for _, tags in chunk for tag in tags])
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ANALYZE runs"))
            conn.execute(sa.text("ANALYZE run_tags"))


def _synthetic_rows(runs: int, rng: random.Random) -> Iterator[tuple[dict, list[dict]]]:
    first_created = datetime.now(UTC) - HISTORY_SPAN
    spacing = HISTORY_SPAN / runs
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    for index in range(runs):
        task = None if rng.random() < UNTAGGED_SHARE else rng.choice(TASKS)
        status = rng.choices(statuses, weights)[0]
        created = first_created + index * spacing
        # A few runs end before they start: failed at launch, canceled while queued.
        launched = status not in (S.QUEUED, S.NOT_STARTED, S.STARTING) and rng.random() > 0.05
        start = created + timedelta(seconds=rng.uniform(1, 30)) if launched else None
        end = None
        if status in (S.SUCCESS, S.FAILURE, S.CANCELED):
            # Durations around a minute with a long tail, as syncs are.
            end = (
                start + timedelta(seconds=rng.lognormvariate(math.log(60), 1)) if start else created
            )
        dagster_run = synthetic_dagster_run(
            job_name=f"{task}_job" if task else "__ASSET_JOB",
            run_id=str(uuid.uuid4()),
            task=task,
            status=status,
        )
        if task:
            schedule_tags = {
                "dagster/schedule_name": f"{task}_schedule",
                "dagster/tick": str(index),
            }
            dagster_run = dagster_run.with_tags({**dagster_run.tags, **schedule_tags})
        run_row = {
            "run_id": dagster_run.run_id,
            "pipeline_name": dagster_run.job_name,
            "status": status.value,
            "run_body": serialize_value(dagster_run),
            "create_timestamp": created.replace(tzinfo=None),
            "update_timestamp": (end or start or created).replace(tzinfo=None),
            "start_time": start.timestamp() if start else None,
            "end_time": end.timestamp() if end else None,
        }
        tags = [
            {"run_id": dagster_run.run_id, "key": key, "value": value}
            for key, value in dagster_run.tags.items()
        ]
        yield run_row, tags


def _print_table(report: dict) -> None:
    print(f"\n{report['runs']} runs, median of {report['repeats']}")
    header = ("storage", "stats all", "stats one", "history page", "naive count", "x all", "x one")
    print("{:<10}{:>12}{:>12}{:>14}{:>13}{:>8}{:>8}{:>8}".format(*header, "x page"))
    for storage, result in report["results"].items():
        if "skipped" in result:
            print(f"{storage:<10}skipped: {result['skipped']}")
            continue
        seconds = result["seconds"]
        print(
            f"{storage:<10}{seconds['stats_all_tasks']:>11.3f}s{seconds['stats_one_task']:>11.3f}s"
            f"{seconds['history_page']:>13.3f}s{seconds['naive_count']:>12.2f}s"
            f"{result['speedup_all_tasks']:>7.0f}x{result['speedup_one_task']:>7.0f}x"
            f"{result['speedup_history_page']:>7.0f}x"
        )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--storage", nargs="+", choices=STORAGES, default=list(STORAGES))
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args(argv)
    return run(args.runs, args.repeats, tuple(args.storage), args.pg_admin_url)


if __name__ == "__main__":
    main()
