"""`zquant` parses its command line before it loads Dagster: help and usage errors print
from the standard library and the light modules alone (issue 13, "the CLI starts fast";
the time itself is a figure of `make bench`, bench/bench_cli.py).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ZQUANT = Path(sys.executable).parent / "zquant"
# Each costs from a tenth of a second (pydantic) to most of a second (dagster, pandas).
HEAVY_MODULES = {
    "dagster",
    "pandas",
    "pydantic",
    "sqlalchemy",
    "celery",
    "apprise",
    "tushare",
    "zquant_pipelines.operations",
    "zquant_pipelines.demo",
}
COMMAND_DEADLINE_SECONDS = 60


def imported_modules(*argv: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """The installed `zquant` run with ``argv``, and every module it imported (Python's
    ``-X importtime`` report, one ``import time: self | cumulative | name`` line each)."""
    completed = subprocess.run(
        [str(ZQUANT), *argv],
        env=os.environ | {"PYTHONPROFILEIMPORTTIME": "1"},
        capture_output=True,
        text=True,
        timeout=COMMAND_DEADLINE_SECONDS,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in completed.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    return completed, modules


@pytest.mark.parametrize(
    ("argv", "exit_code"),
    [
        (("--help",), 0),
        (("tasks", "list", "--help"), 0),
        # A usage error: argparse refuses it before any command runs.
        (("trigger",), 2),
    ],
)
def test_parsing_loads_no_heavy_module(argv, exit_code):
    completed, modules = imported_modules(*argv)

    assert completed.returncode == exit_code, completed.stderr[-2000:]
    assert "zquant_pipelines.cli.parser" in modules
    assert sorted(modules & HEAVY_MODULES) == []


def test_a_command_loads_its_back_end(tmp_path):
    # The same report sees the heavy modules once a command runs (the check above can fail).
    completed, modules = imported_modules("tasks", "validate", str(tmp_path / "missing.yaml"))

    assert completed.returncode == 2
    assert "missing.yaml" in completed.stdout + completed.stderr
    assert "zquant_pipelines.tasks.catalog" in modules
