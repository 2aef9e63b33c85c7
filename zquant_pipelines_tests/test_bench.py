"""The benchmark harness (``python -m bench``): a quick run end to end, and its figures."""

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHES, QUICK_SIZES, Figure, parse_only

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


@pytest.mark.slow
def test_quick_run_writes_every_figure(pg_server_url, tmp_path):
    results = tmp_path / "results.json"
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results", str(results)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(results.read_text())

    assert report["errors"] == {}
    assert report["command"] == f"python -m bench --quick --results {results}"
    assert report["machine"]["cpu_count"] >= 1
    assert report["machine"]["memory_mib"] > 0
    assert report["machine"]["python"].count(".") == 2
    assert all(report["versions"][name] for name in ("dagster", "pandas", "numpy", "sqlalchemy"))
    assert report["sizes"]["sync_days"] == QUICK_SIZES.sync_days
    assert set(report["details"]) == set(BENCHES)

    figures = report["figures"]
    assert {figure["bench"] for figure in figures} == set(BENCHES)
    for figure in figures:
        assert set(figure) == FIGURE_KEYS
        assert figure["value"] is not None and figure["value"] > 0, figure
        if figure["baseline"] is not None:
            value, baseline, ratio = figure["value"], figure["baseline"], figure["ratio"]
            assert math.isclose(ratio, value / baseline) or math.isclose(ratio, baseline / value)
        assert (figure["met"] is None) == (figure["target"] is None), figure

    # The sync figures count real calls: one daily call per trading day for us, one per
    # stock for zquant's way.
    sync = report["details"]["sync"]
    calls = next(f for f in figures if f["name"].startswith("daily API calls"))
    assert calls["value"] == QUICK_SIZES.sync_days
    assert calls["baseline"] == sync["stocks"]
    assert calls["met"] is True
    assert sync["cases"]["zquant_throttled"]["refused_calls"] == 0
    assert sync["cases"]["write"]["rows"] == sync["cases"]["ours"]["steps"]["daily"]["rows"]


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
