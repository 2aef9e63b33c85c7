"""Credentials in URLs replaced before anything is printed."""

import pytest

from zquant_pipelines.redaction import redact_credentials


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://erin:pa55@127.0.0.1:3000/graphql", "http://erin:***@127.0.0.1:3000/graphql"),
        ("redis://:pa55@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://u:p%40ss@db/w?sslmode=require", "postgresql://u:***@db/w?sslmode=require"),
        # A password holding '@' or ':' ends at the last '@' before the host, as urlsplit reads.
        ("https://u:a@b:c@host/x", "https://u:***@host/x"),
        # A user-info without a password is often a token: hidden whole.
        ("https://ghp_token@host/x", "https://***@host/x"),
        ("no url here", "no url here"),
        ("sqlite:///data/warehouse.db", "sqlite:///data/warehouse.db"),
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
        (
            "GET http://a:one@h1/ then http://b:two@h2/ failed",
            "GET http://a:***@h1/ then http://b:***@h2/ failed",
        ),
        ("an e-mail user@example.com stays", "an e-mail user@example.com stays"),
    ],
)
def test_redact_credentials(text, shown):
    assert redact_credentials(text) == shown
