"""``python -m bench`` end to end at the quick size, and the modules' own pieces.

The harness itself (statistics, interleaving, judging, the README table) is tested in
zquant_pipelines_tests/bench/test_harness.py without running any benchmark.
"""

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import bench_factors, bench_scheduling, bench_sync, harness
from bench.__main__ import DEFAULT_MODULES, parse_only
from zquant_pipelines.constants import ENV_CELERY_BROKER, LIST_STATUSES
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.sample_market import sample_market
from zquant_pipelines.sync import market as sync
from zquant_pipelines.tasks.catalog import parse_catalog
from zquant_pipelines_tests.bench.test_harness import CONTRACT
from zquant_pipelines_tests.support.wire_clients import wire_client

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_bench(results: Path, *args: str, timeout: float = 280) -> dict:
    """``python -m bench *args --results results`` as a user runs it; the results file."""
    finished = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--results", str(results)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(results.read_text())
    assert report["errors"] == {}
    return report


@pytest.mark.slow
def test_quick_run_measures_every_module_through_the_harness(pg_server_url, tmp_path):
    results = tmp_path / "results.json"
    # Scheduling is left out: five ticks, each starting a run process, take minutes here.
    report = run_bench(results, "--size", "quick", "--only", "sync,history")

    assert (
        report["command"] == f"python -m bench --size quick --only sync,history --results {results}"
    )
    assert report["machine"]["cpu_count"] >= 1
    assert report["load"]["cpu_count"] == report["machine"]["cpu_count"]
    assert all(report["versions"][name] for name in ("dagster", "pandas", "numpy", "sqlalchemy"))
    figures = {entry["id"]: entry for entry in report["figures"]}
    for entry in figures.values():
        assert CONTRACT <= set(entry), entry
        assert entry["ours"] is not None and entry["ours"] > 0, entry
        assert entry["repeats"] == len(entry["ours_values"]) >= 1, entry
        assert (entry["met"] is None) == (entry["target"] is None), entry
        assert "agree" not in entry["note"] and "differ" not in entry["note"], entry

    # The call figures count the calls of the three bar APIs: a few days of 30 stocks fit
    # one code-list call per API for us, zquant's per-stock mode makes one per stock listed
    # in the range, per API.
    assert bench_sync.BAR_APIS == ("daily", "adj_factor", "daily_basic")
    assert figures["sync.calls_vs_floor_5d"]["ours"] == len(bench_sync.BAR_APIS)
    per_stock = figures["sync.calls_vs_zquant_per_stock_10d"]
    market = sample_market(
        n_stocks=bench_sync.SIZES["quick"]["stocks"], as_of=bench_sync.DEFAULT_AS_OF
    )
    days = bench_sync.last_open_days(market, 10)
    stocks = market.query("stock_basic", list_status=",".join(LIST_STATUSES))
    listed = stocks[
        (stocks["list_date"] <= f"{days[-1]:%Y%m%d}")
        & ~(stocks["delist_date"].fillna("99999999") < f"{days[0]:%Y%m%d}")
    ]
    assert (per_stock["ours"], per_stock["baseline"]) == (
        len(bench_sync.BAR_APIS),
        len(bench_sync.BAR_APIS) * len(listed),
    )
    for storage in ("sqlite", "postgres"):
        stats = figures[f"stats.all_tasks_vs_plain_200_{storage}"]
        assert stats["note"] == "" and stats["baseline"] > 0
    write = figures["write.vs_copy_prebuilt"]
    assert write["order"] == ["ours", "baseline", "baseline", "ours"] * 2 + ["ours", "baseline"]


def test_bench_catalog_loads_with_both_workflows_per_executor():
    catalog = parse_catalog({"tasks": bench_scheduling.bench_tasks(members=3)})

    tick = catalog.tasks[bench_scheduling.TICK_TASK]
    assert (tick.cron_expression, tick.executor) == ("* * * * *", "in_process")
    for case in bench_scheduling.EXECUTOR_CASES:
        many = catalog.tasks[bench_scheduling.workflow_name(case.name, 3)]
        one = catalog.tasks[bench_scheduling.workflow_name(case.name, 1)]
        assert many.executor == one.executor == case.name
        assert many.workflow.member_names == ("noop_0", "noop_1", "noop_2")
        assert one.workflow.member_names == ("noop_0",)
        assert many.workflow.edges == ()
        # Celery refuses max_parallel (its workers' slots bound parallelism).
        assert many.config.get("max_parallel") == (3 if case.takes_max_parallel else None)


