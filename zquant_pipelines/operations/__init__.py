"""What the `zquant` CLI does, behind one interface: ``open_operations`` gives the back end
for the instance in DAGSTER_HOME (``local.py``) or for a webserver's GraphQL (``graphql.py``).
"""

import os

import dagster as dg
import yaml

from zquant_pipelines.constants import (
    DEFAULT_UI_URL,
    ENV_DAGSTER_HOME,
    ENV_DAGSTER_URL,
    ENV_UI_URL,
)
from zquant_pipelines.instance_home import prepare_home
from zquant_pipelines.operations.base import OperationFailed, Operations, UsageProblem
from zquant_pipelines.operations.graphql import GraphQLOperations
from zquant_pipelines.operations.graphql_client import webserver_answers
from zquant_pipelines.operations.local import LocalOperations
from zquant_pipelines.redaction import redact_credentials

__all__ = [
    "OperationFailed",
    "Operations",
    "UsageProblem",
    "dagster_home_problem",
    "open_operations",
    "reload_where_served",
]


def open_operations(url: str | None = None) -> Operations:
    """GraphQL operations on ``url`` (or ZQUANT_DAGSTER_URL), else local operations on the
    instance in DAGSTER_HOME (prepared with our dagster.yaml when the variable is unset, as
    `make dev` does)."""
    url = url or os.environ.get(ENV_DAGSTER_URL)
    if url:
        return GraphQLOperations(url)
    home = os.environ.get(ENV_DAGSTER_HOME)
    if not home:
        os.environ[ENV_DAGSTER_HOME] = str(prepare_home())
    elif problem := dagster_home_problem(home, must_exist=True):
        raise UsageProblem(problem)
    try:
        instance = dg.DagsterInstance.get()
    except (yaml.YAMLError, dg.DagsterInvalidConfigError) as error:
        first_line = next(line for line in f"{error}\n-".splitlines() if line.strip())
        raise UsageProblem(
            f"DAGSTER_HOME {home!r}: its dagster.yaml cannot be used: {first_line}"
        ) from None
    return LocalOperations(instance)


def reload_where_served(url: str | None = None) -> str:
    """After tasks.yaml changed: reload the code location on the webserver at ``url`` (or
    ZQUANT_DAGSTER_URL), else on the one at ZQUANT_UI_URL (default 127.0.0.1:3000) when one
    answers there, so the UI shows the change at once; what happened, in one line. A failed
    reload is an OperationFailed saying the file was written."""
    url = url or os.environ.get(ENV_DAGSTER_URL)
    if url is None:
        url = os.environ.get(ENV_UI_URL) or DEFAULT_UI_URL
        if not webserver_answers(url):
            return (
                f"no webserver answered at {redact_credentials(url)}: a webserver reads the new"
                " catalog when it starts or reloads (`zquant --url URL reload`)"
            )
    try:
        with GraphQLOperations(url) as served:
            return served.reload()
    except (OperationFailed, UsageProblem) as error:
        raise OperationFailed(f"tasks.yaml was written, but the reload failed: {error}") from None


def dagster_home_problem(home: str, must_exist: bool) -> str | None:
    """Why ``home`` cannot be DAGSTER_HOME, or None (Dagster would raise it with a
    traceback); a missing directory is fine when the caller creates it."""
    path = os.path.expanduser(home)
    if not os.path.isabs(path):
        return f"DAGSTER_HOME {home!r} is not an absolute path"
    if os.path.isdir(path):
        return None
    if os.path.exists(path):
        return f"DAGSTER_HOME {home!r} is not a directory"
    if must_exist:
        return (
            f"DAGSTER_HOME {home!r} does not exist: create it (`make home` prepares it with"
            " our dagster.yaml) or unset DAGSTER_HOME for the project's .dagster_home"
        )
    return None
