"""`zquant terminate` as a real process against a running run_script run, on the instance
and through a webserver (--url): the run ends CANCELED and no process of the script is
left, also a child that left the script's session.
"""

import json
import os
import subprocess
import sys
import textwrap

import dagster as dg
import psutil
import pytest

from zquant_pipelines.operations.local import OwnRunDequeuer
from zquant_pipelines_tests.support.operations_environment import (
    operations_environment,
    serving,
)
from zquant_pipelines_tests.support.waiting import wait_until

VENV_BIN = os.path.dirname(sys.executable)
CATALOG = textwrap.dedent(
    """
    tasks:
      - name: sleeper
        task_type: manual_task
        max_retries: 0
        config: {task_action: run_script, script: sleeper.py}
    """
)
# Starts a child that leaves its session and sleeps, writes both pids, then sleeps itself.
SLEEPER = """
import os, subprocess, sys, time
from pathlib import Path

child = subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); time.sleep(600)"])
while os.getsid(child.pid) != child.pid:
    time.sleep(0.01)
Path(sys.argv[1]).write_text(f"{os.getpid()} {child.pid}")
time.sleep(600)
"""
START_SECONDS = 180
END_SECONDS = 120


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("terminate")
    with operations_environment(root, CATALOG, {"sleeper.py": SLEEPER}) as environment:
        yield environment


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def url(env):
    with serving(env.workspace) as base_url:
        yield base_url


def zquant(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [os.path.join(VENV_BIN, "zquant"), *argv],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("mode", ["local", "url"])
def test_terminate_ends_a_running_script_and_its_whole_tree(env, request, mode):
    url_args = ["--url", request.getfixturevalue("url")] if mode == "url" else []
    pids_file = env.root / "scripts" / f"pids-{mode}.txt"
    with env.local_operations() as ops:
        run_id = ops.trigger(ops.catalog(), "sleeper", {"args": [pids_file.name]})
    # Launched as the daemon would launch it: a run worker of the code server.
    with OwnRunDequeuer(run_id) as dequeuer:
        list(dequeuer.run_iteration(env.workspace))
    wait_until(pids_file.exists, START_SECONDS, "the script to start its child")
    pids = [int(pid) for pid in pids_file.read_text().split()]
    assert all(alive(pid) for pid in pids)
    assert env.instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED

    completed = zquant(*url_args, "terminate", run_id, "--json")
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["run_id"] == run_id

    wait_until(
        lambda: env.instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.CANCELED,
        END_SECONDS,
        f"run {run_id} to end CANCELED",
    )
    wait_until(
        lambda: not any(alive(pid) for pid in pids), END_SECONDS, "the script's processes to end"
    )

    # A second terminate is refused, naming the run (exit 2: nothing to terminate).
    again = zquant(*url_args, "terminate", run_id)
    assert again.returncode == 2
    assert f"run {run_id} already ended CANCELED" in again.stderr
