"""The access story of deploy/, run for real on this machine: a code server started as
deploy/README.md says, the full and the `--read-only` webserver both loading
deploy/workspace.yaml, and nginx with deploy/nginx/zquant.conf in front of them (basic auth,
one password file per role). Editors launch runs and reload the code location; viewers read
and are refused every change."""

import base64
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import requests
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._grpc.client import DagsterGrpcClient

from zquant_pipelines import cli
from zquant_pipelines.constants import (
    ENV_DAGSTER_URL,
    ENV_DATA_DIR,
    ENV_PG_URL,
    ENV_TASKS_FILE,
    ENV_TUSHARE_API_URL,
    ENV_TUSHARE_TOKEN,
    ENV_WAREHOUSE_URL,
)
from zquant_pipelines.instance_home import prepare_home
from zquant_pipelines.operations.base import REPOSITORY_NAME, location_name
from zquant_pipelines.operations.graphql_documents import DOCUMENTS
from zquant_pipelines_tests.support.operations_environment import TEST_CATALOG
from zquant_pipelines_tests.support.ports import launch_on_free_ports, start_logged, stop_group
from zquant_pipelines_tests.support.services import require_service
from zquant_pipelines_tests.support.waiting import wait_until
from zquant_pipelines_tests.support.webserver_probes import (
    FOREIGN_ORIGIN,
    START_TIMEOUT_SECONDS,
    TUSHARE_TOKEN,
    assert_secrets_shown_by_name,
    cross_origin_post_refused,
    gateway_url,
    get_mutation_refused,
    location_loaded,
    own_origin_post_allowed,
    websocket_handshake,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
NGINX_TEMPLATE = DEPLOY / "nginx" / "zquant.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# What a user's `zquant --url` sees first: a task the test catalog holds.
TASK = "by_hand"
USERS = {"editors": ("erin", "editor-secret"), "viewers": ("victor", "viewer-secret")}
RUNS_QUERY = "{ runsOrError(limit: 5) { __typename ... on Runs { results { runId } } } }"
JOBS_QUERY = "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }"

pytestmark = pytest.mark.slow


class Deployment(NamedTuple):
    editor_url: str  # dagster-webserver
    viewer_url: str  # dagster-webserver --read-only
    tasks_file: Path


class Proxy(NamedTuple):
    editor_url: str
    viewer_url: str


@contextlib.contextmanager
def serving_on_free_ports(
    argv: Callable[..., list[str]],
    env: dict,
    log_path: Path,
    serving: Callable[..., bool],
    what: str,
    cwd: Path = REPO_ROOT,
    count: int = 1,
) -> Iterator[tuple[int, ...]]:
    """``argv(*ports)`` started on ``count`` free ports (``launch_on_free_ports``: again on
    others when one was taken meanwhile), its log in log_path; yields the ports once
    ``serving(*ports)``, and ends its process group (children included) afterwards."""

    def launch(*ports: int) -> subprocess.Popen:
        return start_logged(argv(*ports), log_path, cwd=cwd, env=env)

    process, ports = launch_on_free_ports(
        launch, log_path.read_text, serving, stop_group, what, START_TIMEOUT_SECONDS, count
    )
    try:
        yield ports
    finally:
        stop_group(process)


def code_server_serving(port: int) -> bool:
    try:
        return DagsterGrpcClient(port=port, host="127.0.0.1").health_check_query() == "SERVING"
    except DagsterUserCodeUnreachableError:
        return False


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """Code server + full webserver + read-only webserver, the way deploy/README.md runs them."""
    root = tmp_path_factory.mktemp("deployment")
    tasks_file = root / "tasks.yaml"
    tasks_file.write_text(TEST_CATALOG)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(ENV_PG_URL, raising=False)
        home = prepare_home(root / "home")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in (ENV_PG_URL, ENV_DAGSTER_URL, "TUSHARE_TOKEN")
    }
    env.update(
        {
            "DAGSTER_HOME": str(home),
            ENV_TASKS_FILE: str(tasks_file),
            ENV_DATA_DIR: str(root / "data"),
            ENV_WAREHOUSE_URL: f"sqlite:///{root / 'warehouse.db'}",
            "DAGSTER_GRPC_HOST": "127.0.0.1",
            ENV_TUSHARE_TOKEN: TUSHARE_TOKEN,
            # No run starts here: a gateway nobody serves is enough.
            ENV_TUSHARE_API_URL: gateway_url("http://127.0.0.1:9/dataapi"),
        }
    )

    def code_server(port: int) -> list[str]:
        argv = [sys.executable, "-m", "dagster", "code-server", "start"]
        return argv + ["-m", "zquant_pipelines.definitions", "-h", "127.0.0.1", "-p", str(port)]

    def webserver(*extra: str) -> Callable[[int], list[str]]:
        argv = [sys.executable, "-m", "dagster_webserver", "-w", str(DEPLOY / "workspace.yaml")]
        return lambda port: [*argv, "-h", "127.0.0.1", "-p", str(port), *extra]

    def webserver_loaded(port: int) -> bool:
        return location_loaded(f"http://127.0.0.1:{port}")

    with contextlib.ExitStack() as stack:
        # The code server runs from another directory: it needs the environment, not the repo.
        (grpc_port,) = stack.enter_context(
            serving_on_free_ports(
                code_server,
                env,
                root / "code_server.log",
                code_server_serving,
                "code server",
                cwd=root,
            )
        )
        # deploy/workspace.yaml finds the code server by DAGSTER_GRPC_HOST and _PORT.
        webserver_env = {**env, "DAGSTER_GRPC_PORT": str(grpc_port)}
        ports = {
            name: stack.enter_context(
                serving_on_free_ports(
                    webserver(*extra),
                    webserver_env,
                    root / f"{name}_webserver.log",
                    webserver_loaded,
                    f"{name} webserver",
                )
            )[0]
            for name, extra in (("editor", []), ("viewer", ["--read-only"]))
        }
        yield Deployment(
            f"http://127.0.0.1:{ports['editor']}",
            f"http://127.0.0.1:{ports['viewer']}",
            tasks_file,
        )


