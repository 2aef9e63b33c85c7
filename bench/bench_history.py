"""Benchmark figures of task stats and history pages on SQLite and PostgreSQL run stores.

For each storage and size (10,000 and 100,000 runs; ``--size full`` adds 1,000,000) a
fresh instance is filled with N runs of zquant tasks, then each figure times ours against
a strong baseline:

- ``stats.all_tasks_vs_plain_<N>_<storage>`` / ``stats.one_task_vs_plain_<N>_<storage>``:
  ``task_stats`` of every task / one task against the plain count, a port of zquant's way
  (one SELECT of the few columns the stats need for every task run, counted in Python:
  ``support/naive_stats.plain_task_stats``); target 3x at 100,000 runs;
- ``stats.one_task_vs_dagster_filter_<N>_<storage>``: one task against Dagster's own
  filtered call, ``get_run_records(RunsFilter(tags={zquant/task: name}))`` counted in
  Python; ``stats.all_tasks_vs_dagster_<N>_<storage>`` (10,000 runs, and every size in
  full): every task against ``get_run_records()``, the naive count of issue 7;
- ``history.page_vs_dagster_filter_<N>_<storage>``: one history page (20 runs and the true
  total) against ``get_run_records(filter, limit=20)`` plus ``get_runs_count(filter)``;
- ``stats.summary_rebuild_vs_plain_100k_<storage>``: rebuilding the task run summary
  (``history.summary``) from the run store, against the plain count: what a rebuild costs;
- ``stats.growth_100k_to_1m_<storage>`` (full size): every task's stats at 1,000,000 runs
  against 10x their time at 100,000; target ratio 1 (no worse than linear).

Each figure also checks that both sides count the same (``stats_differences``).

Filling goes around the API: one bulk INSERT into Dagster's ``runs`` and ``run_tags`` tables
through the run storage's own connection (``add_run`` costs a round trip or more per run:
tens of minutes at this size). The rows hold what Dagster writes: the serialized run with
its tags, status, creation/update timestamps, start/end times, and one ``run_tags`` row per
tag. The task run summary is installed first, so its triggers keep it through the filling
as they do through Dagster's own writes. PostgreSQL gets an ANALYZE of the three tables
afterwards, as autovacuum would give tables this size; SQLite gets none, as Dagster never
runs one.

Run: ``.venv/bin/python -m bench --only history [--size quick|default|full]``; the growth
figures alone (two fills of each storage): ``--size full --figure 'stats.growth_*'``.
"""

import contextlib
import math
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa
from dagster._core.storage.runs.schema import RunsTable, RunTagsTable
from dagster._serdes import serialize_value

from bench.harness import Figure, Sample, Wanted, every_figure, select
from zquant_pipelines.constants import TAG_TASK
from zquant_pipelines.history.runs import task_history
from zquant_pipelines.history.stats import task_stats
from zquant_pipelines.history.store import sql_run_storage
from zquant_pipelines.history.summary import (
    SUMMARY_TABLE,
    ensure_task_run_summary,
    rebuild_task_run_summary,
)
from zquant_pipelines.tasks.action_params import ACTION_PARAMS
from zquant_pipelines_tests.support.naive_stats import (
    naive_task_stats,
    plain_task_stats,
    stats_differences,
)
from zquant_pipelines_tests.support.services import PG_ADMIN_URL
from zquant_pipelines_tests.support.synthetic_runs import (
    STORAGES,
    fresh_instance,
    synthetic_dagster_run,
)

SIZES = {"quick": (200,), "default": (10_000, 100_000), "full": (10_000, 100_000, 1_000_000)}
# The size the targets are held at (issue 15).
TARGET_RUNS = 100_000
TARGET = 3
GROWTH_FROM, GROWTH_TO = 100_000, 1_000_000
PAGE = 20
SEED = 20260227
# One synthetic task per action name.
TASKS = tuple(ACTION_PARAMS)
ONE_TASK = TASKS[2]
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


def label(runs: int) -> str:
    """10_000 -> 10k, 1_000_000 -> 1m: the size part of a figure id."""
    return (
        f"{runs // 1_000_000}m"
        if runs >= 1_000_000
        else f"{runs // 1000}k"
        if runs >= 1000
        else str(runs)
    )


def figures(size: str = "default", wanted: Wanted = every_figure) -> Iterator[Figure]:
    """Every storage at every size of ``size`` (see the module docstring). Each instance is
    filled only when a wanted figure needs it (the growth figure needs two)."""
    for storage in STORAGES:
        with contextlib.ExitStack() as stack:
            # Empty instances cost a second; the figures on them are declared before filling.
            instances = {
                runs: stack.enter_context(fresh_instance(storage, PG_ADMIN_URL))
                for runs in SIZES[size]
            }
            growth = select(
                [growth_figure(instances[GROWTH_FROM], instances[GROWTH_TO], storage)]
                if GROWTH_FROM in instances and GROWTH_TO in instances
                else [],
                wanted,
            )
            for runs, instance in instances.items():
                declared = select(instance_figures(instance, storage, runs, size == "full"), wanted)
                if declared or (growth and runs in (GROWTH_FROM, GROWTH_TO)):
                    started = time.perf_counter()
                    fill_run_store(instance, runs, SEED)
                    took = time.perf_counter() - started
                    print(f"history: filled {runs:,} runs on {storage} in {took:.0f} s", flush=True)
                yield from declared
            yield from growth


