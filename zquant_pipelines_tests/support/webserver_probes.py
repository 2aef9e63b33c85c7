"""Probes of a running Dagster webserver, shared by the `make dev` test
(test_dagster_dev.py) and the deployment test (deploy/test_access.py): waiting for the code
location to load, the secrets the server's environment holds and the check that GraphQL
(what the UI shows) names them and never shows them, and the cross-site (CSRF) probes: a
mutation sent as GET, cross-origin POSTs, the UI's own POSTs, the subscription websocket."""

import base64
import os
import socket

import requests

from zquant_pipelines.constants import ENV_TUSHARE_API_URL, ENV_TUSHARE_TOKEN
from zquant_pipelines.operations.base import REPOSITORY_NAME, location_name
from zquant_pipelines.operations.graphql_documents import DOCUMENTS
from zquant_pipelines.tasks.builders import job_name

# How long a webserver (`make dev`, a deployment's) may take to serve the code location.
START_TIMEOUT_SECONDS = 180
# Secrets the server's environment holds: GraphQL (what the UI shows) must name, not show them.
TUSHARE_TOKEN = "tushare-token-never-shown"
GATEWAY_PASSWORD = "gateway-password-never-shown"
GATEWAY_CREDENTIALS = f"gw-user:{GATEWAY_PASSWORD}"
FOREIGN_ORIGIN = "http://evil.example"


def gateway_url(server_url: str) -> str:
    """``server_url`` (a tushare wire server's) as a gateway URL holding credentials."""
    scheme, rest = server_url.split("://", 1)
    return f"{scheme}://{GATEWAY_CREDENTIALS}@{rest}"


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
    for secret in (TUSHARE_TOKEN, GATEWAY_PASSWORD, GATEWAY_CREDENTIALS):
        assert secret not in text


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
