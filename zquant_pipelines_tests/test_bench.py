"""The benchmark harness (``python -m bench``): a quick run end to end, and its figures."""

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import bench_scheduling, bench_sync
from bench.__main__ import DEFAULT_BENCHES, QUICK_SIZES, Figure, parse_only
from zquant_pipelines.constants import ENV_CELERY_BROKER
from zquant_pipelines.resources.tushare_client import TushareClient
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.sample_market import sample_market
from zquant_pipelines.sync import market as sync
from zquant_pipelines.tasks.builders import schedule_name
from zquant_pipelines.tasks.catalog import parse_catalog

REPO_ROOT = Path(__file__).resolve().parents[1]
FIGURE_KEYS = {
    "bench",
    "name",
    "value",
    "unit",
    "baseline",
    "baseline_name",
    "ratio",
    "target",
    "met",
    "note",
}


def run_bench(results: Path, *args: str) -> dict:
    """``python -m bench *args --results results`` as a user runs it; the results file."""
    finished = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--results", str(results)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(results.read_text())
    assert report["errors"] == {}
    return report


@pytest.mark.slow
def test_quick_run_writes_every_figure(pg_server_url, tmp_path):
    results = tmp_path / "results.json"
    report = run_bench(results, "--quick")

    assert report["command"] == f"python -m bench --quick --results {results}"
    assert report["machine"]["cpu_count"] >= 1
    assert report["machine"]["memory_mib"] > 0
    assert report["machine"]["python"].count(".") == 2
    assert all(report["versions"][name] for name in ("dagster", "pandas", "numpy", "sqlalchemy"))
    assert report["sizes"]["sync_days"] == QUICK_SIZES.sync_days
    assert set(report["details"]) == set(DEFAULT_BENCHES)

    figures = report["figures"]
    assert {figure["bench"] for figure in figures} == set(DEFAULT_BENCHES)
    for figure in figures:
        assert set(figure) == FIGURE_KEYS
        assert figure["value"] is not None and figure["value"] > 0, figure
        if figure["baseline"] is not None:
            value, baseline, ratio = figure["value"], figure["baseline"], figure["ratio"]
            assert math.isclose(ratio, value / baseline) or math.isclose(ratio, baseline / value)
        assert (figure["met"] is None) == (figure["target"] is None), figure

    # The sync figures count real calls: a few days of 30 stocks fit one code-list call
    # for us, one call per stock for zquant's way.
    sync = report["details"]["sync"]
    calls = next(f for f in figures if f["name"].startswith("daily API calls"))
    assert calls["value"] == 1
    assert calls["baseline"] == sync["stocks"]
    assert calls["met"] is True
    assert sync["cases"]["zquant_throttled"]["refused_calls"] == 0
    assert sync["cases"]["write"]["rows"] == sync["cases"]["ours"]["steps"]["daily"]["rows"]

    # The tick's run came from the bench task's schedule and reached its step after the tick;
    # every workflow run finished every member, and each executor either ran or says why not.
    scheduling = report["details"]["scheduling"]
    members = QUICK_SIZES.scheduling_members
    (tick,) = scheduling["tick"]["ticks"]
    assert tick["schedule"] == schedule_name(bench_scheduling.TICK_TASK)
    assert tick["succeeded_steps"] == [bench_scheduling.TICK_TASK]
    assert_milestones_in_order(tick)
    assert scheduling["tick"]["seconds"] == tick["to_first_step"]
    executors = {case.name for case in bench_scheduling.EXECUTOR_CASES}
    workflows, skipped = scheduling["workflows"], scheduling["skipped_executors"]
    assert {"in_process", "multiprocess"} <= set(workflows)
    assert set(workflows) | set(skipped) == executors and not set(workflows) & set(skipped)
    assert all(reason for reason in skipped.values())
    for case in workflows.values():
        (run,), (one,) = case["runs"], case["one_member_runs"]
        assert run["succeeded_steps"] == [bench_scheduling.noop_name(i) for i in range(members)]
        assert one["succeeded_steps"] == [bench_scheduling.noop_name(0)]
        for timed in (run, one):
            assert_milestones_in_order(timed)
        assert (case["seconds"], case["one_member_seconds"]) == (
            run["to_success"],
            one["to_success"],
        )
    scheduling_figures = [f for f in figures if f["bench"] == "scheduling"]
    assert len(scheduling_figures) == 1 + len(workflows)


def assert_milestones_in_order(run: dict) -> None:
    """Enqueued, launched, started, first step, success: each after the one before, all
    after the tick or submit they are counted from."""
    times = [run[key] for key, _ in bench_scheduling.PHASES]
    assert None not in times, run
    assert 0 < times[0] and times == sorted(times), run


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
def test_quick_scale_out_runs_the_workflow_on_one_and_two_workers(
    pg_server_url, redis_url, tmp_path
):
    report = run_bench(tmp_path / "results.json", "--only", "scale_out", "--quick")
    detail = report["details"]["scale_out"]
    assert detail["stocks"] == QUICK_SIZES.scale_out_stocks
    assert set(detail["seconds"]) == {"unthrottled", "throttled", "latency"}
    figures = report["figures"]
    assert len(figures) == 3
    for figure in figures:
        assert figure["baseline_name"] == "the same on one worker"
        assert 0 < figure["value"] and 0 < figure["baseline"]
        assert math.isclose(figure["ratio"], figure["baseline"] / figure["value"])


def test_only_rejects_an_unknown_benchmark_by_name():
    assert parse_only("history, sync") == ["history", "sync"]
    with pytest.raises(argparse.ArgumentTypeError, match="'sync,speed'"):
        parse_only("sync,speed")


def test_ratio_reads_as_times_better_and_decides_the_target():
    faster = Figure("t", "time", 2.0, "s", baseline=50.0, higher_is_better=False, target_ratio=20)
    assert (faster.ratio, faster.met) == (25.0, True)
    slower_write = Figure("t", "rows/s", 40.0, "rows/s", baseline=100.0, target_ratio=0.5)
    assert (slower_write.ratio, slower_write.met) == (0.4, False)
    memory = Figure("t", "peak", 2100.0, "MiB", target_max=2048)
    assert (memory.ratio, memory.target, memory.met) == (None, "<= 2048 MiB", False)
    disagreeing = Figure("t", "time", 1.0, "s", baseline=100.0, target_ratio=50, problem="differ")
    assert disagreeing.met is False
    assert Figure("t", "info", 1.0, "s").met is None


def test_sync_call_counter_counts_what_the_wire_server_sees(tushare_server_factory, tmp_path):
    """The call curve counts calls without HTTP: its count for a range equals the requests
    the real sync makes through the SDK to the wire server, pages included."""
    as_of = bench_sync.DEFAULT_AS_OF
    market = sample_market(as_of=as_of)
    server = tushare_server_factory(market)
    client = TushareClient(
        token=server.token,
        api_url=server.url,
        rate_limit_dir=str(tmp_path / "ratelimit"),
        calls_per_minute=100_000,
    )
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
    floor, zquant = bench_sync.call_figures(curve)
    assert floor["id"] == "sync.calls_vs_floor_250d"
    assert floor["ratio"] == curve[1]["ours"] / curve[1]["floor"] <= 1.15 and floor["met"]
    assert zquant["id"] == "sync.calls_vs_zquant_per_stock_1000d"
    assert zquant["ratio"] == curve[2]["zquant_per_stock"] / curve[2]["ours"]
