"""The benchmark harness: how a figure is declared, measured and judged.

A benchmark module declares its figures; the harness measures them the same way for every
module, so no module can measure its own side more kindly than the baseline.

Declaring (a module's ``figures(size, wanted)`` generator yields them; whatever the figures
share, a filled instance or a served market, stays open while the generator is suspended)::

    def figures(size: str, wanted: Wanted = every_figure) -> Iterator[Figure]:
        with fresh_instance("sqlite") as instance:
            declared = select(
                [
                    Figure(
                        id="stats.all_tasks_vs_plain_100k_sqlite",
                        title="task stats, every task, SQLite, 100,000 runs",
                        ours=lambda: task_stats(instance),
                        baseline=lambda: plain_count(instance),
                        baseline_name="plain count: needed columns, Python",
                        target=3,
                    )
                ],
                wanted,
            )
            if declared:
                fill(instance, RUNS[size])
            yield from declared

Selecting (``python -m bench --figure PATTERN``): ``wanted`` says whether a figure id is
wanted (``selection``: fnmatch globs; ``every_figure`` without them). ``measure_all``
measures only the wanted figures a module yields, so a module that declares more costs
nothing more; a module asks ``wanted`` before an expensive set-up (filling a run store,
serving a market) and skips it when none of the figures that need it is wanted. Declaring
a figure calls none of its sides, so a module may declare first and set up after.

``ours`` and ``baseline`` each run the side once. The harness times the call (seconds)
unless it returns a ``Sample``: then that is the measure (calls, rows/s, seconds timed by
the side itself), with the peak RSS of the process that did the work when it was not this
one (a side run in a child process reports its child's). Anything else a side returns is
ignored. ``size`` is ``quick`` (tests),
``default`` (``make bench``) or ``full`` (``make bench-full``).

Measuring (``measure``): ``repeats`` rounds (at least 5; 3 for a case over a minute,
declared by the module; one for a ``deterministic`` count, such as API calls against a
fixed market, where a repeat can only give the same number), ours and the baseline
interleaved ABBA-style (round i runs ours first when i is even, the baseline first when
odd) so drift in the machine's load falls on both sides alike; min / median / IQR of
each side; the load average before and after.

Peak RSS: a side that runs in this process is sampled by a thread (psutil, every 10 ms)
while it runs, and its figure is the highest RSS seen during that side's calls. Both sides
share the interpreter, the imports and the fixtures, which sit in both figures; what a side
allocated and freed is gone before the other runs. A side run in a child process reports
the child's own high-water mark (``Sample.peak_rss_mib``) instead.

Judging: ratio = "times better than the baseline" (baseline / ours where lower is better,
ours / baseline where higher is better) of the medians; ``met`` is ratio >= target, None
without a target, and always False for a projection (``projected=True``: a model's number,
not a measurement) or a figure with a ``problem`` (results that disagree). A figure measured
while the 1-minute load average was above the core count is flagged ``loaded``.
"""

import dataclasses
import datetime as dt
import fnmatch
import math
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import psutil

MIB = 2**20
MIN_REPEATS = 5
# A case over a minute may run 3 times (issue 15).
MIN_REPEATS_LONG = 3
RSS_SAMPLE_SECONDS = 0.01
SIZES = ("quick", "default", "full")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One side's measure, with the peak RSS of the process that did the work."""

    value: float
    peak_rss_mib: float | None = None


Side = Callable[[], object]


