"""Figure selection (``python -m bench --figure PATTERN``): what is measured, what is set up,
and how a selection's figures are merged into the results of earlier runs."""

import json

import pytest

from bench import (
    bench_cli,
    bench_factors,
    bench_history,
    bench_scale_out,
    bench_scheduling,
    bench_sync,
    harness,
)
from bench.__main__ import main, merged_report, table


def sample_figure(figure_id: str, value=1.0, calls: list | None = None) -> harness.Figure:
    def side():
        if calls is not None:
            calls.append(figure_id)
        return harness.Sample(value() if callable(value) else value)

    return harness.Figure(id=figure_id, title=figure_id, ours=side, repeats=1, deterministic=True)


def test_selection_matches_figure_ids_by_glob():
    wanted = harness.selection(["stats.growth_*", "write.resync_1pct_vs_first_load"])

    assert wanted("stats.growth_100k_to_1m_sqlite")
    assert wanted("write.resync_1pct_vs_first_load")
    assert not wanted("write.vs_copy_prebuilt")
    assert not wanted("stats.all_tasks_vs_plain_100k_sqlite")
    assert harness.selection([]) is harness.every_figure


def test_measure_all_measures_only_the_wanted_figures():
    calls = []
    declared = (sample_figure(figure_id, calls=calls) for figure_id in ("a.one", "a.two", "b.one"))

    entries = list(harness.measure_all(declared, lambda text: None, harness.selection(["*.one"])))

    assert [entry["id"] for entry in entries] == ["a.one", "b.one"]
    # An unwanted figure's sides never run.
    assert calls == ["a.one", "b.one"]
    assert all(entry["measured_at"] for entry in entries)


def refuse(what: str):
    def refused(*args, **kwargs):
        raise AssertionError(f"{what} set up although none of its figures is wanted")

    return refused


NOTHING_SET_UP = {
    bench_sync: ("sample_market",),
    bench_factors: ("store_bench_market",),
    bench_scheduling: ("open_bench",),
    bench_scale_out: ("create_pg_database", "SampleMarketSource"),
    bench_cli: ("timed_process",),
    bench_history: ("fill_run_store",),
}


@pytest.mark.parametrize("module", NOTHING_SET_UP, ids=lambda module: module.__name__)
@pytest.mark.parametrize("size", harness.SIZES)
def test_a_module_with_no_wanted_figure_sets_nothing_up(module, size, monkeypatch, request):
    if module is bench_history:
        request.getfixturevalue("pg_server_url")  # its empty instances, one per storage
    for name in NOTHING_SET_UP[module]:
        monkeypatch.setattr(module, name, refuse(f"{module.__name__}.{name}"))

    assert list(module.figures(size, lambda figure_id: False)) == []


def test_sync_serves_the_market_only_for_the_write_figures(monkeypatch):
    for name in ("create_pg_database", "TushareWireServer"):
        monkeypatch.setattr(bench_sync, name, refuse(f"bench_sync.{name}"))
    wanted = harness.selection(["sync.calls_vs_floor_5d"])

    entries = list(
        harness.measure_all(bench_sync.figures("quick", wanted), lambda text: None, wanted)
    )

    assert [entry["id"] for entry in entries] == ["sync.calls_vs_floor_5d"]
    assert entries[0]["ours"] == len(bench_sync.BAR_APIS)


def test_history_fills_only_the_two_stores_of_a_wanted_growth_figure(pg_server_url, monkeypatch):
    # The growth figure at a test's size: 200 runs against 2,000.
    monkeypatch.setattr(bench_history, "SIZES", {"quick": (20, 200, 2000)})
    monkeypatch.setattr(bench_history, "GROWTH_FROM", 200)
    monkeypatch.setattr(bench_history, "GROWTH_TO", 2000)
    filled = []
    fill = bench_history.fill_run_store

    def recorded_fill(instance, runs, seed):
        filled.append(runs)
        fill(instance, runs, seed)

    monkeypatch.setattr(bench_history, "fill_run_store", recorded_fill)
    wanted = harness.selection(["stats.growth_*_sqlite"])

    entries = list(
        harness.measure_all(bench_history.figures("quick", wanted), lambda text: None, wanted)
    )

    assert [entry["id"] for entry in entries] == ["stats.growth_200_to_2k_sqlite"]
    # SQLite's two stores; not its 20 runs, nothing on PostgreSQL.
    assert filled == [200, 2000]
    assert entries[0]["ours"] > 0 and entries[0]["baseline"] > 0


def test_factors_stores_each_market_of_its_curves_only_for_its_wanted_figures(monkeypatch):
    """At full size the curves' markets are 500 x 60 and 2,000 x 120 (the required figures'
    5,000 x 250 their last point): each stored only when one of its figures is wanted and
    dropped after them. Nothing is measured: the sides never run on the unfilled markets."""
    events = []

    def store(stocks, days, seed):
        events.append(("store", stocks, days))
        codes = [f"{code:06d}.SZ" for code in range(stocks)]
        return bench_factors.StoredMarket("postgresql://unused", None, [], codes)

    monkeypatch.setattr(bench_factors, "store_bench_market", store)
    monkeypatch.setattr(
        bench_factors, "drop_market", lambda market: events.append(("drop", len(market.codes)))
    )

    def declared(patterns: list[str]) -> list:
        events.clear()
        for figure in bench_factors.figures("full", harness.selection(patterns)):
            events.append((figure.id, figure.curve, figure.x))
        return list(events)

    floor, pandas = bench_factors.CURVE_FLOOR, bench_factors.CURVE_PANDAS
    assert declared(["factors.e2e_vs_floor*", "factors.e2e_vs_pandas*"]) == [
        ("store", 500, 60),
        ("factors.e2e_vs_floor_500x60", floor, 30_000),
        ("factors.e2e_vs_pandas_500x60", pandas, 30_000),
        ("drop", 500),
        ("store", 2_000, 120),
        ("factors.e2e_vs_floor_2000x120", floor, 240_000),
        ("factors.e2e_vs_pandas_2000x120", pandas, 240_000),
        ("drop", 2_000),
        ("store", 5_000, 250),
        ("factors.e2e_vs_floor", floor, 1_250_000),
        ("factors.e2e_vs_pandas", pandas, 1_250_000),
        ("drop", 5_000),
    ]
    assert declared(["factors.e2e_vs_pandas_2000x120"]) == [
        ("store", 2_000, 120),
        ("factors.e2e_vs_pandas_2000x120", pandas, 240_000),
        ("drop", 2_000),
    ]
    # The required figures off the curves, on the largest market only.
    assert declared(["factors.*_vs_zquant", "factors.daily_*", "factors.job_*"]) == [
        ("store", 5_000, 250),
        ("factors.e2e_vs_zquant", None, None),
        ("factors.daily_run_vs_floor", None, None),
        ("factors.job_peak_rss_vs_budget", None, None),
        ("drop", 5_000),
    ]