def render_template(text: str, values: dict[str, str]) -> str:
    """``${NAME}`` replaced by ``values[NAME]``, as `envsubst` does; every one must be given."""
    rendered = re.sub(r"\$\{(\w+)\}", lambda match: values[match.group(1)], text)
    assert "${" not in rendered
    return rendered


def htpasswd_entry(user: str, password: str) -> str:
    """A salted SHA-1 ({SSHA}) line, one of the schemes nginx reads besides apr1 and crypt."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return f"{user}:{{SSHA}}{base64.b64encode(digest + salt).decode()}\n"


def nginx_main_config(prefix: Path, site: Path) -> str:
    """The smallest nginx.conf around our http-context file, every path inside ``prefix``.
    master_process off keeps one process under our own user, which can read the files."""
    temp_paths = "".join(
        f"    {kind}_temp_path {prefix / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"master_process off;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'};\n"
        "events { worker_connections 64; }\n"
        f"http {{\n    access_log {prefix / 'access.log'};\n{temp_paths}"
        f"    include {site};\n}}\n"
    )


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 401
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="module")
def proxy(deployment, tmp_path_factory):
    """nginx running deploy/nginx/zquant.conf in front of both webservers."""
    if not os.access(NGINX, os.X_OK):
        require_service("nginx", FileNotFoundError(f"{NGINX} (apt-get install nginx-light)"))
    prefix = tmp_path_factory.mktemp("nginx")
    # Editors' file in {SSHA}, viewers' from `openssl passwd -apr1` as deploy/README.md says.
    (prefix / "editors.htpasswd").write_text(htpasswd_entry(*USERS["editors"]))
    user, password = USERS["viewers"]
    apr1 = subprocess.run(
        ["openssl", "passwd", "-apr1", password], capture_output=True, text=True, check=True
    ).stdout.strip()
    (prefix / "viewers.htpasswd").write_text(f"{user}:{apr1}\n")
    site = prefix / "zquant.conf"
    main_config = prefix / "nginx.conf"
    main_config.write_text(nginx_main_config(prefix, site))

    def nginx(editor_port: int, viewer_port: int) -> list[str]:
        """nginx's command, its site config written for these two ports first."""
        site.write_text(
            render_template(
                NGINX_TEMPLATE.read_text(),
                {
                    "PROXY_BIND": "127.0.0.1",
                    "PROXY_EDITOR_PORT": str(editor_port),
                    "PROXY_VIEWER_PORT": str(viewer_port),
                    "PROXY_EDITOR_UPSTREAM": deployment.editor_url.removeprefix("http://"),
                    "PROXY_VIEWER_UPSTREAM": deployment.viewer_url.removeprefix("http://"),
                    "PROXY_HTPASSWD_DIR": str(prefix),
                },
            )
        )
        argv = [NGINX, "-p", str(prefix), "-e", str(prefix / "error.log")]
        return argv + ["-c", str(main_config), "-g", "daemon off;"]

    def both_answer(*ports: int) -> bool:
        return all(answers(f"http://127.0.0.1:{port}") for port in ports)

    with serving_on_free_ports(
        nginx, dict(os.environ), prefix / "nginx.log", both_answer, "nginx", prefix, 2
    ) as (editor_port, viewer_port):
        yield Proxy(f"http://127.0.0.1:{editor_port}", f"http://127.0.0.1:{viewer_port}")