@dataclasses.dataclass(frozen=True)
class Figure:
    """One figure as a module declares it (see the module docstring)."""

    id: str
    title: str
    ours: Side
    baseline: Side | None = None
    baseline_name: str = ""
    target: float | None = None
    unit: str = "s"
    higher_is_better: bool = False
    repeats: int = MIN_REPEATS
    # A case over a minute: MIN_REPEATS_LONG repeats are enough.
    long: bool = False
    # A count that the same code on the same input always gives (API calls against a
    # fixed market): one run per side, since a repeat can only give the same number.
    deterministic: bool = False
    projected: bool = False
    # On a curve: its name and the x of this point (runs, days, stocks).
    curve: str | None = None
    x: float | None = None
    note: str = ""
    # Called after the repeats: a non-empty text (the sides disagree) makes the target unmet.
    check: Callable[[], str] | None = None

    def __post_init__(self):
        floor = 1 if self.deterministic else MIN_REPEATS_LONG if self.long else MIN_REPEATS
        if self.repeats < floor:
            raise ValueError(f"{self.id}: repeats {self.repeats} is below the minimum {floor}")
        if self.target is not None and self.target <= 0:
            raise ValueError(f"{self.id}: target {self.target!r} must be a positive ratio")


Wanted = Callable[[str], bool]


def every_figure(figure_id: str) -> bool:
    return True


def selection(patterns: Sequence[str]) -> Wanted:
    """The figures whose id matches one of the fnmatch ``patterns`` (every figure without
    patterns)."""
    if not patterns:
        return every_figure
    return lambda figure_id: any(fnmatch.fnmatchcase(figure_id, p) for p in patterns)


def select(declared: Iterable[Figure], wanted: Wanted) -> list[Figure]:
    """The wanted figures of ``declared``: empty when their set-up can be skipped."""
    return [figure for figure in declared if wanted(figure.id)]


def interleaved_order(repeats: int, with_baseline: bool) -> list[str]:
    """The sides in the order they run: ours, baseline, baseline, ours, ours, baseline..."""
    order = []
    for round_index in range(repeats):
        sides = ["ours", "baseline"] if with_baseline else ["ours"]
        order += sides if round_index % 2 == 0 else sides[::-1]
    return order


def summary(values: list[float]) -> dict:
    """min / median / IQR (inclusive quartiles: the spread of the middle half) and every value."""
    if not values:
        raise ValueError("summary: no values")
    if len(values) == 1:
        q1 = q3 = values[0]
    else:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {
        "min": min(values),
        "median": statistics.median(values),
        "iqr": q3 - q1,
        "values": list(values),
    }


def ratio_of(ours: float | None, baseline: float | None, higher_is_better: bool) -> float | None:
    if ours is None or baseline is None:
        return None
    better, worse = (ours, baseline) if higher_is_better else (baseline, ours)
    return better / worse if worse else None


def met_of(ratio: float | None, target: float | None, projected: bool, problem: str) -> bool | None:
    """Whether the target is met; a projection or a problem never meets one (even a figure
    without a target: its entry must not read as a measurement that merely has no goal)."""
    if projected or problem:
        return False
    if target is None:
        return None
    return ratio is not None and ratio >= target


def load_average() -> float:
    return os.getloadavg()[0]


def overloaded(loads: list[float], cpu_count: int | None = None) -> bool:
    """A load average above the core count: the figure waited for CPU, not for itself."""
    return max(loads) > (cpu_count or os.cpu_count() or 1)


class _PeakRss:
    """The highest RSS of this process while the ``with`` block runs (sampled)."""

    def __init__(self):
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.peak = 0

    def _sample(self):
        while True:
            self.peak = max(self.peak, self._process.memory_info().rss)
            if self._stop.wait(RSS_SAMPLE_SECONDS):
                return

    def __enter__(self):
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def run_side(side: Side) -> tuple[float, float]:
    """Run one side once: its measure and the peak RSS (MiB) of the work."""
    with _PeakRss() as rss:
        started = time.perf_counter()
        returned = side()
        elapsed = time.perf_counter() - started
    if isinstance(returned, Sample):
        peak = returned.peak_rss_mib if returned.peak_rss_mib is not None else rss.peak / MIB
        return float(returned.value), peak
    return elapsed, rss.peak / MIB