def growth_figure(small: dg.DagsterInstance, large: dg.DagsterInstance, storage: str) -> Figure:
    """Every task's stats at 1,000,000 runs against 10x their time at 100,000: ratio >= 1
    is growth no worse than linear."""
    factor = GROWTH_TO / GROWTH_FROM

    def scaled_small() -> Sample:
        started = time.perf_counter()
        task_stats(small)
        return Sample(factor * (time.perf_counter() - started))

    return Figure(
        id=f"stats.growth_{label(GROWTH_FROM)}_to_{label(GROWTH_TO)}_{storage}",
        title=f"task stats, every task, {storage}: {GROWTH_TO:,} runs against linear growth",
        ours=lambda: task_stats(large),
        baseline=scaled_small,
        baseline_name=f"{factor:g}x the time at {GROWTH_FROM:,} runs (linear growth)",
        target=1,
    )


def instance_figures(
    instance: dg.DagsterInstance, storage: str, runs: int, every_size: bool
) -> Iterator[Figure]:
    where = f"{label(runs)}_{storage}"
    title = f"{storage}, {runs:,} runs"
    target = TARGET if runs == TARGET_RUNS else None
    one = {"task": ONE_TASK}

    def agree(ours, theirs, **kwargs):
        return lambda: "; ".join(
            stats_differences(ours(instance, **kwargs), theirs(instance, **kwargs))
        )

    for scope, kwargs, name, runs_of in (
        ("all_tasks", {}, "every task", "every task run"),
        ("one_task", one, "one task", "the task's runs"),
    ):
        yield Figure(
            id=f"stats.{scope}_vs_plain_{where}",
            title=f"task stats, {name}, {title}",
            ours=lambda kwargs=kwargs: task_stats(instance, **kwargs),
            baseline=lambda kwargs=kwargs: plain_task_stats(instance, **kwargs),
            baseline_name=f"plain count: needed columns of {runs_of}, Python",
            target=target,
            curve=f"stats {name}, {storage}",
            x=runs,
            check=agree(task_stats, plain_task_stats, **kwargs),
        )
    if runs == TARGET_RUNS:
        yield Figure(
            id=f"stats.summary_rebuild_vs_plain_{where}",
            title=f"task run summary rebuilt from the run store, {title}",
            ours=lambda: rebuild_task_run_summary(instance),
            baseline=lambda: plain_task_stats(instance),
            baseline_name="plain count: needed columns of every task run, Python",
            check=agree(task_stats, plain_task_stats),
        )
    yield Figure(
        id=f"stats.one_task_vs_dagster_filter_{where}",
        title=f"task stats, one task, {title}",
        ours=lambda: task_stats(instance, **one),
        baseline=lambda: naive_task_stats(instance, **one),
        baseline_name="get_run_records(RunsFilter(tags=task)), Python",
        check=agree(task_stats, naive_task_stats, **one),
    )
    if every_size or runs < TARGET_RUNS:
        yield Figure(
            id=f"stats.all_tasks_vs_dagster_{where}",
            title=f"task stats, every task, {title}",
            ours=lambda: task_stats(instance),
            baseline=lambda: naive_task_stats(instance),
            baseline_name="get_run_records(), Python (issue 7's naive count)",
        )
    yield Figure(
        id=f"history.page_vs_dagster_filter_{where}",
        title=f"one history page ({PAGE} runs + total), {title}",
        ours=lambda: task_history(instance, task=ONE_TASK, limit=PAGE),
        baseline=lambda: dagster_page(instance, ONE_TASK),
        baseline_name=f"get_run_records(filter, limit={PAGE}) + get_runs_count(filter)",
    )


def dagster_page(instance: dg.DagsterInstance, task: str) -> tuple[list, int]:
    """Dagster's own calls for a page of a task's runs and their total."""
    filters = dg.RunsFilter(tags={TAG_TASK: task})
    return instance.get_run_records(filters, limit=PAGE), instance.get_runs_count(filters)


def fill_run_store(instance: dg.DagsterInstance, runs: int, seed: int) -> None:
    """Bulk-insert ``runs`` runs (see the module docstring) into the instance's run store."""
    storage = sql_run_storage(instance)
    rows = _synthetic_rows(runs, random.Random(seed))
    with storage.connect() as conn:
        ensure_task_run_summary(conn)
        for first in range(0, runs, INSERT_CHUNK):
            chunk = [next(rows) for _ in range(min(INSERT_CHUNK, runs - first))]
            conn.execute(RunsTable.insert(), [run_row for run_row, _ in chunk])
            conn.execute(RunTagsTable.insert(), [tag for _, tags in chunk for tag in tags])
        if conn.dialect.name == "postgresql":
            for table in ("runs", "run_tags", SUMMARY_TABLE):
                conn.execute(sa.text(f"ANALYZE {table}"))
    # Both sides of a figure agree on an empty store too: make sure it is filled.
    if instance.get_runs_count() != runs:
        raise RuntimeError(f"filled {runs} runs, the run store holds {instance.get_runs_count()}")


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
