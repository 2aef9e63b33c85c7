"""Transport to a Dagster webserver's GraphQL API: the endpoint, one POST per document, and
the server's answers turned into data or one readable error.

Every URL printed goes through ``redaction.redact_credentials`` (--url may carry a password).
A `--read-only` webserver's refusals become one readable error naming the server. What the
documents ask is ``graphql_documents``; what the answers mean is ``graphql``.
"""

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import requests

from zquant_pipelines.operations.base import OperationFailed, UsageProblem
from zquant_pipelines.redaction import redact_credentials

REQUEST_TIMEOUT_SECONDS = 60
# How long a probe waits for a webserver that may not be there (`webserver_answers`).
PROBE_TIMEOUT_SECONDS = 5
# What a `--read-only` webserver answers a mutation with: the result type of union-typed
# mutations, and inside the GraphQL error of Boolean-typed ones (setConcurrencyLimit:
# "Boolean cannot represent a non boolean value: <GrapheneUnauthorizedError instance>").
UNAUTHORIZED = "UnauthorizedError"


def graphql_endpoint(url: str) -> str:
    """``http://HOST:PORT`` (or its /graphql) as the GraphQL endpoint; bad URLs refused."""
    try:
        parts = urlsplit(url.strip())
        # Reading the port checks it (parts.port raises for one out of range).
        is_address = parts.scheme in ("http", "https") and bool(parts.netloc) and parts.port != 0
    except ValueError:  # a malformed IPv6 host, a port out of range
        is_address = False
    if not is_address:
        raise UsageProblem(
            f"--url {redact_credentials(url)!r} is not a webserver address: give http://HOST:PORT"
            " (e.g. http://127.0.0.1:3000, where `make dev` serves)"
        )
    base = url.strip().rstrip("/")
    return base if base.endswith("/graphql") else f"{base}/graphql"


def webserver_answers(url: str) -> bool:
    """Whether a GraphQL server answers at ``url`` (the probe before an optional reload)."""
    try:
        reply = requests.post(
            graphql_endpoint(url), json={"query": "{ __typename }"}, timeout=PROBE_TIMEOUT_SECONDS
        )
        return reply.ok and "data" in reply.json()
    except (UsageProblem, requests.RequestException, ValueError):
        return False


class GraphQLClient:
    """Sends GraphQL documents to the webserver at ``url`` (``http://HOST:PORT``)."""

    def __init__(self, url: str):
        self.endpoint = graphql_endpoint(url)
        # The server as messages name it: its password replaced.
        self.server = redact_credentials(self.endpoint.removesuffix("/graphql"))
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def execute(self, document: str, variables: Mapping | None = None) -> dict:
        """The ``data`` of one GraphQL request; transport and GraphQL errors are raised."""
        try:
            response = self._session.post(
                self.endpoint,
                json={"query": document, "variables": dict(variables or {})},
                timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except requests.RequestException as error:
            # The exception's text may quote the URL, user-info included.
            raise OperationFailed(
                redact_credentials(
                    f"cannot reach the Dagster webserver at {self.server}: {error}; start one"
                    " with `make dev` or fix --url / ZQUANT_DAGSTER_URL"
                )
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not ("data" in body or body.get("errors")):
            content_type = response.headers.get("Content-Type", "no content type")
            raise OperationFailed(
                f"--url {self.server} is not a Dagster webserver: POST /graphql answered HTTP"
                f" {response.status_code} ({content_type}), not GraphQL"
            )
        if body.get("errors"):
            messages = "; ".join(error.get("message", str(error)) for error in body["errors"])
            if UNAUTHORIZED in messages:
                named = re.search(r"mutation\s+(\w+)", document)
                raise self.read_only_refusal(named[1] if named else "a change")
            raise OperationFailed(f"GraphQL error from {self.server}: {messages}")
        return body["data"]

    def read_only_refusal(self, change: str) -> OperationFailed:
        """The error for the mutation ``change`` that a `--read-only` webserver refused."""
        return OperationFailed(
            f"{self.server} is a read-only Dagster webserver: it refused {change}. Make changes"
            " through the editors' webserver (deploy/README.md, Access)"
        )

    def result(self, data: Mapping, field: str, expected: str) -> dict:
        """``data[field]`` when it is of type ``expected``, else its error raised."""
        value = data[field]
        if value["__typename"] == UNAUTHORIZED:
            raise self.read_only_refusal(field)
        if value["__typename"] != expected:
            message = value.get("message") or value["__typename"]
            raise OperationFailed(f"{field}: {value['__typename']}: {message}")
        return value
