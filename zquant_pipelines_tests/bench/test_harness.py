"""The benchmark harness: statistics, interleaving, judging, load flags, the README table."""

import json
import statistics

import pytest

from bench import harness
from bench.__main__ import (
    README_PATH,
    RESULTS_PATH,
    readme_with_table,
    table,
    table_in_readme,
)

# The keys issue 15 requires of every results.json entry.
CONTRACT = {
    "id",
    "ours",
    "baseline",
    "ratio",
    "target",
    "met",
    "repeats",
    "iqr",
    "peak_rss_mib",
    "projected",
}


def test_summary_gives_min_median_and_the_inclusive_iqr():
    result = harness.summary([5.0, 1.0, 3.0, 9.0, 7.0])

    assert result["min"] == 1.0
    assert result["median"] == 5.0
    # Inclusive quartiles of 1 3 5 7 9: 3 and 7.
    assert result["iqr"] == 4.0
    assert result["values"] == [5.0, 1.0, 3.0, 9.0, 7.0]


def test_summary_of_one_value_has_no_spread():
    assert harness.summary([2.5])["iqr"] == 0


def test_sides_interleave_abba_so_each_side_runs_first_half_the_time():
    order = harness.interleaved_order(5, with_baseline=True)

    assert order == ["ours", "baseline", "baseline", "ours"] * 2 + ["ours", "baseline"]
    assert harness.interleaved_order(3, with_baseline=False) == ["ours"] * 3


def test_measure_runs_the_sides_in_the_interleaved_order_and_reports_each():
    calls = []
    ours_values = iter([1.0, 2.0, 3.0, 4.0, 100.0])

    def ours():
        calls.append("ours")
        return harness.Sample(next(ours_values))

    def baseline():
        calls.append("baseline")
        return harness.Sample(20.0, peak_rss_mib=123.0)

    entry = harness.measure(harness.Figure(id="t.x", title="x", ours=ours, baseline=baseline))

    assert calls == harness.interleaved_order(5, with_baseline=True)
    assert entry["order"] == calls
    assert entry["ours"] == 3.0
    assert entry["min"] == 1.0
    assert entry["iqr"] == 2.0
    assert entry["baseline"] == 20.0
    # Lower is better: baseline / ours.
    assert entry["ratio"] == pytest.approx(20.0 / 3.0)
    assert entry["peak_rss_mib"]["baseline"] == 123.0
    assert entry["peak_rss_mib"]["ours"] > 10
    assert entry["met"] is None


def test_an_unsampled_side_is_timed():
    entry = harness.measure(harness.Figure(id="t.timed", title="t", ours=lambda: "a result"))

    assert 0 <= entry["ours"] < 1
    assert entry["repeats"] == len(entry["ours_values"]) == 5


def test_higher_is_better_divides_the_other_way():
    assert harness.ratio_of(50.0, 100.0, higher_is_better=True) == 0.5
    assert harness.ratio_of(50.0, 100.0, higher_is_better=False) == 2.0


def test_a_projection_never_meets_its_target():
    assert harness.met_of(10.0, 3.0, projected=False, problem="") is True
    assert harness.met_of(10.0, 3.0, projected=True, problem="") is False
    # Without a target too: a projection's entry never reads as met-or-no-goal (None).
    assert harness.met_of(10.0, None, projected=True, problem="") is False
    assert harness.met_of(10.0, None, projected=False, problem="") is None
    entry = projected_entry()
    assert entry["ratio"] == 9.0
    assert entry["projected"] is True
    assert entry["met"] is False


def projected_entry() -> dict:
    """A projection 9x better than its baseline against a target of 3x."""
    return harness.measure(
        harness.Figure(
            id="t.projected",
            title="a projection",
            ours=lambda: harness.Sample(1.0),
            baseline=lambda: harness.Sample(9.0),
            target=3,
            projected=True,
        )
    )


def test_a_problem_or_a_short_ratio_is_not_met():
    assert harness.met_of(10.0, 3.0, projected=False, problem="sides differ") is False
    assert harness.met_of(2.9, 3.0, projected=False, problem="") is False
    assert harness.met_of(None, 3.0, projected=False, problem="") is False


def test_too_few_repeats_are_refused():
    with pytest.raises(ValueError, match="t.few: repeats 4 is below the minimum 5"):
        harness.Figure(id="t.few", title="f", ours=lambda: None, repeats=4)
    harness.Figure(id="t.long", title="l", ours=lambda: None, repeats=3, long=True)
    with pytest.raises(ValueError, match="minimum 3"):
        harness.Figure(id="t.long2", title="l", ours=lambda: None, repeats=2, long=True)


def test_load_above_the_core_count_is_flagged(monkeypatch):
    assert harness.overloaded([1.0, 2.0], cpu_count=2) is False
    assert harness.overloaded([1.0, 2.5], cpu_count=2) is True
    loads = iter([3.5, 0.5])
    monkeypatch.setattr(harness, "load_average", lambda: next(loads))
    monkeypatch.setattr(harness.os, "cpu_count", lambda: 2)

    entry = harness.measure(
        harness.Figure(id="t.load", title="l", ours=lambda: None, repeats=1, deterministic=True)
    )

    assert entry["load"] == {"before": 3.5, "after": 0.5, "overloaded": True}


def test_a_missing_required_figure_is_reported_and_never_met():
    entry = harness.missing_entry("factors.e2e_vs_zquant", "bench.bench_factors not written")

    assert entry["met"] is False
    assert entry["ours"] is None
    assert "not measured" in entry["note"]


def test_every_results_entry_keeps_the_contract():
    report = json.loads(RESULTS_PATH.read_text())
    assert {"date", "machine", "load", "figures"} <= set(report)
    for entry in report["figures"]:
        assert CONTRACT <= set(entry), entry["id"]
        if entry["projected"]:
            assert entry["met"] is False, entry["id"]
        if entry["ours"] is not None and entry["repeats"] > 1:
            assert entry["ours"] == statistics.median(entry["ours_values"]), entry["id"]


def test_readme_table_is_the_one_results_json_gives():
    # `python -m bench --table` rewrites it; this fails when README and results drift apart.
    report = json.loads(RESULTS_PATH.read_text())
    readme = README_PATH.read_text()

    assert table_in_readme(readme) == table(report)
    assert readme_with_table(readme, report) == readme


def test_the_table_marks_unmet_and_projected_figures():
    report = {
        "command": "python -m bench",
        "size": "default",
        "date": "2026-12-02T18:00:00+00:00",
        "machine": {"cpu_count": 2, "cpu_model": "cpu", "memory_mib": 2048, "python": "3.11.7"},
        "load": {
            "before": 3.0,
            "after": 1.0,
            "max": 3.0,
            "cpu_count": 2,
            "overloaded": True,
            "overloaded_figures": 1,
        },
        "seconds": {"sync": 60.0},
    }
    rendered = table({**report, "figures": [projected_entry()]})

    assert "| `t.projected` | a projection |" in rendered
    assert "projected (never met)" in rendered
    assert "load average 3.00 before, 1.00 after" in rendered
    assert "**overloaded**: 1 figures measured above the core count" in rendered