def report(figures: list[dict], command: str, date: str) -> dict:
    return {
        "date": date,
        "command": command,
        "size": "default",
        "machine": {"cpu_count": 2, "cpu_model": "cpu", "memory_mib": 2048, "python": "3.11.7"},
        "versions": {},
        "load": {
            "before": 1.0,
            "after": 1.0,
            "max": 1.0,
            "cpu_count": 2,
            "overloaded": False,
            "overloaded_figures": 0,
        },
        "seconds": {"history": 60.0},
        "figures": figures,
        "errors": {},
    }


def entry(figure_id: str, value: float) -> dict:
    return harness.measure(sample_figure(figure_id, value))


def test_a_selection_replaces_its_figures_by_id_and_keeps_the_others():
    earlier = report(
        [entry("a", 1.0), entry("b", 1.0), entry("c", 1.0)], "python -m bench", "2026-12-01"
    )
    selection = report(
        [
            entry("b", 2.0),
            entry("new", 2.0),
            # A required figure the selection failed to measure, and one never measured.
            harness.missing_entry("c", "it broke"),
            harness.missing_entry("d", "it broke"),
        ],
        "python -m bench --figure b --figure new",
        "2026-12-02",
    )

    merged = merged_report(earlier, selection)

    figures = {figure["id"]: figure for figure in merged["figures"]}
    assert list(figures) == ["a", "b", "c", "new", "d"]
    assert (figures["a"]["ours"], figures["b"]["ours"], figures["new"]["ours"]) == (1.0, 2.0, 2.0)
    assert figures["c"]["ours"] == 1.0
    assert figures["d"]["met"] is False
    assert (merged["date"], merged["command"]) == ("2026-12-01", "python -m bench")
    (run,) = merged["merged"]
    assert run["figures"] == ["b", "new", "d"]
    assert (run["date"], run["command"]) == (
        "2026-12-02",
        "python -m bench --figure b --figure new",
    )
    # The next selection is merged after this one.
    again = merged_report(
        merged, report([entry("a", 3.0)], "python -m bench --figure a", "2026-12-03")
    )
    assert [run["figures"] for run in again["merged"]] == [["b", "new", "d"], ["a"]]
    # A selection measuring again what an earlier one measured takes those ids from it; an
    # earlier selection left with none is no longer listed.
    twice = merged_report(
        again, report([entry("b", 4.0), entry("a", 4.0)], "python -m bench --figure a,b", "4")
    )
    assert [run["figures"] for run in twice["merged"]] == [["new", "d"], ["b", "a"]]

    rendered = table(again)

    assert (
        "Merged in (1): `python -m bench --figure b --figure new` (default size), 2026-12-02,"
        " 3 figures;" in rendered
    )
    assert (
        "Merged in (2): `python -m bench --figure a` (default size), 2026-12-03, 1 figures;"
        in rendered
    )
    assert "| `a` (2) |" in rendered and "| `b` (1) |" in rendered and "| `c` |" in rendered


def test_figure_option_measures_the_selection_and_merges_it_into_the_results(
    tmp_path, monkeypatch, capsys
):
    results = tmp_path / "results.json"
    runs = iter(range(1, 100))
    set_up = []

    def module_figures(name, size, wanted):
        value = next(runs)
        for group in ("a", "b"):
            declared = harness.select(
                [sample_figure(f"fake.{group}_{n}", float(value)) for n in (1, 2)], wanted
            )
            if declared:
                set_up.append(group)
            yield from declared

    monkeypatch.setattr("bench.__main__.module_figures", module_figures)
    common = ["--only", "cli", "--size", "quick", "--results", str(results)]

    assert main(common) == 0
    first = json.loads(results.read_text())
    assert main([*common, "--figure", "fake.b_1"]) == 0

    merged = json.loads(results.read_text())
    assert set_up == ["a", "b", "b"]
    assert {figure["id"]: figure["ours"] for figure in merged["figures"]} == {
        "fake.a_1": 1.0,
        "fake.a_2": 1.0,
        "fake.b_1": 2.0,
        "fake.b_2": 1.0,
    }
    assert {key: merged[key] for key in first if key != "figures"} == {
        key: first[key] for key in first if key != "figures"
    }
    assert merged["merged"][0]["figures"] == ["fake.b_1"]
    assert "--figure fake.b_1" in merged["merged"][0]["command"]

    # A pattern nothing matches is refused and leaves the results alone.
    assert main([*common, "--figure", "fake.c_*"]) == 2
    assert json.loads(results.read_text()) == merged
    assert "matches ['fake.c_*']" in capsys.readouterr().err
