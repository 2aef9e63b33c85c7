"""``python -m bench`` end to end at the quick size, and the modules' own pieces.

The harness itself (statistics, interleaving, judging, the README table) is tested in
zquant_pipelines_tests/bench/test_harness.py without running any benchmark.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import bench_scheduling, bench_sync
from bench.__main__ import DEFAULT_MODULES, parse_only
from zquant_pipelines.constants import ENV_CELERY_BROKER, LIST_STATUSES
from zquant_pipelines.sample_market import sample_market
from zquant_pipelines.tasks.catalog import parse_catalog
from zquant_pipelines_tests.bench.test_harness import CONTRACT

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

    # The call figures count real calls: one daily call per trading day for us, one per
    # stock for zquant's per-stock mode.
    assert figures["sync.calls_vs_floor_5d"]["ours"] == 5
    per_stock = figures["sync.calls_vs_zquant_per_stock_10d"]
    market = sample_market(
        n_stocks=bench_sync.SIZES["quick"]["stocks"], as_of=bench_sync.DEFAULT_AS_OF
    )
    stocks = len(market.query("stock_basic", list_status=",".join(LIST_STATUSES)))
    assert (per_stock["ours"], per_stock["baseline"]) == (10, stocks)
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
