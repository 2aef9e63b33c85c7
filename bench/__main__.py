"""``make bench``: the benchmarks of issue 7 in one run, one table, ``bench/results.json``.

Runs each benchmark (sync, factors, history, scheduling, cli; ``--only`` picks some, and adds
``scale_out``, one Celery worker vs two, which needs Redis and takes minutes), turns its
result into figures (value, baseline, ratio, unit, target, met), prints them as one table
and writes them with the machine, the versions, the date, the sizes and every benchmark's
full result. Ratios are "times better than the baseline": baseline / value where lower is
better (seconds, calls, memory), value / baseline where higher is better (rows/s).

A benchmark that fails is recorded with its error and the others still run; the exit
status is then 1. ``--quick`` runs tiny sizes (a smoke test of the whole harness, seconds
not minutes); the defaults finish in under 10 minutes on 2 cores.

Run: ``.venv/bin/python -m bench [--only sync,factors,history,scheduling,cli,scale_out] [--quick]
[--results PATH]``
(``--help`` lists the size options).
"""

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from bench import (
    bench_cli,
    bench_factors,
    bench_history,
    bench_scale_out,
    bench_scheduling,
    bench_sync,
)

RESULTS_PATH = Path(__file__).with_name("results.json")
PACKAGES = ("dagster", "pandas", "numpy", "sqlalchemy", "psycopg2-binary", "tushare")
MIB = 2**20


@dataclass(frozen=True)
class Sizes:
    """Every size the benchmarks take; the harness options override them one by one."""

    repeats: int
    sync_stocks: int
    sync_days: int
    sync_calls_per_window: int
    sync_window_seconds: float
    factor_stocks: int
    factor_days: int
    factor_loop_budget_seconds: float
    history_runs: int
    scheduling_members: int
    scheduling_workflow_repeats: int
    scale_out_stocks: int
    cli_repeats: int


DEFAULT_SIZES = Sizes(
    repeats=3,
    sync_stocks=bench_sync.DEFAULT_STOCKS,
    sync_days=bench_sync.DEFAULT_DAYS,
    sync_calls_per_window=bench_sync.THROTTLE_CALLS,
    sync_window_seconds=bench_sync.THROTTLE_WINDOW_SECONDS,
    factor_stocks=bench_factors.DEFAULT_STOCKS,
    factor_days=bench_factors.DEFAULT_DAYS,
    factor_loop_budget_seconds=bench_factors.LOOP_BUDGET_SECONDS,
    history_runs=bench_history.DEFAULT_RUNS,
    scheduling_members=bench_scheduling.DEFAULT_MEMBERS,
    scheduling_workflow_repeats=bench_scheduling.DEFAULT_WORKFLOW_REPEATS,
    scale_out_stocks=bench_scale_out.DEFAULT_STOCKS,
    cli_repeats=bench_cli.DEFAULT_REPEATS,
)
# Small enough to smoke-test every code path in seconds; the zquant-way case still waits
# for the throttle once (30 calls against 20 per window).
QUICK_SIZES = Sizes(
    repeats=1,
    sync_stocks=30,
    sync_days=3,
    sync_calls_per_window=20,
    sync_window_seconds=0.5,
    factor_stocks=20,
    factor_days=30,
    factor_loop_budget_seconds=10.0,
    history_runs=200,
    scheduling_members=2,
    scheduling_workflow_repeats=1,
    scale_out_stocks=50,
    cli_repeats=1,
)


@dataclass(frozen=True)
class Figure:
    """One measured number, the baseline it is compared with, and its target.

    A target is a minimum ratio (``target_ratio``) or a maximum value (``target_max``).
    ``problem`` (results that disagree, a storage that was skipped) makes the target unmet.
    """

    bench: str
    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    higher_is_better: bool = True
    target_ratio: float | None = None
    target_max: float | None = None
    note: str = ""
    problem: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.baseline is None:
            return None
        better, worse = (
            (self.value, self.baseline) if self.higher_is_better else (self.baseline, self.value)
        )
        return better / worse if worse else None

    @property
    def target(self) -> str | None:
        if self.target_ratio is not None:
            return f"ratio >= {self.target_ratio:g}"
        if self.target_max is not None:
            return f"<= {self.target_max:g} {self.unit}"
        return None

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.problem or self.value is None:
            return False
        if self.target_ratio is not None:
            return self.ratio is not None and self.ratio >= self.target_ratio
        return self.value <= self.target_max

    def as_json(self) -> dict:
        return {
            "bench": self.bench,
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "note": "; ".join(text for text in (self.problem, self.note) if text),
        }


# -- each benchmark: run it at the sizes, then read its figures --------------------------


