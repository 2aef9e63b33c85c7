"""The run_script action: scripts of the scripts folder (ZQUANT_SCRIPTS_DIR) run under
dagster-pipes with an argv list and no shell, in an allow-listed environment; paths out of
the folder are refused; a script past its timeout is killed with everything it started, also
processes that left its session."""

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from zquant_pipelines.constants import ENV_SCRIPTS_DIR, ENV_TUSHARE_TOKEN, ENV_WAREHOUSE_URL
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
# Shows its whole environment everywhere a script's words can land: stdout (compute logs),
# the run's event log (pipes) and a file the test reads.
PRINT_ENV = """
    import json, os, sys
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        print(json.dumps(dict(os.environ)), flush=True)
        pipes.log.info(json.dumps(dict(os.environ)))
        open(sys.argv[1], "w").write(json.dumps(dict(os.environ)))
"""
# Starts a child that leaves the script's session (setsid) and sleeps, writes both pids;
# then sleeps itself ("stay") or exits at once ("exit"), leaving the child behind.
ESCAPER = """
    import os, subprocess, sys, time
    from pathlib import Path

    child = subprocess.Popen(
        [sys.executable, "-c", "import os, time; os.setsid(); time.sleep(120)"]
    )
    while os.getsid(child.pid) != child.pid:
        time.sleep(0.01)
    Path(sys.argv[1]).write_text(f"{os.getpid()} {child.pid}")
    if sys.argv[2] == "stay":
        time.sleep(120)
"""
SECRET_TOKEN = "tok-3f9a1c7e5b"
SECRET_PASSWORD = "pw-8d2e6b4a"
SCRIPT_SETTING = "ZQUANT_SCRIPT_GREETING"


@pytest.fixture
def scripts(tmp_path, monkeypatch):
    folder = tmp_path / "scripts"
    folder.mkdir()
    sources = [
        ("hello.py", HELLO),
        ("sleeper.py", SLEEPER),
        ("failing.py", FAILING),
        ("print_env.py", PRINT_ENV),
        ("escaper.py", ESCAPER),
    ]
    for name, source in sources:
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


def files_containing(folder: Path, text: str) -> list[Path]:
    return [
        path for path in folder.rglob("*") if path.is_file() and text.encode() in path.read_bytes()
    ]


def test_a_script_gets_no_secret_but_the_variables_its_task_names(
    scripts, resources, tmp_path, monkeypatch
):
    monkeypatch.setenv(ENV_TUSHARE_TOKEN, SECRET_TOKEN)
    monkeypatch.setenv(ENV_WAREHOUSE_URL, f"postgresql://zquant:{SECRET_PASSWORD}@db:5432/wh")
    monkeypatch.setenv(SCRIPT_SETTING, "ni hao")
    env_file = tmp_path / "env.json"
    home = tmp_path / "home"
    home.mkdir()

    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = run_script(
            resources, instance, "print_env.py", args=[str(env_file)], env=[SCRIPT_SETTING]
        )
        assert result.success
        logged = "\n".join(log_messages(instance, result.run_id))

    seen = json.loads(env_file.read_text())
    assert seen[SCRIPT_SETTING] == "ni hao"
    assert {"PATH", "DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"} <= set(seen)
    assert ENV_TUSHARE_TOKEN not in seen and ENV_WAREHOUSE_URL not in seen
    assert SCRIPT_SETTING in logged and SECRET_TOKEN not in logged
    # Compute logs, event log and run storage all live under the instance's home.
    assert files_containing(home, SCRIPT_SETTING), "the script's output was not captured"
    assert not files_containing(home, SECRET_TOKEN)
    assert not files_containing(home, SECRET_PASSWORD)


def test_a_secret_is_passed_only_when_named(scripts, resources, instance, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_TUSHARE_TOKEN, SECRET_TOKEN)
    env_file = tmp_path / "env.json"

    result = run_script(
        resources, instance, "print_env.py", args=[str(env_file)], env=[ENV_TUSHARE_TOKEN]
    )

    assert result.success
    assert json.loads(env_file.read_text())[ENV_TUSHARE_TOKEN] == SECRET_TOKEN


@pytest.mark.parametrize("names", [["PATH=/tmp"], ["has space"], [""], "TUSHARE_TOKEN"])
def test_env_takes_variable_names_only(names):
    with pytest.raises(CatalogError) as caught:
        parse_catalog({"tasks": [script_task("hello.py", env=names)]})

    (problem,) = caught.value.problems
    assert "config.env" in problem and repr(names if isinstance(names, str) else names[0]) in (
        problem
    )


def wait_until_gone(*pids: int) -> None:
    deadline = time.monotonic() + 10
    while any(process_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_child_that_left_the_session_is_killed_on_timeout(scripts, resources, instance, tmp_path):
    pids_file = tmp_path / "pids"

    result = run_script(
        resources, instance, "escaper.py", args=[str(pids_file), "stay"], timeout_seconds=2
    )

    assert not result.success
    assert "ran past its timeout" in failure_message(result)
    script_pid, escaped_pid = map(int, pids_file.read_text().split())
    wait_until_gone(script_pid, escaped_pid)
    assert not process_alive(script_pid)
    assert not process_alive(escaped_pid), "the setsid child outlived the script's timeout"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_child_left_behind_by_a_finished_script_is_killed(scripts, resources, instance, tmp_path):
    pids_file = tmp_path / "pids"

    result = run_script(resources, instance, "escaper.py", args=[str(pids_file), "exit"])

    assert result.success
    _, escaped_pid = map(int, pids_file.read_text().split())
    wait_until_gone(escaped_pid)
    assert not process_alive(escaped_pid), "the setsid child outlived its script"
