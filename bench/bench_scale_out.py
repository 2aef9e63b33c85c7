"""Scale-out: the parallel sync workflow on one Celery worker vs two.

The set-up of the two-worker test (zquant_pipelines_tests/support/scale_out.py): a PostgreSQL
instance and warehouse, Redis as broker, result backend and shared tushare budget, the
tushare wire server over the sample market, and `dagster job execute` of a parallel
workflow (calendar and stock list, then bars and daily_basic of two periods as four
members) on the celery executor. Three conditions: unthrottled; 10 calls per API per second
shared by the workers (the server enforces it too); and every reply delayed 0.2 s, as a
distant tushare answers (steps then wait on the network, not the CPU). The figure is the
run's duration (run start to run end in the run store), with the warehouse emptied before
each run so every run writes the same rows. Figures ``scale_out.two_workers_vs_one_<condition>``.

Opt-in (Redis, minutes): ``.venv/bin/python -m bench --only scale_out``.
"""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from bench.harness import Figure, Sample, Wanted, every_figure
from zquant_pipelines.constants import ENV_WAREHOUSE_URL
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines_tests.support.scale_out import (
    AS_OF,
    market_source_config,
    scale_out,
    stop_workers,
)
from zquant_pipelines_tests.support.services import (
    PG_ADMIN_URL,
    REDIS_URL,
    claimed_redis_db,
    create_pg_database,
    drop_pg_database,
)
from zquant_pipelines_tests.support.tushare_wire_server import TushareWireServer

DEFAULT_STOCKS = 1000
QUICK_STOCKS = 50
UNTHROTTLED = (100_000, 1.0)
# Client budget per window and the server's (slightly shorter) window, as in the test.
THROTTLED = (10, 1.0)
SERVER_WINDOW_SECONDS = 0.9
REPLY_DELAY_SECONDS = 0.2
# More delayed replies than one run asks for; clear_faults drops what is left.
LATENCY_REPLIES = 100_000
CONDITIONS = ("unthrottled", "throttled", "latency")
TABLES = ("stock_basic", "trade_cal", "daily", "adj_factor", "daily_basic")


def empty_warehouse(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        existing = set(sa.inspect(conn).get_table_names())
        for table in TABLES:
            if table in existing:
                conn.execute(sa.text(f"TRUNCATE {table}"))
    engine.dispose()


def figure_id(condition: str) -> str:
    return f"scale_out.two_workers_vs_one_{condition}"


def figures(size: str = "default", wanted: Wanted = every_figure) -> Iterator[Figure]:
    """One figure per condition: the workflow on two workers against one.

    Each side starts its workers, runs the workflow once and stops them (workers sharing the
    broker would take each other's steps), so the rounds interleave; the workers' start is
    outside the figure, which is the run's own duration. Nothing is set up when no
    condition's figure is wanted."""
    # The quick size (a test) runs one condition: each side starts its own workers.
    conditions = [
        condition
        for condition in (CONDITIONS[:1] if size == "quick" else CONDITIONS)
        if wanted(figure_id(condition))
    ]
    if not conditions:
        return
    stocks = QUICK_STOCKS if size == "quick" else DEFAULT_STOCKS
    backing = SampleMarketSource(as_of=AS_OF, n_stocks=stocks)
    instance_url = create_pg_database(PG_ADMIN_URL, "zq_bench_instance")
    warehouse_url = create_pg_database(PG_ADMIN_URL, "zq_bench_scale_wh")
    try:
        with (
            tempfile.TemporaryDirectory() as scratch,
            TushareWireServer(backing) as server,
            # A Redis database of the benchmark's own (broker, results, budget).
            claimed_redis_db(REDIS_URL) as redis_url,
            scale_out(Path(scratch), instance_url, warehouse_url, redis_url, server) as setup,
        ):
            starts = iter(range(1_000_000))

            def on_workers(count: int, condition: str) -> Sample:
                budget = THROTTLED if condition == "throttled" else UNTHROTTLED
                start = next(starts)
                workers = setup.start_workers([f"bench{start}w{n}" for n in range(count)])
                try:
                    return Sample(timed_run(setup, server, condition, budget))
                finally:
                    stop_workers(workers)

            notes = {
                "unthrottled": "no budget",
                "throttled": f"{THROTTLED[0]} calls per API per {THROTTLED[1]:g} s, shared",
                "latency": f"every reply {REPLY_DELAY_SECONDS:g} s late",
            }
            for condition in conditions:
                yield Figure(
                    id=figure_id(condition),
                    title=f"parallel sync workflow, two Celery workers, {condition}",
                    ours=lambda condition=condition: on_workers(2, condition),
                    baseline=lambda condition=condition: on_workers(1, condition),
                    baseline_name="the same on one worker",
                    repeats=3,
                    long=True,
                    note=f"{stocks} stocks; {notes[condition]}",
                )
    finally:
        drop_pg_database(PG_ADMIN_URL, warehouse_url)
        drop_pg_database(PG_ADMIN_URL, instance_url)


def timed_run(setup, server, condition: str, budget: tuple[int, float]) -> float:
    empty_warehouse(setup.env[ENV_WAREHOUSE_URL])
    server.clear_faults()
    if condition == "throttled":
        server.limit_rate(budget[0], SERVER_WINDOW_SECONDS)
    elif condition == "latency":
        server.slow_next(LATENCY_REPLIES, REPLY_DELAY_SECONDS)
    finished, _ = setup.run_workflow(market_source_config(*budget))
    if finished.returncode != 0:
        raise RuntimeError(f"workflow run failed:\n{finished.stderr[-3000:]}")
    with setup.open_instance() as instance:
        latest = instance.get_runs(limit=1)[0]
        stats = instance.get_run_stats(latest.run_id)
    return stats.end_time - stats.start_time
