"""``make bench``: every benchmark module's figures, measured by one harness, one results file.

The harness (how a figure is declared, measured and judged) is ``bench/harness.py``; each
module ``bench/bench_<name>.py`` owns its figures: a ``figures(size)`` generator yielding
``harness.Figure`` declarations (see that module's docstring for the API). This module only
runs them, writes ``bench/results.json`` and renders the README's table and the curves'
PNG from it.

- ``python -m bench`` (``make bench``): the default modules at the default size, under
  10 minutes on 2 cores; ``--size full`` (``make bench-full``) runs the curves at full
  size; ``--size quick`` is a smoke test; ``--only`` picks modules (``scale_out``, which
  needs Redis and takes minutes, runs only when named);
- ``python -m bench --figure 'stats.growth_*' [--figure ID ...]``: only the figures whose id
  matches one of the fnmatch patterns, among the modules ``--only`` names (the default
  ones without it); a module skips the set-up of figures not wanted (``harness.selection``);
- ``python -m bench --table``: rewrites the table between the markers in README.md and
  ``bench/curves.png`` from ``bench/results.json`` (``make bench`` does it after a run);
  a test fails when README's table differs from the results.

results.json: ``figures`` (one entry per figure: the contract of issue 15, see
``harness.result_entry``), the required ids nothing measured (as entries never met), the
date, the machine, the versions, the load average before and after the run (``overloaded``
when it passed the core count), each module's seconds and errors. A module that fails is
recorded with its traceback and the others still run; the exit status is then 1.

A selection (``--figure``) merges into the results file it finds rather than replacing it:
each figure it measured replaces the entry of the same id (or is added after the others),
the other figures stay as they were; the top-level date, command, load and seconds stay
those of the run that measured the rest, and the selection's own are appended to
``merged`` with the ids it measured (the table marks those rows with the merge's number);
an earlier selection keeps only the ids measured again by none since, and one left with
none is dropped, so every merge the table lists still holds figures.
Every entry carries its own ``measured_at`` and load. A required figure the selection
failed to measure never replaces a measured one. A run without ``--figure`` replaces the
file.
"""

import argparse
import datetime as dt
import importlib
import importlib.metadata
import json
import os
import platform
import shlex
import sys
import time
import traceback
from pathlib import Path

from bench import harness

BENCH_DIR = Path(__file__).parent
RESULTS_PATH = BENCH_DIR / "results.json"
README_PATH = BENCH_DIR.parent / "README.md"
PNG_PATH = BENCH_DIR / "curves.png"
TABLE_BEGIN = "<!-- bench-table:begin (python -m bench --table writes this) -->"
TABLE_END = "<!-- bench-table:end -->"
PACKAGES = ("dagster", "pandas", "numpy", "sqlalchemy", "psycopg2-binary", "tushare")
MIB = 2**20
# Every benchmark module, by the name --only takes.
MODULES = ("sync", "history", "factors", "scheduling", "cli", "scale_out")
# What `make bench` runs: scale_out needs Redis and Celery workers and takes minutes.
DEFAULT_MODULES = ("sync", "history", "factors", "scheduling", "cli")
# The figures issue 15 requires of a default or full run, by the module that owns them.
REQUIRED_IDS = {
    "sync": ("sync.calls_vs_floor_250d", "sync.calls_vs_zquant_per_stock_1000d"),
    "write": ("write.vs_copy_prebuilt", "write.resync_1pct_vs_first_load"),
    "history": (
        "stats.all_tasks_vs_plain_100k_sqlite",
        "stats.all_tasks_vs_plain_100k_postgres",
        "stats.one_task_vs_plain_100k_sqlite",
    ),
    "factors": ("factors.e2e_vs_floor", "factors.e2e_vs_pandas", "factors.e2e_vs_zquant"),
    "cli": ("cli.help_vs_import_dagster",),
}


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


def module_figures(name: str, size: str, wanted: harness.Wanted):
    """The figures ``bench/bench_<name>.py`` declares."""
    return importlib.import_module(f"bench.bench_{name}").figures(size, wanted)


def run_modules(
    names: list[str], size: str, wanted: harness.Wanted = harness.every_figure
) -> tuple[list[dict], dict, dict]:
    """Figures (the wanted ones), seconds taken and errors, of each of ``names``."""
    entries, seconds, errors = [], {}, {}
    for name in names:
        print(f"\n== {name} ==", flush=True)
        started = time.perf_counter()
        try:
            declared = module_figures(name, size, wanted)
            for entry in harness.measure_all(declared, progress=print_flush, wanted=wanted):
                entries.append(entry)
        except Exception:  # noqa: BLE001 - one failed module must not discard the others
            errors[name] = traceback.format_exc()
            print(errors[name], file=sys.stderr, flush=True)
        seconds[name] = time.perf_counter() - started
    return entries, seconds, errors


