"""The alerts under a real `dagster-daemon run`: a task run queued with `zquant trigger` fails,
the daemon's tick of the run failure sensor sends one message to a local HTTP receiver and a
local SMTP server, and its later ticks send nothing more."""

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from zquant_pipelines.alerts.definitions import RUN_FAILURE_SENSOR
from zquant_pipelines.constants import ENV_ALERT_URLS, ENV_UI_URL
from zquant_pipelines.operations.base import WORKSPACE_FILE
from zquant_pipelines_tests.support.alert_receivers import alert_receivers, sensor_tick_count
from zquant_pipelines_tests.support.operations_environment import operations_environment
from zquant_pipelines_tests.support.waiting import wait_until

VENV_BIN = os.path.dirname(sys.executable)
UI_URL = "http://dagster.example.com"
# The sensor ticks every 30 s; a run is a fresh process importing Dagster and the location.
DEADLINE_SECONDS = 300
TASK = "by_hand"  # example_task, no retries (support/operations_environment.py)

pytestmark = pytest.mark.slow


def test_a_run_failing_under_the_daemon_is_announced_once(tmp_path, monkeypatch):
    with alert_receivers() as (web, mail):
        monkeypatch.setenv(ENV_ALERT_URLS, f"{web.url},{mail.url}")
        monkeypatch.setenv(ENV_UI_URL, UI_URL)
        with operations_environment(tmp_path) as env:
            daemon = subprocess.Popen(
                [os.path.join(VENV_BIN, "dagster-daemon"), "run", "-w", str(WORKSPACE_FILE)],
                env=dict(os.environ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                # The sensor's first tick sets its cursor: later failures are announced.
                wait_until(
                    lambda: sensor_tick_count(env.instance, RUN_FAILURE_SENSOR),
                    DEADLINE_SECONDS,
                    "a first tick",
                )
                triggered = subprocess.run(
                    [os.path.join(VENV_BIN, "zquant"), "trigger", TASK, "--json"]
                    + ["--config", json.dumps({"fail": True})],
                    env=dict(os.environ),
                    capture_output=True,
                    text=True,
                    timeout=DEADLINE_SECONDS,
                )
                assert triggered.returncode == 0, triggered.stderr
                run_id = json.loads(triggered.stdout)["run_id"]
                wait_until(lambda: web.received and mail.received, DEADLINE_SECONDS, "an alert")
                ticks_at_alert = sensor_tick_count(env.instance, RUN_FAILURE_SENSOR)
                wait_until(
                    lambda: sensor_tick_count(env.instance, RUN_FAILURE_SENSOR) > ticks_at_alert,
                    DEADLINE_SECONDS,
                    "a tick after the alert",
                )
                run = env.instance.get_run_by_id(run_id)
            finally:
                daemon.terminate()
                daemon.wait(timeout=DEADLINE_SECONDS)
        web_texts, mail_texts = web.texts(), mail.texts()

    assert run.status == dg.DagsterRunStatus.FAILURE
    for texts in (web_texts, mail_texts):
        (text,) = texts
        assert f"Task: {TASK}" in text
        assert f"Run: {run_id}" in text
        assert "Failed step: " in text
        assert "Error: Failure: example_task failed on attempt 1 as configured" in text
        assert f"Link: {UI_URL}/runs/{run_id}" in text
