"""Session-wide fixtures: the PostgreSQL database shared by the suite, service checks, and
the throw-away Dagster instances tests run jobs on.

Tests that need a service skip with the reason when it is missing, except under CI=true,
where a missing service fails the run (CI must never pass by skipping).
"""

import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from zquant_pipelines_tests.support.module_order import slowest_modules_first
from zquant_pipelines_tests.support.ports import STOP_SIGNALS
from zquant_pipelines_tests.support.services import (
    PG_ADMIN_URL,
    REDIS_URL,
    create_pg_database,
    drop_pg_database,
    require_service,
)

if TYPE_CHECKING:
    import dagster as dg


@pytest.fixture(autouse=True)
def stop_signals_left_as_found(request) -> Iterator[None]:
    """Every test leaves SIGINT and SIGTERM as it found them: not ignored, not blocked.

    An ignored or blocked signal is inherited by every process started afterwards, through
    exec: servers the next tests start would ignore ``stop_group``'s SIGTERM (Dagster's map
    SIGTERM to SIGINT's handler) and each teardown wait out its full timeout (CI showed 60 s
    teardowns). A test that leaves one so is named in a warning, and what it found is put
    back.
    """
    found = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    found_blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    for number, handler in found.items():
        ignored = signal.getsignal(number) == signal.SIG_IGN and handler != signal.SIG_IGN
        newly_blocked = number in blocked and number not in found_blocked
        if ignored:
            signal.signal(number, handler)
        if newly_blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
        if ignored or newly_blocked:
            state = "ignored" if ignored else "blocked"
            name = signal.Signals(number).name
            request.node.warn(pytest.PytestWarning(f"left {name} {state}; put back what it found"))


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """Admin URL of the local PostgreSQL server, after checking it answers."""
    try:
        engine = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # noqa: BLE001 - any connection failure means "no server"
        require_service("PostgreSQL at " + PG_ADMIN_URL, error)
    return PG_ADMIN_URL


@pytest.fixture(scope="session")
def pg_database_url(pg_server_url: str):
    """One PostgreSQL database for the whole test session, dropped at the end."""
    url = create_pg_database(pg_server_url, "zq_test")
    yield url
    drop_pg_database(pg_server_url, url)


# --- Dagster: a throw-away instance (SQLite storage in a folder of its own) -----------------


@contextmanager
def instance_in(home: Path) -> Iterator["dg.DagsterInstance"]:
    import dagster as dg

    home.mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(home)) as test_instance:
        yield test_instance


@pytest.fixture
def instance(tmp_path):
    """A Dagster instance of the test's own."""
    with instance_in(tmp_path / "dagster_home") as test_instance:
        yield test_instance


@pytest.fixture(scope="module")
def module_instance(tmp_path_factory):
    """One Dagster instance for a whole module, for module-scoped fixtures that run jobs (a
    function-scoped ``instance`` cannot serve them): each test looks at its own runs."""
    with instance_in(tmp_path_factory.mktemp("dagster_home")) as shared:
        yield shared


# --- tushare wire server (zquant_pipelines_tests/support/tushare_wire_server.py) -------------


@pytest.fixture
def tushare_server_factory():
    """Start ``TushareWireServer(backing, **options)`` servers, all stopped after the test.

    Usage: ``server = tushare_server_factory(SampleMarketSource(), row_limit=50)``, then point
    ``TushareClient(token=server.token, api_url=server.url, ...)`` at it.
    """
    from zquant_pipelines_tests.support.tushare_wire_server import TushareWireServer

    servers = []

    def start(backing, **options):
        server = TushareWireServer(backing, **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# --- Warehouse: a fresh, empty Warehouse per test on SQLite and on PostgreSQL -----------


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse(request, tmp_path):
    """An empty Warehouse: a SQLite file in tmp_path, or a schema of its own in the session
    PostgreSQL database (dropped afterwards), so tests never share tables."""
    from zquant_pipelines.resources.warehouse import Warehouse

    if request.param == "sqlite":
        store = Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
        yield store
        store.dispose()
        return
    database_url = request.getfixturevalue("pg_database_url")
    schema = f"wh_{uuid.uuid4().hex[:10]}"
    store = Warehouse(url=database_url, db_schema=schema)
    yield store
    store.dispose()
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


# --- Redis: the local server (rate-limit budget across machines, Celery broker) ---------


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the local Redis server, after checking it answers. Tests share its database:
    keep to keys under a prefix of your own and delete them afterwards."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
        client.close()
    except redis.RedisError as error:
        require_service("Redis at " + REDIS_URL, error)
    return REDIS_URL


def pytest_collection_modifyitems(items):
    """Slowest modules first (support/module_order.py): `make test` runs on two xdist workers."""
    slowest_modules_first(items)