def graphql(url: str, document: str, variables: dict | None = None, auth=None) -> dict:
    reply = requests.post(
        f"{url}/graphql", json={"query": document, "variables": variables or {}}, auth=auth
    )
    assert reply.status_code == 200, reply.text[:500]
    body = reply.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


def launch_run(url: str, auth=None) -> dict:
    params = {
        "selector": {
            "repositoryLocationName": location_name(),
            "repositoryName": REPOSITORY_NAME,
            "jobName": f"{TASK}_job",
        }
    }
    data = graphql(url, DOCUMENTS["LaunchRun"], {"executionParams": params}, auth)
    return data["launchRun"]


def run_ids(url: str, auth=None) -> list[str]:
    runs = graphql(url, RUNS_QUERY, auth=auth)["runsOrError"]
    assert runs["__typename"] == "Runs", runs
    return [run["runId"] for run in runs["results"]]


# --- the webservers themselves ------------------------------------------------------------


def test_full_webserver_launches_a_run(deployment):
    launched = launch_run(deployment.editor_url)
    assert launched["__typename"] == "LaunchRunSuccess", launched
    assert launched["run"]["runId"] in run_ids(deployment.editor_url)


def test_read_only_webserver_answers_queries_and_refuses_launch_run(deployment):
    refused = launch_run(deployment.viewer_url)
    assert refused["__typename"] == "UnauthorizedError", refused
    # The same instance behind it: the editors' runs are visible to viewers.
    editors_run = launch_run(deployment.editor_url)["run"]["runId"]
    assert editors_run in run_ids(deployment.viewer_url)


# --- nginx in front of them ---------------------------------------------------------------