def run_sync(sizes: Sizes) -> dict:
    return bench_sync.run(
        stocks=sizes.sync_stocks,
        days=sizes.sync_days,
        repeats=sizes.repeats,
        calls_per_window=sizes.sync_calls_per_window,
        window_seconds=sizes.sync_window_seconds,
    )


def sync_figures(result: dict) -> list[Figure]:
    cases, minimum = result["cases"], result["minimum_calls"]
    ours, ours_throttled = cases["ours"], cases["ours_throttled"]
    zquant, zquant_throttled, write = cases["zquant"], cases["zquant_throttled"], cases["write"]
    days, throttle = result["trading_days"], result["throttle"]
    projection = result["projection"]
    scale = projection["window_seconds"] / throttle["window_seconds"]
    budget = f"{throttle['calls']} calls per {throttle['window_seconds']:g} s"
    daily = ours["steps"]["daily"]
    like_for_like = "daily API only on both sides"
    return [
        Figure(
            "sync",
            f"daily API calls, {days} trading days",
            ours["http_calls"]["daily"],
            "calls",
            baseline=sum(zquant_throttled["http_calls"].values()),
            baseline_name="zquant: one call per stock",
            higher_is_better=False,
            target_max=minimum["daily"],
            note="target: one call per trading day plus pages",
        ),
        *(
            Figure(
                "sync",
                f"{figure['id']} (trading-day API calls)",
                figure["ours"],
                "calls",
                baseline=figure["baseline"],
                baseline_name=name,
                higher_is_better=False,
                target_ratio=target,
                note=figure["note"],
            )
            for figure, name, target in zip(
                result["call_figures"],
                ("page floor: ceil(rows / row limit)", "zquant: one call per stock"),
                (1 / bench_sync.FLOOR_TARGET, bench_sync.ZQUANT_PER_STOCK_TARGET),
                strict=True,
            )
        ),
        Figure(
            "sync",
            "full sync API calls (5 APIs)",
            sum(ours["http_calls"].values()),
            "calls",
            target_max=sum(minimum.values()),
            note="target: stock_basic x3 + trade_cal x2 + one per API per trading day + pages",
        ),
        Figure(
            "sync",
            f"throttled daily sync time ({budget})",
            ours_throttled["steps"]["daily"]["seconds"],
            "s",
            baseline=zquant_throttled["seconds"],
            baseline_name="zquant's way, throttled (run once)",
            higher_is_better=False,
            target_ratio=20,
            note=f"tushare's minute scaled down {scale:g}x; {like_for_like}",
        ),
        Figure(
            "sync",
            f"throttled daily sync time at {throttle['calls']} calls per"
            f" {projection['window_seconds']:g} s (projected)",
            projection["ours_daily_seconds"],
            "s",
            baseline=projection["zquant_seconds"],
            baseline_name="zquant's way (projected)",
            higher_is_better=False,
            target_ratio=20,
            note=(
                "projection from the unthrottled work per call; the model predicts"
                f" {projection['check_predicted_seconds']:.0f} s for zquant's throttled run"
                f" measured at {projection['check_measured_seconds']:.0f} s"
            ),
        ),
        Figure(
            "sync",
            "unthrottled daily sync, rows/s end to end",
            daily["rows"] / daily["seconds"],
            "rows/s",
            baseline=zquant["rows"] / zquant["seconds"],
            baseline_name="zquant's way: per-stock calls + to_sql",
            note=like_for_like,
        ),
        Figure(
            "sync",
            "write path, rows/s (daily rows, serialisation included)",
            write["rows"] / write["ours_seconds"],
            "rows/s",
            baseline=write["rows"] / write["copy_seconds"],
            baseline_name="raw psycopg2 COPY, one transaction",
            target_ratio=0.5,
        ),
        Figure(
            "sync",
            "full sync rows/s, unthrottled (5 APIs)",
            ours["rows"] / ours["seconds"],
            "rows/s",
            note=f"{ours['rows']:,} rows in {ours['seconds']:.1f} s",
        ),
        Figure(
            "sync",
            "peak RSS of the syncing process",
            ours["peak_rss_mib"],
            "MiB",
            baseline=zquant_throttled["peak_rss_mib"],
            baseline_name="zquant's way, every stock (daily only)",
            higher_is_better=False,
            note=(
                f"ours: full sync; {ours['imports_rss_mib']:.0f} MiB of it is the"
                " interpreter and imports"
            ),
        ),
    ]


def run_factors(sizes: Sizes) -> dict:
    return bench_factors.run(
        stocks=sizes.factor_stocks,
        days=sizes.factor_days,
        repeats=sizes.repeats,
        loop_budget_seconds=sizes.factor_loop_budget_seconds,
    )