def test_celery_case_is_skipped_with_a_reason_when_the_broker_is_unreachable(monkeypatch, tmp_path):
    # Port 1 on loopback: nothing listens there.
    monkeypatch.setenv(ENV_CELERY_BROKER, "redis://:secret@127.0.0.1:1/0")
    (celery,) = [case for case in bench_scheduling.EXECUTOR_CASES if case.name == "celery"]

    with celery.prepared(2, tmp_path) as reason:
        assert reason is not None
        assert reason.startswith(f"the broker ({ENV_CELERY_BROKER}) is unreachable")
        assert "secret" not in reason
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
# Six workflow runs, each side starting its own Celery workers (rounds interleave).
@pytest.mark.timeout(600)
def test_quick_scale_out_runs_the_workflow_on_one_and_two_workers(
    pg_server_url, redis_url, tmp_path
):
    report = run_bench(
        tmp_path / "results.json", "--only", "scale_out", "--size", "quick", timeout=560
    )
    figures = report["figures"]
    assert [entry["id"] for entry in figures] == ["scale_out.two_workers_vs_one_unthrottled"]
    for entry in figures:
        assert entry["baseline_name"] == "the same on one worker"
        assert entry["repeats"] == 3
        assert 0 < entry["ours"] and 0 < entry["baseline"]


def test_only_rejects_an_unknown_benchmark_by_name():
    assert parse_only("history, sync") == ["history", "sync"]
    assert "scale_out" not in DEFAULT_MODULES
    with pytest.raises(argparse.ArgumentTypeError, match="'sync,speed'"):
        parse_only("sync,speed")


def test_sync_call_counter_counts_what_the_wire_server_sees(tushare_server_factory, tmp_path):
    """The call curve counts calls without HTTP: its count for a range equals the requests
    the real sync makes through the SDK to the wire server, pages included."""
    as_of = bench_sync.DEFAULT_AS_OF
    market = sample_market(as_of=as_of)
    server = tushare_server_factory(market)
    client = wire_client(server, tmp_path)
    warehouse = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    days = bench_sync.last_open_days(market, 45, as_of)
    sync.sync_stock_basic(client, warehouse)
    sync.sync_trade_cal(client, warehouse, days[0], days[-1])
    server.reset_calls()

    result = sync.sync_trading_days(client, warehouse, "daily", days)
    counted = bench_sync.counted_calls(market, bench_sync.stock_spans(market), days)["daily"]

    assert counted["shape"] == sync.CODE_LISTS
    assert counted["ours"] == len(server.calls_to("daily")) >= 3  # pages of 6,000 rows
    assert counted["floor"] == math.ceil(result.rows / 6000)
    assert counted["zquant_bulk_per_day"] == len(days)
    warehouse.dispose()


def test_call_curve_stays_near_the_floor_and_projects_beyond_the_history():
    market = sample_market(n_stocks=60, as_of=bench_sync.DEFAULT_AS_OF)
    curve = bench_sync.calls_curve(market, bench_sync.DEFAULT_AS_OF, sizes=(1, 250, 1000, 5000))

    assert [point["method"] for point in curve] == ["counted"] * 3 + ["projected"]
    for point in curve:
        assert point["floor"] <= point["ours"] <= point["zquant_bulk_per_day"]
        assert point["ours_minutes"] == point["ours"] / bench_sync.CURVE_CALLS_PER_MINUTE
    assert curve[0]["ours"] == 3  # one call per API for one day


def test_call_figures_judge_the_curve_and_never_meet_a_projection():
    market = sample_market(n_stocks=60, as_of=bench_sync.DEFAULT_AS_OF)
    sizes = (250, 1000, 5000)
    curve = {
        point["days"]: point
        for point in bench_sync.calls_curve(market, bench_sync.DEFAULT_AS_OF, sizes)
    }
    declared = bench_sync.call_figures(market, sizes, curve=False)
    entries = {entry["id"]: entry for entry in harness.measure_all(declared, lambda text: None)}

    floor = entries["sync.calls_vs_floor_250d"]
    assert floor["ratio"] == curve[250]["floor"] / curve[250]["ours"] >= 1 / 1.15
    assert floor["met"] is True
    zquant = entries["sync.calls_vs_zquant_per_stock_1000d"]
    assert zquant["ratio"] == curve[1000]["zquant_per_stock"] / curve[1000]["ours"]
    projected = entries["sync.calls_vs_floor_5000d"]
    assert projected["projected"] is True and projected["met"] is False


@pytest.mark.slow
def test_factor_curves_measure_the_job_at_each_quick_size(pg_server_url):
    """The cost curves at the quick size: the job against its floor and against the pandas
    job (which checks once per market that it computes the job's factors) at 5 x 10,
    10 x 20 and 20 x 30, as points of the curves the PNG plots (matplotlib is the bench
    extra's, not make test's, so the PNG itself is drawn by make bench)."""
    wanted = harness.selection(["factors.e2e_vs_floor*", "factors.e2e_vs_pandas*"])

    entries = list(
        harness.measure_all(bench_factors.figures("quick", wanted), lambda text: None, wanted)
    )

    assert [(entry["id"], entry["curve"], entry["x"]) for entry in entries] == [
        (f"factors.e2e_vs_{side}{suffix}", curve, cells)
        for suffix, cells in (("_5x10", 50), ("_10x20", 200), ("", 600))
        for side, curve in (
            ("floor", bench_factors.CURVE_FLOOR),
            ("pandas", bench_factors.CURVE_PANDAS),
        )
    ]
    for entry in entries:
        assert entry["ours"] > 0 and entry["baseline"] > 0 and entry["note"] == "", entry
