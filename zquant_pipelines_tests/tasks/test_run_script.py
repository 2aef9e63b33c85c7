"""The run_script action: scripts of the scripts folder (ZQUANT_SCRIPTS_DIR) run under
dagster-pipes with an argv list and no shell; paths out of the folder are refused; a script
past its timeout is killed with everything it started."""

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from zquant_pipelines.tasks.actions import ENV_SCRIPTS_DIR
from zquant_pipelines.tasks.builders import job_name
from zquant_pipelines.tasks.catalog import CatalogError, parse_catalog
from zquant_pipelines_tests.tasks.support import log_messages, task_definitions

HELLO = """
    import sys
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        pipes.log.info(f"hello from the script, argv {sys.argv[1:]!r}")
        pipes.report_custom_message({"args": sys.argv[1:], "answer": 42})
"""
# Starts a child of its own, writes both pids, then outlives any short timeout.
SLEEPER = """
    import subprocess, sys, time
    from pathlib import Path

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    Path(sys.argv[1]).write_text(f"{__import__('os').getpid()} {child.pid}")
    time.sleep(120)
"""
FAILING = """
    import sys
    sys.exit(3)
"""


@pytest.fixture
def scripts(tmp_path, monkeypatch):
    folder = tmp_path / "scripts"
    folder.mkdir()
    for name, source in [("hello.py", HELLO), ("sleeper.py", SLEEPER), ("failing.py", FAILING)]:
        (folder / name).write_text(textwrap.dedent(source))
    monkeypatch.setenv(ENV_SCRIPTS_DIR, str(folder))
    return folder


def script_task(script: str, **params) -> dict:
    return {
        "name": "script",
        "task_type": "manual_task",
        "max_retries": 0,
        "config": {"task_action": "run_script", "script": script, **params},
    }


def run_script(resources, instance, script: str, run_config=None, **params):
    job = task_definitions([script_task(script, **params)], resources).resolve_job_def(
        job_name("script")
    )
    return job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)


def failure_message(result) -> str:
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.event_specific_data.error.message


def output_metadata(result) -> dict:
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    return {key: value.value for key, value in output.event_specific_data.metadata.items()}


def test_script_logs_and_messages_reach_the_run_through_pipes(scripts, resources, instance):
    args = ["--greeting", "; rm -rf x", "$(touch pwned)", "two words"]

    result = run_script(resources, instance, "hello.py", args=args)

    assert result.success
    assert f"hello from the script, argv {args!r}" in log_messages(instance, result.run_id)
    metadata = output_metadata(result)
    assert metadata["args"] == args
    assert (metadata["answer"], metadata["returncode"], metadata["script"]) == (42, 0, "hello.py")
    assert not (scripts / "pwned").exists()


def test_shipped_hello_pipes_script_runs(resources, instance, monkeypatch):
    monkeypatch.delenv(ENV_SCRIPTS_DIR, raising=False)

    result = run_script(resources, instance, "hello_pipes.py", args=["--greeting", "ni hao"])

    assert result.success
    assert output_metadata(result)["greeting"] == "ni hao"
    assert any(m.startswith("ni hao from ") for m in log_messages(instance, result.run_id))


def test_a_failing_script_fails_the_run_with_its_exit_code(scripts, resources, instance):
    result = run_script(resources, instance, "failing.py")

    assert not result.success
    assert "script 'failing.py' exited with code 3" in failure_message(result)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("../outside.py", "must not contain '..'"),
        ("/etc/passwd", "must be a path relative to the scripts folder"),
    ],
)
def test_catalog_refuses_scripts_outside_the_folder(script, message):
    with pytest.raises(CatalogError) as caught:
        parse_catalog({"tasks": [script_task(script)]})

    (problem,) = caught.value.problems
    assert f"config.script {script!r}" in problem and message in problem


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("../outside.py", "must not contain '..'"),
        ("sub/../../outside.py", "must not contain '..'"),
        ("/tmp/outside.py", "must be a path relative to the scripts folder"),
        ("missing.py", "script 'missing.py' does not exist in"),
    ],
)
def test_run_config_cannot_reach_outside_the_folder(scripts, resources, instance, script, message):
    (scripts.parent / "outside.py").write_text("raise SystemExit('must never run')")
    run_config = {"ops": {"script": {"config": {"script": script}}}}

    result = run_script(resources, instance, "hello.py", run_config=run_config)

    assert not result.success
    assert message in failure_message(result)


def test_a_symlink_out_of_the_folder_is_refused(scripts, resources, instance, tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text("raise SystemExit('must never run')")
    (scripts / "link.py").symlink_to(outside)

    result = run_script(resources, instance, "link.py")

    assert not result.success
    message = failure_message(result)
    assert f"script 'link.py' resolves to {outside}, outside {scripts}" in message


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_script_past_its_timeout_is_killed_with_its_children(
    scripts, resources, instance, tmp_path
):
    pids_file = tmp_path / "pids"

    result = run_script(resources, instance, "sleeper.py", args=[str(pids_file)], timeout_seconds=1)

    assert not result.success
    assert "script 'sleeper.py' ran past its timeout of 1.0 s" in failure_message(result)
    script_pid, child_pid = map(int, pids_file.read_text().split())
    deadline = time.monotonic() + 10
    while (process_alive(script_pid) or process_alive(child_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(script_pid)
    assert not process_alive(child_pid), "the script's own child outlived the timeout"
    assert os.getpid() != script_pid
