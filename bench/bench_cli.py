"""Benchmark: how long `zquant --help` takes, against `python -c "import dagster"`.

Both are real processes started the way a user starts them (the installed console script;
the venv's interpreter), run alternately so both see the same machine load, and the
medians compared. Issue 13 asks --help to take at most a quarter of Dagster's import: the
CLI parses argv before it loads Dagster.

Run: ``.venv/bin/python -m bench.bench_cli [--repeats R]``
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_REPEATS = 7
ZQUANT = Path(sys.executable).parent / "zquant"
COMMANDS = {
    "zquant_help": [str(ZQUANT), "--help"],
    "import_dagster": [sys.executable, "-c", "import dagster"],
}


def wall_seconds(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def run(repeats: int = DEFAULT_REPEATS) -> dict:
    """Wall seconds of each command, ``repeats`` times interleaved, and their medians."""
    if repeats < 1:
        raise ValueError(f"repeats must be positive, got {repeats}")
    samples = {name: [] for name in COMMANDS}
    # One untimed round first: the files of both are in the page cache for every timed one.
    for argv in COMMANDS.values():
        wall_seconds(argv)
    for _ in range(repeats):
        for name, argv in COMMANDS.items():
            samples[name].append(wall_seconds(argv))
    medians = {name: statistics.median(times) for name, times in samples.items()}
    print(
        f"zquant --help {medians['zquant_help']:.3f} s,"
        f" import dagster {medians['import_dagster']:.3f} s (medians of {repeats})"
    )
    return {"repeats": repeats, "samples": samples, "median_seconds": medians}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    run(parser.parse_args().repeats)