@pytest.mark.parametrize("role", ["editors", "viewers"])
def test_proxy_asks_each_role_for_its_own_password(proxy, role):
    url = proxy.editor_url if role == "editors" else proxy.viewer_url
    user, password = USERS[role]
    other_user, other_password = USERS["viewers" if role == "editors" else "editors"]
    for auth in (None, (user, "wrong"), (other_user, other_password)):
        reply = requests.get(url, auth=auth, timeout=30)
        assert reply.status_code == 401, (auth and auth[0], reply.status_code)
        assert reply.headers["WWW-Authenticate"] == f'Basic realm="zquant {role}"'
    page = requests.get(url, auth=(user, password), timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert run_ids(url, auth=(user, password)) is not None


def test_editors_launch_runs_through_the_proxy_and_viewers_cannot(proxy):
    launched = launch_run(proxy.editor_url, USERS["editors"])
    assert launched["__typename"] == "LaunchRunSuccess", launched
    refused = launch_run(proxy.viewer_url, USERS["viewers"])
    assert refused["__typename"] == "UnauthorizedError", refused
    assert launched["run"]["runId"] in run_ids(proxy.viewer_url, USERS["viewers"])


def basic_auth(role: str) -> dict[str, str]:
    credentials = base64.b64encode(":".join(USERS[role]).encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


@pytest.mark.parametrize("role", ["editors", "viewers"])
def test_ui_subscriptions_upgrade_to_a_websocket_through_the_proxy(proxy, role):
    url = proxy.editor_url if role == "editors" else proxy.viewer_url
    own_page = {**basic_auth(role), "Origin": url}
    assert websocket_handshake(url, own_page).startswith("HTTP/1.1 101")
    foreign_page = {**basic_auth(role), "Origin": FOREIGN_ORIGIN}
    assert websocket_handshake(url, foreign_page).startswith("HTTP/1.1 403")


def test_proxy_refuses_graphql_over_get_and_cross_origin_posts(proxy):
    auth = USERS["editors"]
    get_mutation_refused(proxy.editor_url, "csrf_proxy_get_probe", auth)
    cross_origin_post_refused(proxy.editor_url, "csrf_proxy_post_probe", auth)
    own_origin_post_allowed(proxy.editor_url, [proxy.editor_url], "csrf_proxy_own_probe", auth)


def test_read_only_webserver_shows_secrets_by_name(deployment):
    assert_secrets_shown_by_name(deployment.viewer_url)


@pytest.mark.parametrize(
    "argv",
    [["pause", TASK], ["resume", TASK], ["disable", "nightly"], ["enable", "ticker"], ["reload"]],
)
def test_zquant_on_the_read_only_webserver_says_it_is_read_only(
    deployment, monkeypatch, capsys, argv
):
    monkeypatch.setenv(ENV_TASKS_FILE, str(deployment.tasks_file))
    capsys.readouterr()
    assert cli.main(["--url", deployment.viewer_url, *argv]) == 1
    err = capsys.readouterr().err
    assert f"{deployment.viewer_url} is a read-only Dagster webserver" in err, err
    assert "Graphene" not in err and "cannot represent" not in err


def test_zquant_cli_through_the_proxy_reads_credentials_from_netrc(
    deployment, proxy, tmp_path, monkeypatch, capsys
):
    def use_login(role: str) -> str:
        user, password = USERS[role]
        netrc = tmp_path / f"{role}.netrc"
        netrc.write_text(f"machine 127.0.0.1 login {user} password {password}\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
        return password

    # The CLI reads the catalog it names tasks from locally: the deployment's copy.
    monkeypatch.setenv(ENV_TASKS_FILE, str(deployment.tasks_file))
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    capsys.readouterr()
    assert cli.main(["--url", proxy.editor_url, "--json", "tasks", "list"]) == 1
    assert "401" in capsys.readouterr().err
    use_login("editors")
    assert cli.main(["--url", proxy.editor_url, "--json", "tasks", "list"]) == 0
    assert TASK in capsys.readouterr().out
    password = use_login("viewers")
    assert cli.main(["--url", proxy.viewer_url, "--json", "tasks", "list"]) == 0
    assert TASK in capsys.readouterr().out
    assert cli.main(["--url", proxy.viewer_url, "trigger", TASK]) == 1
    out, err = capsys.readouterr()
    assert "read-only" in err and password not in out + err


def job_names(url: str, auth) -> set[str]:
    data = graphql(url, JOBS_QUERY, auth=auth)["repositoriesOrError"]
    return {job["name"] for repository in data["nodes"] for job in repository["jobs"]}


def test_editors_reload_the_code_location_after_a_catalog_edit(deployment, proxy):
    deployment.tasks_file.write_text(
        TEST_CATALOG
        + "  - name: added_later\n    task_type: manual_task\n"
        + "    config: {task_action: example_task}\n"
    )
    variables = {"repositoryLocationName": location_name()}
    refused = graphql(proxy.viewer_url, DOCUMENTS["ReloadLocation"], variables, USERS["viewers"])
    assert refused["reloadRepositoryLocation"]["__typename"] == "UnauthorizedError", refused
    reloaded = graphql(proxy.editor_url, DOCUMENTS["ReloadLocation"], variables, USERS["editors"])
    assert reloaded["reloadRepositoryLocation"]["loadStatus"] == "LOADED", reloaded
    # The mutation's reply can still carry the old snapshot; both webservers then fetch the
    # code server's new one (the read-only one notices the code server's new id by itself).
    for url, role in ((proxy.editor_url, "editors"), (proxy.viewer_url, "viewers")):
        wait_until(
            lambda u=url, r=role: "added_later_job" in job_names(u, USERS[r]),
            START_TIMEOUT_SECONDS,
            f"the {role}' webserver to show the added task's job",
        )
