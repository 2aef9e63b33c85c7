"""What the `zquant` CLI does, behind one interface: ``open_operations`` gives the back end
for the instance in DAGSTER_HOME (``local.py``) or for a webserver's GraphQL (``graphql.py``).
"""

import os

import dagster as dg

from zquant_pipelines.instance_home import prepare_home
from zquant_pipelines.operations.base import OperationFailed, Operations, UsageProblem
from zquant_pipelines.operations.graphql import GraphQLOperations
from zquant_pipelines.operations.local import LocalOperations

ENV_DAGSTER_URL = "ZQUANT_DAGSTER_URL"

__all__ = ["ENV_DAGSTER_URL", "OperationFailed", "Operations", "UsageProblem", "open_operations"]


def open_operations(url: str | None = None) -> Operations:
    """GraphQL operations on ``url`` (or ZQUANT_DAGSTER_URL), else local operations on the
    instance in DAGSTER_HOME (prepared with our dagster.yaml when the variable is unset, as
    `make dev` does)."""
    url = url or os.environ.get(ENV_DAGSTER_URL)
    if url:
        return GraphQLOperations(url)
    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(prepare_home())
    return LocalOperations(dg.DagsterInstance.get())
