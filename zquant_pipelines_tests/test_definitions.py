"""The whole code location loads from workspace.yaml as the webserver loads it."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCATION_NAME = "zquant_pipelines"


def test_workspace_loads_like_the_webserver(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        target = WorkspaceFileTarget(paths=[str(REPO_ROOT / "workspace.yaml")])
        with WorkspaceProcessContext(instance, target) as process_context:
            context = process_context.create_request_context()
            assert not context.get_code_location_error(LOCATION_NAME)
            location = context.get_code_location(LOCATION_NAME)
            repo = location.get_repository("__repository__")
            jobs = {job.name for job in repo.get_all_jobs()}
            schedules = {schedule.name for schedule in repo.get_schedules()}
            assets = {node.asset_key.to_user_string() for node in repo.get_asset_node_snaps()}
    assert "market_data_job" in jobs
    assert "market_data_after_close_schedule" in schedules
    assert {
        "stock_basic",
        "trade_cal",
        "daily",
        "adj_factor",
        "daily_basic",
        "factor_daily",
    } <= assets


def test_dagster_cli_validates_the_workspace(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    completed = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Validation successful" in completed.stdout + completed.stderr
