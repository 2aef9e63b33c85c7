"""Scale-out: the parallel sync workflow on one Celery worker vs two.

The set-up of the two-worker test (zquant_pipelines_tests/support/scale_out.py): a PostgreSQL
instance and warehouse, Redis as broker, result backend and shared tushare budget, the
tushare wire server over the sample market, and `dagster job execute` of a parallel
workflow (calendar and stock list, then bars and daily_basic of two periods as four
members) on the celery executor. Three conditions: unthrottled; 10 calls per API per second
shared by the workers (the server enforces it too); and every reply delayed 0.2 s, as a
distant tushare answers (steps then wait on the network, not the CPU). The figure is the
run's duration (run start to run end in the run store), median over the repeats, with the
warehouse emptied before each repeat so every run writes the same rows.

Run alone: ``.venv/bin/python -m bench.bench_scale_out [--repeats N] [--stocks N]``.
"""

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import sqlalchemy as sa

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
    create_pg_database,
    drop_pg_database,
)
from zquant_pipelines_tests.support.tushare_wire_server import TushareWireServer

DEFAULT_REPEATS = 3
DEFAULT_STOCKS = 1000
# A Redis database of the benchmark's own, flushed before and after (the test uses 14).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
UNTHROTTLED = (100_000, 1.0)
# Client budget per window and the server's (slightly shorter) window, as in the test.
THROTTLED = (10, 1.0)
SERVER_WINDOW_SECONDS = 0.9
REPLY_DELAY_SECONDS = 0.2
# More delayed replies than one run asks for; clear_faults drops what is left.
LATENCY_REPLIES = 100_000
CONDITIONS = ("unthrottled", "throttled", "latency")
WORKER_COUNTS = (1, 2)
TABLES = ("stock_basic", "trade_cal", "daily", "adj_factor", "daily_basic")


def empty_warehouse(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        existing = set(sa.inspect(conn).get_table_names())
        for table in TABLES:
            if table in existing:
                conn.execute(sa.text(f"TRUNCATE {table}"))
    engine.dispose()


def run(
    repeats: int = DEFAULT_REPEATS,
    stocks: int = DEFAULT_STOCKS,
    pg_admin_url: str = PG_ADMIN_URL,
    redis_url: str = DEFAULT_REDIS_URL,
) -> dict:
    """Seconds per run for each budget and worker count; the speed-up of two workers."""
    backing = SampleMarketSource(as_of=AS_OF, n_stocks=stocks)
    seconds: dict[str, dict[str, list[float]]] = {condition: {} for condition in CONDITIONS}
    instance_url = create_pg_database(pg_admin_url, "zq_bench_instance")
    warehouse_url = create_pg_database(pg_admin_url, "zq_bench_scale_wh")
    try:
        with (
            tempfile.TemporaryDirectory() as scratch,
            TushareWireServer(backing) as server,
            scale_out(Path(scratch), instance_url, warehouse_url, redis_url, server) as setup,
        ):
            for count in WORKER_COUNTS:
                workers = setup.start_workers([f"bench{count}w{n}" for n in range(count)])
                try:
                    for condition in CONDITIONS:
                        budget = THROTTLED if condition == "throttled" else UNTHROTTLED
                        seconds[condition][str(count)] = [
                            timed_run(setup, server, condition, budget) for _ in range(repeats)
                        ]
                finally:
                    stop_workers(workers)
    finally:
        drop_pg_database(pg_admin_url, warehouse_url)
        drop_pg_database(pg_admin_url, instance_url)
    medians = {
        condition: {count: statistics.median(values) for count, values in by_count.items()}
        for condition, by_count in seconds.items()
    }
    result = {
        "stocks": stocks,
        "repeats": repeats,
        "throttle": {"calls": THROTTLED[0], "window_seconds": THROTTLED[1]},
        "reply_delay_seconds": REPLY_DELAY_SECONDS,
        "seconds": seconds,
        "median_seconds": medians,
    }
    for condition, by_count in medians.items():
        print(
            f"{condition}: one worker {by_count['1']:.1f} s, two workers {by_count['2']:.1f} s,"
            f" {by_count['1'] / by_count['2']:.2f}x",
            flush=True,
        )
    return result


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--stocks", type=int, default=DEFAULT_STOCKS)
    args = parser.parse_args()
    print(json.dumps(run(repeats=args.repeats, stocks=args.stocks), indent=2))


if __name__ == "__main__":
    main()
