"""The whole code location loads from workspace.yaml as the webserver loads it, and from the
repo root with no -m/-w (pyproject.toml's [tool.dagster]) as a new user's `dagster` loads it."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster._cli.workspace.cli_target import _get_workspace_load_target_from_cli_opts
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import PyProjectFileTarget, WorkspaceFileTarget
from dagster_shared.cli import WorkspaceOpts

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


def dagster_cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """`dagster ARGS` run in the repo root, with a DAGSTER_HOME of its own in tmp_path."""
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return subprocess.run(
        [sys.executable, "-m", "dagster", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dagster_cli_validates_the_workspace(tmp_path):
    completed = dagster_cli(tmp_path, "definitions", "validate", "-w", "workspace.yaml")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Validation successful" in completed.stdout + completed.stderr


def test_dagster_with_no_target_loads_the_location_pyproject_names(monkeypatch):
    """Dagster's own choice for a bare `dagster dev` / `dagster job list` in the repo root: the
    [tool.dagster] block, naming the module and location workspace.yaml names."""
    monkeypatch.chdir(REPO_ROOT)
    target = _get_workspace_load_target_from_cli_opts(WorkspaceOpts())
    assert isinstance(target, PyProjectFileTarget)
    [origin] = target.create_origins()
    [from_workspace] = WorkspaceFileTarget(paths=["workspace.yaml"]).create_origins()
    assert origin.location_name == from_workspace.location_name == LOCATION_NAME
    assert origin.loadable_target_origin.module_name == "zquant_pipelines.definitions"
    assert origin.loadable_target_origin.module_name == (
        from_workspace.loadable_target_origin.module_name
    )


def test_dagster_job_list_from_the_repo_root_needs_no_options(tmp_path):
    completed = dagster_cli(tmp_path, "job", "list")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "market_data_job" in completed.stdout.split()


def test_pyproject_leaves_the_package_to_setup_py(tmp_path):
    """pyproject.toml has no [build-system]: pip builds with setup.py, which ships the code
    location and its console script, and not the tests."""
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "install", ".", "--no-deps"]
        + ["--quiet", "--target", str(tmp_path / "site")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    site = tmp_path / "site"
    assert (site / "zquant_pipelines" / "definitions.py").exists()
    assert (site / "bin" / "zquant").exists()
    assert not (site / "zquant_pipelines_tests").exists()
