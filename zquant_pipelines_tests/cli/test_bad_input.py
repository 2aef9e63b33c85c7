"""Bad input to the installed `zquant` console script, run as a real process: a one-line
error naming the option or variable and its value, the documented exit code (1 the operation
failed, 2 bad input), and never a Python traceback.

The servers that are not Dagster are real processes too: Python's own http.server (HTML
error pages) and a small server answering JSON that is not GraphQL.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zquant_pipelines.instance_home import prepare_home
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.sync.market import sync_stock_basic
from zquant_pipelines_tests.support.operations_environment import TEST_CATALOG
from zquant_pipelines_tests.support.ports import (
    accepts_connections,
    launch_on_free_port,
    start_logged,
    stop_group,
    unused_port,
)

VENV_BIN = Path(sys.executable).parent
# Deadlines for a process, not measures: starting Python and Dagster takes seconds, under
# load tens of them; a run of the sync loads the code location first.
COMMAND_DEADLINE_SECONDS = 180
SERVER_START_SECONDS = 30
# A server that answers every request with argv's status, content type and body.
FIXED_ANSWER_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port, status, content_type, body = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

class Answer(BaseHTTPRequestHandler):
    def answer(self):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body.encode())))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = answer

HTTPServer(("127.0.0.1", port), Answer).serve_forever()
"""
# Listed in the sample market (the CLI tests repair it); 999999 is no stock anywhere.
LISTED_CODE = "000047.SZ"


@pytest.fixture
def zquant_env(tmp_path) -> dict[str, str]:
    """The environment of a local `zquant`: a prepared DAGSTER_HOME, the CLI tests' catalog,
    a SQLite warehouse and the offline sample market."""
    tasks_file = tmp_path / "tasks.yaml"
    tasks_file.write_text(TEST_CATALOG)
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("TUSHARE_TOKEN", "ZQUANT_DAGSTER_URL", "DAGSTER_PG_URL")
    }
    return env | {
        "DAGSTER_HOME": str(prepare_home(tmp_path / "home")),
        "ZQUANT_TASKS_FILE": str(tasks_file),
        "ZQUANT_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}",
        "ZQUANT_DATA_DIR": str(tmp_path / "data"),
    }


def zquant(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "zquant"), *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_DEADLINE_SECONDS,
    )


def assert_refused(completed: subprocess.CompletedProcess, exit_code: int, *named: str) -> None:
    """The exit code, a short error naming each of ``named``, no traceback."""
    assert "Traceback" not in completed.stderr + completed.stdout, completed.stderr[-3000:]
    assert completed.returncode == exit_code, completed.stderr[-3000:]
    lines = completed.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, completed.stderr
    for text in named:
        assert text in completed.stderr


@pytest.fixture
def serve(tmp_path):
    """Start a server process on a free port: the base URL once it accepts connections."""
    servers = []

    def start(*argv: str) -> str:
        log_path = tmp_path / f"server_{len(servers)}.log"

        def launch(port: int) -> subprocess.Popen:
            args = [arg.replace("{port}", str(port)) for arg in argv]
            return start_logged([sys.executable, *args], log_path)

        process, port = launch_on_free_port(
            launch,
            log_path.read_text,
            accepts_connections,
            stop_group,
            "server",
            SERVER_START_SECONDS,
        )
        servers.append(process)
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        stop_group(server)


# --- zquant demo --days ------------------------------------------------------------------


@pytest.mark.parametrize("days", ["-3", "0", "1000000", "99999999999999999999"])
def test_demo_refuses_a_day_count_out_of_range(zquant_env, days):
    completed = zquant(zquant_env, "demo", "--days", days)

    assert_refused(completed, 2, "--days", days)


# --- --url that is not a Dagster webserver -----------------------------------------------


NOT_DAGSTER_SERVERS = {
    "python-http-server": ("-m", "http.server", "{port}", "--bind", "127.0.0.1"),
    "json-404": ("-c", FIXED_ANSWER_SERVER, "{port}", "404", "application/json", '{"detail": 1}'),
    "html-200": ("-c", FIXED_ANSWER_SERVER, "{port}", "200", "text/html", "<html>hi</html>"),
    "json-list": ("-c", FIXED_ANSWER_SERVER, "{port}", "200", "application/json", "[1, 2]"),
}


@pytest.mark.parametrize("server", NOT_DAGSTER_SERVERS.values(), ids=NOT_DAGSTER_SERVERS.keys())
def test_a_url_that_is_not_a_dagster_webserver_is_an_operation_failure(zquant_env, serve, server):
    url = serve(*server)

    completed = zquant(zquant_env, "--url", url, "history", "by_hand")

    assert_refused(completed, 1, f"--url {url}", "is not a Dagster webserver")