def print_flush(text: str) -> None:
    print(text, flush=True)


def missing_entries(
    names: list[str],
    entries: list[dict],
    failures: dict,
    wanted: harness.Wanted = harness.every_figure,
) -> list[dict]:
    """The required (and wanted) ids of the modules run that nothing measured."""
    measured = {entry["id"] for entry in entries}
    missing = []
    for owner, ids in REQUIRED_IDS.items():
        module = "sync" if owner == "write" else owner
        if module not in names:
            continue
        reason = failures.get(module, "").strip().splitlines()[-1:] or ["no figure has this id"]
        missing += [
            harness.missing_entry(id_, reason[0])
            for id_ in ids
            if id_ not in measured and wanted(id_)
        ]
    return missing


def merged_report(earlier: dict, selection: dict) -> dict:
    """``selection`` (a ``--figure`` run's report) merged into ``earlier`` by figure id (see
    the module docstring)."""
    figures = {entry["id"]: entry for entry in earlier["figures"]}
    measured = [
        entry
        for entry in selection["figures"]
        if entry["measured_at"] is not None or entry["id"] not in figures
    ]
    figures.update((entry["id"], entry) for entry in measured)
    run = {key: value for key, value in selection.items() if key != "figures"}
    run["figures"] = [entry["id"] for entry in measured]
    remeasured = set(run["figures"])
    kept = [
        {**merge, "figures": [id_ for id_ in merge["figures"] if id_ not in remeasured]}
        for merge in earlier.get("merged", [])
    ]
    return {
        **earlier,
        "figures": list(figures.values()),
        "merged": [*(merge for merge in kept if merge["figures"]), run],
    }


def run_load(before: float, after: float, entries: list[dict]) -> dict:
    loads = [before, after] + [
        value
        for entry in entries
        if entry["load"]
        for value in (entry["load"]["before"], entry["load"]["after"])
    ]
    return {
        "before": before,
        "after": after,
        "max": max(loads),
        "cpu_count": os.cpu_count(),
        "overloaded": harness.overloaded(loads),
        "overloaded_figures": sum(
            bool(entry["load"] and entry["load"]["overloaded"]) for entry in entries
        ),
    }


# -- the README table and the PNG, from results.json --------------------------------------


def target_text(entry: dict) -> str:
    if entry["target"] is None:
        return "-"
    return f">= {entry['target']:.3g}x"


def met_text(entry: dict) -> str:
    if entry["projected"]:
        return "projected (never met)"
    return {True: "yes", False: "**no**", None: "-"}[entry["met"]]


def rss_text(entry: dict) -> str:
    peaks = entry["peak_rss_mib"]
    if peaks["ours"] is None:
        return "-"
    text = f"{peaks['ours']:.0f}"
    return text + (f" / {peaks['baseline']:.0f}" if peaks["baseline"] is not None else "")


def load_text(load: dict) -> str:
    return (
        f"load average {load['before']:.2f} before, {load['after']:.2f} after, {load['max']:.2f}"
        f" at most ({load['cpu_count']} cores"
        + (
            f"; **overloaded**: {load['overloaded_figures']} figures measured above the core count"
            if load["overloaded"]
            else ""
        )
        + ")"
    )


def minutes_text(run: dict) -> str:
    return f"took {sum(run['seconds'].values()) / 60:.1f} min"


def table(report: dict) -> str:
    """The README's table: one row per figure, with the run's date, machine and load, and
    those of each selection merged in since (its rows marked with its number)."""
    info = report["machine"]
    merged = report.get("merged", [])
    lines = [
        f"`{report['command']}` ({report['size']} size), {report['date']},"
        f" {info['cpu_count']} x {info['cpu_model']},"
        f" {harness.format_value(info['memory_mib'] / 1024, 'GiB')}, Python {info['python']};"
        f" {load_text(report['load'])}; {minutes_text(report)}.",
        *(
            f"Merged in ({number}): `{run['command']}` ({run['size']} size), {run['date']},"
            f" {len(run['figures'])} figures; {load_text(run['load'])}; {minutes_text(run)}."
            for number, run in enumerate(merged, 1)
        ),
        "",
        "| id | figure | ours | baseline | ratio | target | met | repeats | IQR (ours) |"
        " peak RSS MiB ours / baseline |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    # The last merge that measured each figure.
    merge_of = {id_: number for number, run in enumerate(merged, 1) for id_ in run["figures"]}
    for entry in report["figures"]:
        unit = entry["unit"]
        baseline = harness.format_value(entry["baseline"], unit)
        if entry["baseline_name"]:
            baseline += f" ({entry['baseline_name']})"
        flags = " (load > cores)" if entry["load"] and entry["load"]["overloaded"] else ""
        lines.append(
            "| "
            + " | ".join(
                [
                    f"`{entry['id']}`"
                    + (f" ({merge_of[entry['id']]})" if entry["id"] in merge_of else ""),
                    entry["title"] + (f"; {entry['note']}" if entry["note"] else ""),
                    harness.format_value(entry["ours"], unit),
                    baseline,
                    "-" if entry["ratio"] is None else f"{entry['ratio']:.3g}x",
                    target_text(entry),
                    met_text(entry) + flags,
                    str(entry["repeats"]),
                    harness.format_value(entry["iqr"], unit),
                    rss_text(entry),
                ]
            ).replace("\n", " ")
            + " |"
        )
    return "\n".join(lines)


def readme_with_table(readme: str, report: dict) -> str:
    if TABLE_BEGIN not in readme or TABLE_END not in readme:
        raise ValueError(f"README.md: no {TABLE_BEGIN!r} ... {TABLE_END!r} markers")
    before, rest = readme.split(TABLE_BEGIN, 1)
    _, after = rest.split(TABLE_END, 1)
    return f"{before}{TABLE_BEGIN}\n{table(report)}\n{TABLE_END}{after}"


def table_in_readme(readme: str) -> str:
    """What README.md holds between the markers."""
    return readme.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0].strip("\n")