def factor_figures(result: dict) -> list[Figure]:
    size = f"{result['stocks']} stocks x {result['trading_days']} days"
    loop_note = (
        f"loop measured on {result['loop_stocks']} stocks, scaled to {result['stocks']}"
        if result["loop_scaled"]
        else "loop measured once on every stock"
    )
    return [
        Figure(
            "factors",
            f"all factors, {size}",
            result["vectorised_seconds"],
            "s",
            baseline=result["loop_full_market_seconds"],
            baseline_name="per-stock loop",
            higher_is_better=False,
            target_ratio=20,
            note=f"{loop_note}; results agree",
            problem="" if result["results_agree"] else "results differ",
        ),
        Figure(
            "factors",
            f"peak RSS computing all factors, {size}",
            result["peak_rss_mib"],
            "MiB",
            target_max=2048,
            note=(
                f"inputs {result['inputs_rss_mib']:.0f} MiB of it; traced peak of the call"
                f" {result['compute_traced_peak_mib']:.0f} MiB"
            ),
        ),
    ]


def run_history(sizes: Sizes) -> dict:
    return bench_history.run(runs=sizes.history_runs, repeats=sizes.repeats)


def history_figures(result: dict) -> list[Figure]:
    figures = []
    for storage, outcome in result["results"].items():
        prefix = f"{storage}, {result['runs']:,} runs"
        if "skipped" in outcome:
            figures.append(
                Figure(
                    "history",
                    f"task stats, {prefix}",
                    None,
                    "s",
                    target_ratio=50,
                    problem=outcome["skipped"],
                )
            )
            continue
        seconds = outcome["seconds"]
        problem = "" if outcome["agree"] else "SQL and naive stats differ"
        for key, name, target in (
            ("stats_all_tasks", "task stats, every task", 50),
            ("stats_one_task", "task stats, one task", None),
            ("history_page", "one history page (20 runs + total)", None),
        ):
            figures.append(
                Figure(
                    "history",
                    f"{name}, {prefix}",
                    seconds[key],
                    "s",
                    baseline=seconds["naive_count"],
                    baseline_name="naive count over get_run_records",
                    higher_is_better=False,
                    target_ratio=target,
                    problem=problem,
                )
            )
    return figures


def run_scheduling(sizes: Sizes) -> dict:
    return bench_scheduling.run(
        tick_repeats=sizes.repeats,
        workflow_repeats=sizes.scheduling_workflow_repeats,
        members=sizes.scheduling_members,
    )


def scheduling_figures(result: dict) -> list[Figure]:
    tick, members = result["tick"], result["members"]
    skipped = "; ".join(
        f"{name} skipped: {reason}" for name, reason in result["skipped_executors"].items()
    )
    figures = [
        Figure(
            "scheduling",
            "schedule tick -> first step (queue, launch, run process)",
            tick["seconds"],
            "s",
            baseline=tick["direct_seconds"],
            baseline_name="execute_in_process, same job",
            higher_is_better=False,
            note=(
                f"tick task on {tick['executor']}; dagster-daemon adds up to"
                f" {tick['dequeue_interval_seconds']} s of queue polling"
            ),
        )
    ]
    for executor, case in result["workflows"].items():
        figures.append(
            Figure(
                "scheduling",
                f"{members}-member parallel no-op workflow, submit -> success, {executor}",
                case["seconds"],
                "s",
                baseline=case["one_member_seconds"],
                baseline_name="one-member workflow, same executor",
                higher_is_better=False,
                note="ratio 1 = the extra members cost nothing"
                + (f"; {skipped}" if skipped else ""),
            )
        )
    return figures


def run_scale_out(sizes: Sizes) -> dict:
    return bench_scale_out.run(repeats=sizes.repeats, stocks=sizes.scale_out_stocks)


def scale_out_figures(result: dict) -> list[Figure]:
    notes = {
        "unthrottled": "no budget",
        "throttled": f"{result['throttle']['calls']} calls per API per"
        f" {result['throttle']['window_seconds']:g} s, shared",
        "latency": f"every reply {result['reply_delay_seconds']:g} s late",
    }
    return [
        Figure(
            "scale_out",
            f"parallel sync workflow, two Celery workers, {condition}",
            by_count["2"],
            "s",
            baseline=by_count["1"],
            baseline_name="the same on one worker",
            higher_is_better=False,
            note=f"{result['stocks']} stocks; {notes[condition]}",
        )
        for condition, by_count in result["median_seconds"].items()
    ]


def run_cli(sizes: Sizes) -> dict:
    return bench_cli.run(repeats=sizes.cli_repeats)


