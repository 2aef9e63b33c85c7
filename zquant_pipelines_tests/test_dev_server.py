"""The parts of `make dev`'s guard that need no server (test_dagster_dev.py runs the server)."""

import sys

import pytest

from zquant_pipelines.dev_server import guarded_webserver_argv, is_mutation, own_origins


@pytest.mark.parametrize(
    ("document", "mutation"),
    [
        ('mutation { setConcurrencyLimit(concurrencyKey: "k", limit: 1) }', True),
        ("query Q { version }\nmutation M { reloadWorkspace { __typename } }", True),
        ("{ version }", False),
        ("query mutation_like { version }", False),
        ("mutation {", False),  # Dagster refuses it too: a syntax error is never executed
        (None, False),
    ],
)
def test_is_mutation(document, mutation):
    assert is_mutation(document) is mutation


def test_own_origins_add_the_loopback_names_to_a_loopback_address():
    scope = {"server": ("127.0.0.1", 3000), "scheme": "http"}
    assert own_origins(scope) == {
        "http://127.0.0.1:3000",
        "http://localhost:3000",
        "http://[::1]:3000",
    }
    assert own_origins({"server": ("10.0.0.5", 3000), "scheme": "ws"}) == {"http://10.0.0.5:3000"}
    assert own_origins({"server": None, "scheme": "http"}) == set()


def test_only_the_webserver_is_swapped_and_an_unknown_process_stops_dev():
    webserver = [sys.executable, "-m", "dagster_webserver", "--port", "3000"]
    assert guarded_webserver_argv(webserver) == [
        sys.executable,
        "-m",
        "zquant_pipelines.dev_server",
        "webserver",
        "--port",
        "3000",
    ]
    daemon = [sys.executable, "-m", "dagster._daemon", "run"]
    assert guarded_webserver_argv(daemon) == daemon
    with pytest.raises(RuntimeError, match="unknown process"):
        guarded_webserver_argv([sys.executable, "-m", "dagster_webserver_v2"])