def plot_curves(report: dict, path: Path) -> None:
    """One panel per curve: ours and the baseline's median against its x, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, list[dict]] = {}
    for entry in report["figures"]:
        if entry["curve"] and entry["ours"] is not None:
            curves.setdefault(entry["curve"], []).append(entry)
    columns = min(3, max(1, len(curves)))
    rows = max(1, -(-len(curves) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    for axis, (name, points) in zip(axes.flat, sorted(curves.items()), strict=False):
        points.sort(key=lambda entry: entry["x"])
        xs = [entry["x"] for entry in points]
        axis.plot(xs, [entry["ours"] for entry in points], "o-", label="ours")
        if all(entry["baseline"] is not None for entry in points):
            axis.plot(
                xs,
                [entry["baseline"] for entry in points],
                "s--",
                label=points[0]["baseline_name"][:60] or "baseline",
            )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_title(name, fontsize=9)
        axis.set_ylabel(points[0]["unit"])
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(curves) :]:
        axis.axis("off")
    merges = len(report.get("merged", []))
    figure.suptitle(
        f"{report['command']}, {report['date']}"
        + (f" (+ {merges} selections merged in)" if merges else ""),
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write_table(results: Path, readme: Path, png: Path) -> None:
    report = json.loads(results.read_text())
    readme.write_text(readme_with_table(readme.read_text(), report))
    plot_curves(report, png)
    print(f"wrote the table into {readme} and the curves to {png}")


# -- the command -----------------------------------------------------------------------------


def parse_only(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODULES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"--only {text!r}: expected a comma list of {', '.join(MODULES)}"
        )
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        type=parse_only,
        default=list(DEFAULT_MODULES),
        help="comma list of " + ",".join(MODULES) + f" (default {','.join(DEFAULT_MODULES)})",
    )
    parser.add_argument(
        "--figure",
        action="append",
        default=[],
        metavar="PATTERN",
        dest="figures",
        help="measure only the figures whose id matches this fnmatch pattern (repeatable);"
        " merges them into --results",
    )
    parser.add_argument("--size", choices=harness.SIZES, default="default")
    parser.add_argument("--results", type=Path, default=RESULTS_PATH, help="JSON file to write")
    parser.add_argument(
        "--table",
        action="store_true",
        help="measure nothing: write README.md's table and the PNG from --results",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table:
        write_table(args.results, README_PATH, PNG_PATH)
        return 0
    started = dt.datetime.now(dt.UTC)
    load_before = harness.load_average()
    wanted = harness.selection(args.figures)
    entries, seconds, errors = run_modules(args.only, args.size, wanted)
    load_after = harness.load_average()
    if args.figures and not entries and not errors:
        print(f"no figure of {', '.join(args.only)} matches {args.figures}", file=sys.stderr)
        return 2
    missing = missing_entries(args.only, entries, errors, wanted) if args.size != "quick" else []
    report = {
        "date": started.isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]),
        "size": args.size,
        "machine": machine(),
        "versions": versions(),
        "load": run_load(load_before, load_after, entries),
        "seconds": seconds,
        "figures": entries + missing,
        "errors": errors,
    }
    if args.figures and args.results.exists():
        report = merged_report(json.loads(args.results.read_text()), report)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print("\n" + table(report))
    if errors:
        print(f"\nfailed: {', '.join(errors)} (tracebacks above and in {args.results})")
    print(f"\nwrote {args.results} ({sum(seconds.values()):.0f} s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
