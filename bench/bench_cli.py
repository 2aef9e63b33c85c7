"""Benchmark: how long `zquant --help` takes, against `python -c "import dagster"`.

Both are real processes started the way a user starts them (the installed console script;
the venv's interpreter); the harness runs them interleaved so both see the same machine
load. Issue 13 asks --help to take at most a quarter of Dagster's import (target: ratio
>= 4): the CLI parses argv before it loads Dagster. Each side reports its own process's
peak RSS.

Figure: ``cli.help_vs_import_dagster``.
Run: ``.venv/bin/python -m bench --only cli [--size quick|default|full]``
"""

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from bench.harness import (
    MIB,
    MIN_REPEATS,
    RSS_SAMPLE_SECONDS,
    Figure,
    Sample,
    Wanted,
    every_figure,
    select,
)

ZQUANT_HELP = [str(Path(sys.executable).parent / "zquant"), "--help"]
IMPORT_DAGSTER = [sys.executable, "-c", "import dagster"]
# Processes of a second or two: more rounds than the minimum cost little.
REPEATS = {"quick": MIN_REPEATS, "default": 9, "full": 15}
TARGET = 4


def timed_process(argv: list[str]) -> Sample:
    """Wall seconds of one run of ``argv`` and its peak RSS, sampled while it runs (wait4's
    ru_maxrss would count the pages the child shares with this process before its exec)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watched = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            peak = max(peak, watched.memory_info().rss)
        time.sleep(RSS_SAMPLE_SECONDS)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, argv)
    return Sample(seconds, peak_rss_mib=peak / MIB)


def figures(size: str = "default", wanted: Wanted = every_figure) -> Iterator[Figure]:
    declared = select(
        [
            Figure(
                id="cli.help_vs_import_dagster",
                title='`zquant --help` against `python -c "import dagster"`',
                ours=lambda: timed_process(ZQUANT_HELP),
                baseline=lambda: timed_process(IMPORT_DAGSTER),
                baseline_name='python -c "import dagster"',
                target=TARGET,
                repeats=REPEATS[size],
            )
        ],
        wanted,
    )
    if declared:
        # One untimed run of each first: both find their files in the page cache.
        timed_process(ZQUANT_HELP)
        timed_process(IMPORT_DAGSTER)
    yield from declared