def measure(figure: Figure, progress: Callable[[str], None] = lambda text: None) -> dict:
    """Run the figure's repeats interleaved and return its results entry."""
    measured_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    loads = [load_average()]
    values: dict[str, list[float]] = {"ours": [], "baseline": []}
    peaks: dict[str, float] = {}
    order = interleaved_order(figure.repeats, figure.baseline is not None)
    for side_name in order:
        side = figure.ours if side_name == "ours" else figure.baseline
        value, peak = run_side(side)
        values[side_name].append(value)
        peaks[side_name] = max(peaks.get(side_name, 0.0), peak)
    loads.append(load_average())
    problem = figure.check() if figure.check else ""
    ours = summary(values["ours"])
    baseline = summary(values["baseline"]) if values["baseline"] else None
    ratio = ratio_of(ours["median"], baseline and baseline["median"], figure.higher_is_better)
    entry = result_entry(
        figure,
        ours=ours,
        baseline=baseline,
        ratio=ratio,
        peaks=peaks,
        loads=loads,
        problem=problem,
        order=order,
        measured_at=measured_at,
    )
    text = f"{figure.id}: ours {format_value(ours['median'], figure.unit)}"
    if baseline:
        text += f", baseline {format_value(baseline['median'], figure.unit)}"
    if ratio is not None:
        text += f", {ratio:.3g}x"
    if figure.target is not None:
        text += f" (target {figure.target:.3g}x: {'met' if entry['met'] else 'NOT met'})"
    progress(text)
    return entry


def result_entry(
    figure: Figure, *, ours, baseline, ratio, peaks, loads, problem, order, measured_at
) -> dict:
    """One entry of results.json's ``figures`` (the contract of issue 15). The entry carries
    its own start time and load: a selection's figures are merged into an earlier run's."""
    return {
        "id": figure.id,
        "measured_at": measured_at,
        "title": figure.title,
        "unit": figure.unit,
        "higher_is_better": figure.higher_is_better,
        "ours": ours["median"],
        "baseline": baseline["median"] if baseline else None,
        "baseline_name": figure.baseline_name,
        "ratio": ratio,
        "target": figure.target,
        "met": met_of(ratio, figure.target, figure.projected, problem),
        "repeats": figure.repeats,
        "iqr": ours["iqr"],
        "min": ours["min"],
        "ours_values": ours["values"],
        "baseline_stats": baseline,
        "peak_rss_mib": {"ours": peaks.get("ours"), "baseline": peaks.get("baseline")},
        "projected": figure.projected,
        "load": {"before": loads[0], "after": loads[-1], "overloaded": overloaded(loads)},
        "order": order,
        "curve": figure.curve,
        "x": figure.x,
        "note": "; ".join(text for text in (problem, figure.note) if text),
    }


def missing_entry(figure_id: str, reason: str) -> dict:
    """A required figure nothing measured: reported, never met."""
    return {
        "id": figure_id,
        "measured_at": None,
        "title": figure_id,
        "unit": "",
        "higher_is_better": False,
        "ours": None,
        "baseline": None,
        "baseline_name": "",
        "ratio": None,
        "target": None,
        "met": False,
        "repeats": 0,
        "iqr": None,
        "min": None,
        "ours_values": [],
        "baseline_stats": None,
        "peak_rss_mib": {"ours": None, "baseline": None},
        "projected": False,
        "load": None,
        "order": [],
        "curve": None,
        "x": None,
        "note": f"not measured: {reason}",
    }


def format_value(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10 or float(value).is_integer():
        text = f"{value:.1f}".removesuffix(".0")
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def measure_all(
    declared: Iterator[Figure],
    progress: Callable[[str], None] = print,
    wanted: Wanted = every_figure,
) -> Iterator[dict]:
    """Measure each wanted figure as the module yields it (its fixtures still open)."""
    for figure in declared:
        if wanted(figure.id):
            yield measure(figure, progress)