def cli_figures(result: dict) -> list[Figure]:
    medians = result["median_seconds"]
    return [
        Figure(
            "cli",
            "help_vs_import_dagster",
            medians["zquant_help"],
            "s",
            baseline=medians["import_dagster"],
            baseline_name='python -c "import dagster"',
            higher_is_better=False,
            target_ratio=4,
            note=f"`zquant --help` wall time, median of {result['repeats']} interleaved runs",
        )
    ]


BENCHES: dict[str, tuple[Callable[[Sizes], dict], Callable[[dict], list[Figure]]]] = {
    "sync": (run_sync, sync_figures),
    "factors": (run_factors, factor_figures),
    "history": (run_history, history_figures),
    "scheduling": (run_scheduling, scheduling_figures),
    "scale_out": (run_scale_out, scale_out_figures),
    "cli": (run_cli, cli_figures),
}
# What `make bench` runs: scale_out needs Redis and Celery workers and takes minutes.
DEFAULT_BENCHES = [name for name in BENCHES if name != "scale_out"]


# -- the run: machine, benchmarks, table, results file -----------------------------------


def machine() -> dict:
    cpu_model = None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_mib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mib = int(line.split()[1]) * 1024 / MIB
                break
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model or platform.processor() or None,
        "memory_mib": memory_mib,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def versions() -> dict:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def run_benches(names: list[str], sizes: Sizes) -> tuple[list[Figure], dict, dict, dict]:
    """Figures, full results, seconds taken and errors of each benchmark in ``names``."""
    figures, details, seconds, errors = [], {}, {}, {}
    for name in names:
        run, read_figures = BENCHES[name]
        print(f"\n== {name} ==", flush=True)
        started = time.perf_counter()
        try:
            details[name] = run(sizes)
            figures += read_figures(details[name])
        except Exception:  # noqa: BLE001 - one failed benchmark must not discard the others
            errors[name] = traceback.format_exc()
            print(errors[name], file=sys.stderr, flush=True)
        seconds[name] = time.perf_counter() - started
    return figures, details, seconds, errors


def format_number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10 or float(value).is_integer():
        text = f"{value:.1f}".removesuffix(".0")
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def table(figures: list[Figure]) -> str:
    """The figures as aligned text; notes follow as numbered footnotes."""
    header = ("bench", "figure", "value", "baseline", "ratio", "target", "met")
    notes = [figure.as_json()["note"] for figure in figures]
    numbered = list(dict.fromkeys(note for note in notes if note))
    rows = [
        (
            figure.bench,
            f"{figure.name} [{numbered.index(note) + 1}]" if note else figure.name,
            format_number(figure.value, figure.unit),
            format_number(figure.baseline, figure.unit),
            "-" if figure.ratio is None else f"{format_number(figure.ratio)}x",
            figure.target or "-",
            {True: "yes", False: "no", None: "-"}[figure.met],
        )
        for figure, note in zip(figures, notes, strict=True)
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines += [f"[{number}] {note}" for number, note in enumerate(numbered, 1)]
    return "\n".join(lines)


def parse_only(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"--only {text!r}: expected a comma list of {', '.join(BENCHES)}"
        )
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        type=parse_only,
        default=DEFAULT_BENCHES,
        help="comma list of " + ",".join(BENCHES) + f" (default {','.join(DEFAULT_BENCHES)})",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--results", type=Path, default=RESULTS_PATH, help="JSON file to write")
    for size in fields(Sizes):
        parser.add_argument(
            "--" + size.name.replace("_", "-"),
            type=size.type,
            default=None,
            help=f"default {getattr(DEFAULT_SIZES, size.name)},"
            f" --quick {getattr(QUICK_SIZES, size.name)}",
        )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preset = QUICK_SIZES if args.quick else DEFAULT_SIZES
    sizes = Sizes(
        **{
            size.name: getattr(preset, size.name)
            if getattr(args, size.name) is None
            else getattr(args, size.name)
            for size in fields(Sizes)
        }
    )
    started = dt.datetime.now(dt.UTC)
    figures, details, seconds, errors = run_benches(args.only, sizes)
    report = {
        "date": started.isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine(),
        "versions": versions(),
        "sizes": {size.name: getattr(sizes, size.name) for size in fields(Sizes)},
        "seconds": seconds,
        "figures": [figure.as_json() for figure in figures],
        "errors": errors,
        "details": details,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    info = report["machine"]
    print(
        f"\n{started:%Y-%m-%d %H:%M} UTC, {info['cpu_count']} x {info['cpu_model']},"
        f" {format_number(info['memory_mib'], 'MiB')}, Python {info['python']}"
    )
    print(table(figures))
    if errors:
        print(f"\nfailed: {', '.join(errors)} (tracebacks above and in {args.results})")
    print(f"\nwrote {args.results} ({sum(seconds.values()):.0f} s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