def test_a_url_where_nothing_listens_is_an_operation_failure(zquant_env):
    url = f"http://127.0.0.1:{unused_port()}"

    completed = zquant(zquant_env, "stats", "--url", url)

    assert_refused(completed, 1, f"cannot reach the Dagster webserver at {url}:", "make dev")


def test_a_stats_rebuild_over_a_url_is_refused_before_any_request(zquant_env):
    # Nothing listens there: the refusal must come before any request.
    url = f"http://127.0.0.1:{unused_port()}"

    completed = zquant(zquant_env, "stats", "--rebuild", "--url", url)

    assert_refused(completed, 1, "stats --rebuild", "without --url")


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999", "ftp://host"])
def test_a_url_that_is_not_an_address_is_bad_input(zquant_env, url):
    completed = zquant(zquant_env, "history", "by_hand", "--url", url)

    assert_refused(completed, 2, "--url", url)


# --- DAGSTER_HOME ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "file", "relative"])
def test_a_dagster_home_that_is_not_a_directory_is_bad_input(zquant_env, tmp_path, kind):
    home = {"missing": str(tmp_path / "no_such_home"), "relative": "relative/home"}.get(kind)
    if kind == "file":
        home = str(tmp_path / "a_file")
        Path(home).write_text("not a directory")

    completed = zquant(zquant_env | {"DAGSTER_HOME": home}, "history", "by_hand")

    assert_refused(completed, 2, f"DAGSTER_HOME {home!r}")


def test_demo_refuses_a_dagster_home_that_is_a_file(zquant_env, tmp_path):
    home = tmp_path / "a_file"
    home.write_text("not a directory")

    completed = zquant(zquant_env | {"DAGSTER_HOME": str(home)}, "demo", "--days", "1")

    assert_refused(completed, 2, f"DAGSTER_HOME {str(home)!r}")


def test_a_dagster_home_with_a_broken_dagster_yaml_is_bad_input(zquant_env, tmp_path):
    home = tmp_path / "broken_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("storage: [unclosed\n")

    completed = zquant(zquant_env | {"DAGSTER_HOME": str(home)}, "history", "by_hand")

    assert_refused(completed, 2, f"DAGSTER_HOME {str(home)!r}", "dagster.yaml")


# --- sync-daily of codes the stock list does not hold -------------------------------------


def stored_bars(warehouse_url: str) -> int:
    warehouse = Warehouse(url=warehouse_url)
    try:
        return warehouse.count_rows("daily")
    finally:
        warehouse.dispose()


def sync_the_stock_list(warehouse_url: str) -> None:
    warehouse = Warehouse(url=warehouse_url)
    try:
        sync_stock_basic(SampleMarketSource(), warehouse)
    finally:
        warehouse.dispose()


SYNC_RANGE = ("--start-date", "20240102", "--end-date", "20240110")


def test_sync_daily_names_the_codes_the_stock_list_does_not_hold(zquant_env):
    sync_the_stock_list(zquant_env["ZQUANT_WAREHOUSE_URL"])

    completed = zquant(zquant_env, "sync-daily", "--codelist", "000047,999999", *SYNC_RANGE)

    output = completed.stdout + completed.stderr
    assert completed.returncode == 1, output[-3000:]
    assert "1 of 2 codes are not in the stock list (stock_basic): 999999.SH;" in output
    assert stored_bars(zquant_env["ZQUANT_WAREHOUSE_URL"]) == 0  # nothing half-written


def test_sync_daily_before_the_stock_list_is_synced_says_so(zquant_env):
    completed = zquant(zquant_env, "sync-daily", "--ts-code", LISTED_CODE, *SYNC_RANGE)

    output = completed.stdout + completed.stderr
    assert completed.returncode == 1, output[-3000:]
    assert f"1 of 1 codes are not in the stock list (stock_basic): {LISTED_CODE};" in output
    assert "stock_basic is empty: sync the stock list first" in output


def test_sync_daily_of_listed_codes_still_succeeds(zquant_env):
    sync_the_stock_list(zquant_env["ZQUANT_WAREHOUSE_URL"])

    completed = zquant(zquant_env, "sync-daily", "--symbol", LISTED_CODE[:6], *SYNC_RANGE)

    assert completed.returncode == 0, completed.stdout + completed.stderr[-3000:]
    assert stored_bars(zquant_env["ZQUANT_WAREHOUSE_URL"]) > 0
