"""The real `make dev` (the Makefile's own command: webserver + daemon) on a free local port
(``ports.launch_on_free_port``: started again on another when one was taken meanwhile) with
a temporary instance and catalog, for the modules that test through it
(test_dagster_dev.py, test_operations_doc.py, cli/test_progress_under_dagster_dev.py,
alerts/test_freshness_under_make_dev.py): one per module, it takes seconds to start."""

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zquant_pipelines.constants import ENV_TUSHARE_API_URL, ENV_TUSHARE_TOKEN, REPO_ROOT
from zquant_pipelines.instance_home import prepare_home
from zquant_pipelines_tests.support.ports import launch_on_free_port, start_logged, stop_group
from zquant_pipelines_tests.support.webserver_probes import (
    START_TIMEOUT_SECONDS,
    TUSHARE_TOKEN,
    location_loaded,
)

# A background job of a non-interactive shell (`make dev &` in a script, nohup) starts with
# SIGINT ignored, and an ignored signal survives exec: this wrapper does the same.
SIGINT_IGNORED_WRAPPER = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN);"
    " os.execv(sys.argv[1], sys.argv[1:])"
)


def make_dev_argv(port: int) -> list[str]:
    """The command of the Makefile's `dev` target, with this venv's python, on ``port``."""
    lines = (REPO_ROOT / "Makefile").read_text().splitlines()
    recipe = shlex.split(lines[lines.index("dev: home") + 1])
    program = recipe[0].removeprefix("$(BIN)/")
    argv = [sys.executable] if program == "python" else [sys.executable, "-m", program]
    argv += recipe[1:]
    # DESIGN's contract: the UI on loopback port 3000.
    assert argv[argv.index("-h") + 1] == "127.0.0.1" and argv[argv.index("-p") + 1] == "3000"
    argv[argv.index("-p") + 1] = str(port)
    return argv


@contextmanager
def serve_make_dev(
    root: Path,
    tushare_api_url: str,
    catalog: str,
    sigint_ignored: bool = False,
    stop_timeout: float = 60,
) -> Iterator[str]:
    """`make dev` on a free port, serving ``catalog`` (a tasks.yaml's text) from an instance
    under ``root`` (its log: ``root / "dagster_dev.log"``); yields its URL. While it serves,
    this process's DAGSTER_HOME and ZQUANT_TASKS_FILE are make dev's. ``sigint_ignored``
    starts it as a background job of a script would be (``SIGINT_IGNORED_WRAPPER``); it is
    stopped with SIGTERM, SIGKILL after ``stop_timeout`` seconds (``stop_group``)."""
    tasks_file = root / "tasks.yaml"
    tasks_file.write_text(catalog)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(prepare_home(root / "dagster_home")),
        "ZQUANT_TASKS_FILE": str(tasks_file),
        "ZQUANT_DATA_DIR": str(root / "data"),
        ENV_TUSHARE_TOKEN: TUSHARE_TOKEN,
        ENV_TUSHARE_API_URL: tushare_api_url,
    }
    env.pop("ZQUANT_DAGSTER_URL", None)
    log_path = root / "dagster_dev.log"

    def launch(port: int) -> subprocess.Popen:
        argv = make_dev_argv(port)
        if sigint_ignored:
            argv = [sys.executable, "-c", SIGINT_IGNORED_WRAPPER, *argv]
        return start_logged(argv, log_path, cwd=REPO_ROOT, env=env)

    process, port = launch_on_free_port(
        launch,
        log_path.read_text,
        lambda port: location_loaded(f"http://127.0.0.1:{port}"),
        stop_group,
        "make dev",
        START_TIMEOUT_SECONDS,
    )
    old = {k: os.environ.get(k) for k in ("ZQUANT_TASKS_FILE", "DAGSTER_HOME")}
    os.environ.update({k: env[k] for k in old})
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stop_group(process, stop_timeout)
