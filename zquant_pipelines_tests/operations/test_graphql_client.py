"""The transport of the `zquant --url` back end: which addresses are a webserver's endpoint.

Its errors (unreachable server, not a Dagster webserver, read-only refusals, passwords in
URLs) are tested through the CLI in test_graphql.py, test_cli_bad_input.py and
deploy/test_access.py."""

import pytest

from zquant_pipelines.operations.graphql_client import graphql_endpoint


def test_graphql_endpoint_accepts_a_server_address_only():
    assert graphql_endpoint("http://127.0.0.1:3000") == "http://127.0.0.1:3000/graphql"
    assert graphql_endpoint("http://h:1/graphql/") == "http://h:1/graphql"
    with pytest.raises(Exception, match="127.0.0.1:3000"):
        graphql_endpoint("127.0.0.1:3000")
