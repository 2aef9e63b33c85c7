"""The GraphQL documents of the `zquant --url` back end against the installed schema."""

import pytest
from dagster_graphql.schema import create_schema
from graphql import OperationDefinitionNode, parse, validate

from zquant_pipelines.operations.graphql_documents import DOCUMENTS


@pytest.fixture(scope="module")
def schema():
    return create_schema().graphql_schema


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_is_valid_for_the_installed_schema(schema, name):
    document = parse(DOCUMENTS[name])
    assert validate(schema, document) == []
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert [operation.name.value for operation in operations] == [name]


def test_an_invalid_document_fails_validation(schema):
    # The check above can fail: a misspelt field is reported.
    broken = DOCUMENTS["RunStatus"].replace("status", "statuz")
    assert validate(schema, parse(broken))
