"""End to end against the real `make dev` (webserver + daemon, the Makefile's own command) on
a free local port, with a temporary DAGSTER_HOME, through raw GraphQL and through
`zquant --url`: trigger and wait, history and stats, disable/enable read back through
GraphQL, pause holding a run until resume while the daemon serves other runs, a
code-location reload; secrets shown by name only; and foreign pages refused (CSRF)."""

import base64
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from zquant_pipelines import cli
from zquant_pipelines.constants import ENV_TUSHARE_API_URL, ENV_TUSHARE_TOKEN
from zquant_pipelines.instance_home import prepare_home
from zquant_pipelines.operations.base import REPOSITORY_NAME, location_name
from zquant_pipelines.operations.graphql import DOCUMENTS, GraphQLOperations
from zquant_pipelines.tasks.builders import job_name
from zquant_pipelines_tests.operations.environment import TEST_CATALOG

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 180
RUN_TIMEOUT_SECONDS = 180
# Secrets the server's environment holds: GraphQL (what the UI shows) must name, not show them.
TUSHARE_TOKEN = "tushare-token-never-shown"
GATEWAY_PASSWORD = "gateway-password-never-shown"
TUSHARE_API_URL = f"http://gw-user:{GATEWAY_PASSWORD}@127.0.0.1:9/tushare"
FOREIGN_ORIGIN = "http://evil.example"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def location_loaded(url: str) -> bool:
    try:
        reply = requests.post(
            f"{url}/graphql",
            json={
                "query": "{ workspaceOrError { ... on Workspace { locationEntries {"
                " locationOrLoadError { __typename } } } } }"
            },
            timeout=5,
        )
    except requests.ConnectionError:
        return False
    entries = reply.json()["data"]["workspaceOrError"].get("locationEntries") or []
    kinds = [e["locationOrLoadError"] and e["locationOrLoadError"]["__typename"] for e in entries]
    assert "PythonError" not in kinds, reply.text
    return kinds == ["RepositoryLocation"]


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


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory):
    root = tmp_path_factory.mktemp("dagster_dev")
    tasks_file = root / "tasks.yaml"
    tasks_file.write_text(TEST_CATALOG)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(prepare_home(root / "dagster_home")),
        "ZQUANT_TASKS_FILE": str(tasks_file),
        "ZQUANT_DATA_DIR": str(root / "data"),
        ENV_TUSHARE_TOKEN: TUSHARE_TOKEN,
        ENV_TUSHARE_API_URL: TUSHARE_API_URL,
    }
    env.pop("ZQUANT_DAGSTER_URL", None)
    port = free_port()
    log = (root / "dagster_dev.log").open("w")
    process = subprocess.Popen(
        make_dev_argv(port),
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: process.poll() is None and location_loaded(url) or process.poll() is not None,
            START_TIMEOUT_SECONDS,
            "make dev to serve the code location",
        )
        assert process.poll() is None, (root / "dagster_dev.log").read_text()[-3000:]
        old = {k: os.environ.get(k) for k in ("ZQUANT_TASKS_FILE", "DAGSTER_HOME")}
        os.environ.update({k: env[k] for k in old})
        yield url
    finally:
        for key, value in locals().get("old", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def zquant(url, capsys, *argv) -> dict:
    capsys.readouterr()
    code = cli.main(["--url", url, "--json", *argv])
    out, err = capsys.readouterr()
    assert code == 0, (argv, out, err)
    return json.loads(out)


def run_status(url, capsys, run_id: str) -> str:
    return zquant(url, capsys, "history", "--run", run_id)["run"]["status"].upper()


def wait_for_status(url, capsys, run_id: str, status: str) -> None:
    wait_until(
        lambda: run_status(url, capsys, run_id) == status,
        RUN_TIMEOUT_SECONDS,
        f"run {run_id} to reach {status}",
    )


def test_trigger_wait_history_and_stats(dagster_dev, capsys):
    run_id = zquant(dagster_dev, capsys, "trigger", "by_hand")["run_id"]
    wait_for_status(dagster_dev, capsys, run_id, "SUCCESS")
    page = zquant(dagster_dev, capsys, "history", "by_hand")
    assert page["total"] >= 1 and run_id in [r["run_id"] for r in page["runs"]]
    stats = zquant(dagster_dev, capsys, "stats", "by_hand")
    row = next(t for t in stats["tasks"] if t["task"] == "by_hand")
    assert row["success_count"] >= 1 and row["success_rate"] == 1.0


def schedule_status(url: str, name: str) -> str:
    with GraphQLOperations(url) as ops:
        data = ops.execute(
            DOCUMENTS["TriggerStates"],
            {
                "repositorySelector": {
                    "repositoryLocationName": "zquant_pipelines",
                    "repositoryName": "__repository__",
                }
            },
        )
    schedules = data["repositoryOrError"]["schedules"]
    return next(s["scheduleState"]["status"] for s in schedules if s["name"] == name)


def test_disable_and_enable_read_back_through_graphql(dagster_dev, capsys):
    assert schedule_status(dagster_dev, "nightly_schedule") == "RUNNING"
    zquant(dagster_dev, capsys, "disable", "nightly")
    assert schedule_status(dagster_dev, "nightly_schedule") == "STOPPED"
    zquant(dagster_dev, capsys, "enable", "nightly")
    assert schedule_status(dagster_dev, "nightly_schedule") == "RUNNING"


def test_pause_holds_a_run_until_resume(dagster_dev, capsys):
    zquant(dagster_dev, capsys, "pause", "held")
    held_run = zquant(dagster_dev, capsys, "trigger", "held")["run_id"]
    # The daemon keeps serving the queue: a run of another task, asked for later, finishes...
    other_run = zquant(dagster_dev, capsys, "trigger", "by_hand")["run_id"]
    wait_for_status(dagster_dev, capsys, other_run, "SUCCESS")
    # ...while the paused task's run is still held.
    assert run_status(dagster_dev, capsys, held_run) == "QUEUED"
    zquant(dagster_dev, capsys, "resume", "held")
    wait_for_status(dagster_dev, capsys, held_run, "SUCCESS")


def test_reload_the_code_location(dagster_dev, capsys):
    capsys.readouterr()
    assert cli.main(["--url", dagster_dev, "reload"]) == 0
    assert location_loaded(dagster_dev)


# --- secrets: GraphQL (the UI's resource pages) names the variables --------------------------

RESOURCE_DETAILS = """
query Resources($selector: RepositorySelector!) {
  allTopLevelResourceDetailsOrError(repositorySelector: $selector) {
    __typename
    ... on ResourceDetailsList { results { name configuredValues { key value type } } }
  }
  utilizedEnvVarsOrError(repositorySelector: $selector) {
    __typename
    ... on EnvVarWithConsumersList { results { envVarName } }
  }
}
"""


def resource_values(url: str, auth=None) -> tuple[dict, str]:
    """{(resource, key): (type, value)} as the UI shows them, and the raw reply."""
    selector = {"repositoryLocationName": location_name(), "repositoryName": REPOSITORY_NAME}
    reply = requests.post(
        f"{url}/graphql",
        json={"query": RESOURCE_DETAILS, "variables": {"selector": selector}},
        auth=auth,
        timeout=60,
    )
    assert reply.status_code == 200, reply.text[:500]
    details = reply.json()["data"]["allTopLevelResourceDetailsOrError"]
    values = {
        (resource["name"], value["key"]): (value["type"], value["value"])
        for resource in details["results"]
        for value in resource["configuredValues"]
    }
    return values, reply.text


def assert_secrets_shown_by_name(url: str, auth=None) -> None:
    values, text = resource_values(url, auth)
    assert values[("market_source", "token")] == ("ENV_VAR", ENV_TUSHARE_TOKEN)
    assert values[("market_source", "api_url")] == ("ENV_VAR", ENV_TUSHARE_API_URL)
    for secret in (TUSHARE_TOKEN, GATEWAY_PASSWORD, TUSHARE_API_URL):
        assert secret not in text


def test_resources_show_the_variable_names_not_the_secrets(dagster_dev):
    assert_secrets_shown_by_name(dagster_dev)


# --- CSRF: a page from another site must not change anything ------------------------------


def concurrency_keys(url: str, auth=None) -> set[str]:
    reply = requests.post(
        f"{url}/graphql", json={"query": DOCUMENTS["ConcurrencyLimits"]}, auth=auth, timeout=60
    )
    assert reply.status_code == 200, reply.text[:500]
    limits = reply.json()["data"]["instance"]["concurrencyLimits"]
    return {limit["concurrencyKey"] for limit in limits}


def set_limit_document(key: str) -> str:
    return f'mutation {{ setConcurrencyLimit(concurrencyKey: "{key}", limit: 3) }}'


def launch_document(task: str) -> str:
    selector = (
        f'repositoryLocationName: "{location_name()}", repositoryName: "{REPOSITORY_NAME}",'
        f' jobName: "{job_name(task)}"'
    )
    return (
        f"mutation {{ launchRun(executionParams: {{selector: {{{selector}}}}}) {{ __typename }} }}"
    )


def job_run_count(url: str, task: str, auth=None) -> int:
    runs_filter = f'{{pipelineName: "{job_name(task)}"}}'
    document = f"{{ runsOrError(filter: {runs_filter}) {{ ... on Runs {{ count }} }} }}"
    reply = requests.post(f"{url}/graphql", json={"query": document}, auth=auth, timeout=60)
    assert reply.status_code == 200, reply.text[:500]
    return reply.json()["data"]["runsOrError"]["count"]


def get_mutation_refused(url: str, key: str, auth=None) -> None:
    """GET /graphql?query=mutation... (an <img> or a link on any page) is refused, with a
    foreign Origin and without one, also when the document is percent-encoded."""
    runs_before = job_run_count(url, "by_hand", auth)
    for document in (launch_document("by_hand"), set_limit_document(key)):
        for headers in ({"Origin": FOREIGN_ORIGIN}, {}):
            reply = requests.get(
                f"{url}/graphql", params={"query": document}, headers=headers, auth=auth
            )
            assert reply.status_code == 405, (document, headers, reply.status_code, reply.text)
    encoded = "".join(f"%{byte:02X}" for byte in set_limit_document(key).encode())
    reply = requests.get(f"{url}/graphql?query={encoded}", auth=auth, timeout=60)
    assert reply.status_code == 405, reply.text
    assert job_run_count(url, "by_hand", auth) == runs_before
    assert key not in concurrency_keys(url, auth)


def cross_origin_post_refused(url: str, key: str, auth=None) -> None:
    """A POST whose Origin (or, lacking one, Referer) is another site's is refused: a JSON
    body, and the `text/plain` form a page may send without a CORS preflight."""
    document = set_limit_document(key)
    for headers in (
        {"Origin": FOREIGN_ORIGIN},
        {"Origin": "null"},
        {"Referer": f"{FOREIGN_ORIGIN}/page.html"},
    ):
        reply = requests.post(
            f"{url}/graphql", json={"query": document}, headers=headers, auth=auth, timeout=60
        )
        assert reply.status_code == 403, (headers, reply.status_code, reply.text)
        reply = requests.post(
            f"{url}/graphql",
            params={"query": document},
            data="x",
            headers={**headers, "Content-Type": "text/plain"},
            auth=auth,
            timeout=60,
        )
        assert reply.status_code == 403, (headers, reply.status_code, reply.text)
    assert key not in concurrency_keys(url, auth)


def own_origin_post_allowed(url: str, origins: list[str], key: str, auth=None) -> None:
    """The UI's own POSTs (its Origin) and clients without Origin or Referer still work."""
    for headers in [{"Origin": origin, "Referer": f"{origin}/runs"} for origin in origins] + [{}]:
        reply = requests.post(
            f"{url}/graphql",
            json={"query": set_limit_document(key)},
            headers=headers,
            auth=auth,
            timeout=60,
        )
        assert reply.status_code == 200 and not reply.json().get("errors"), reply.text
    assert key in concurrency_keys(url, auth)
    delete = f'mutation {{ deleteConcurrencyLimit(concurrencyKey: "{key}") }}'
    reply = requests.post(f"{url}/graphql", json={"query": delete}, auth=auth, timeout=60)
    assert reply.status_code == 200, reply.text


def websocket_handshake(url: str, headers: dict[str, str]) -> str:
    """The status line a GraphQL-subscription websocket upgrade on ``url`` is answered with."""
    host, port = url.removeprefix("http://").split(":")
    lines = [
        "GET /graphql HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Protocol: graphql-ws",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n" not in head:
            chunk = connection.recv(1024)
            assert chunk, f"connection closed after {head!r}"
            head += chunk
    return head.split(b"\r\n")[0].decode()


def test_make_dev_refuses_a_mutation_sent_as_get(dagster_dev):
    get_mutation_refused(dagster_dev, "csrf_get_probe")


def test_make_dev_refuses_cross_origin_posts(dagster_dev):
    cross_origin_post_refused(dagster_dev, "csrf_post_probe")


def test_make_dev_serves_its_own_pages_and_plain_clients(dagster_dev):
    localhost = dagster_dev.replace("127.0.0.1", "localhost")
    page = requests.get(dagster_dev, timeout=60)
    assert page.status_code == 200 and "<html" in page.text.lower()
    own_origin_post_allowed(dagster_dev, [dagster_dev, localhost], "csrf_own_probe")
    # Reads over GET stay (GraphiQL links); a browser hides their replies from other sites.
    reply = requests.get(f"{dagster_dev}/graphql", params={"query": "{ version }"}, timeout=60)
    assert reply.status_code == 200 and reply.json()["data"]["version"], reply.text


def test_make_dev_upgrades_subscriptions_for_its_own_pages_only(dagster_dev):
    assert websocket_handshake(dagster_dev, {"Origin": dagster_dev}).startswith("HTTP/1.1 101")
    assert websocket_handshake(dagster_dev, {}).startswith("HTTP/1.1 101")
    refused = websocket_handshake(dagster_dev, {"Origin": FOREIGN_ORIGIN})
    assert refused.startswith("HTTP/1.1 403"), refused
