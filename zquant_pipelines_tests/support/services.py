"""The local services tests and bench reach: their addresses (PostgreSQL admin URL and Redis
URL, each overridable by environment; RabbitMQ's), throwaway PostgreSQL databases, Redis
databases and RabbitMQ virtual hosts claimed for one run, and the rule for a service that is
not there (skip locally, fail under CI=true)."""

import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import pytest
import redis
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get(
    "ZQUANT_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("ZQUANT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# On this machine: its virtual hosts are made with rabbitmqctl (claimed_rabbitmq_vhost).
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
# The Redis databases a run may claim: not 0, which tests share under key prefixes of their
# own, nor 13 and 14, which earlier versions of the scale-out bench and test used unclaimed.
CLAIMABLE_REDIS_DBS = tuple(db for db in range(1, 16) if db not in (13, 14))
REDIS_CLAIM_KEY = "zquant-tests:claimed-by"
# A claim outlives any run; one a killed run left expires, its database stays unclaimable
# until emptied (its leftover keys are not known to be nobody's).
REDIS_CLAIM_SECONDS = 6 * 3600


def require_service(name: str, error: Exception) -> None:
    """Skip (locally) or fail (CI=true) a test whose service is unreachable."""
    message = f"{name} is not reachable: {error}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: services are required)")
    pytest.skip(message)


def create_pg_database(admin_url: str, prefix: str) -> str:
    """Create a uniquely named database and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    run_as_admin(admin_url, f'CREATE DATABASE "{name}"')
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(admin_url: str, url: str) -> None:
    run_as_admin(admin_url, f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)')


MARIADB_ADMIN_URL = os.environ.get(
    "ZQUANT_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/mysql"
)


def create_mariadb_database(admin_url: str, prefix: str) -> str:
    """Create a uniquely named MariaDB/MySQL database (utf8mb4) and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    run_as_admin(admin_url, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = sa.make_url(admin_url).set(database=name, query={"charset": "utf8mb4"})
    return url.render_as_string(hide_password=False)


def drop_mariadb_database(admin_url: str, url: str) -> None:
    run_as_admin(admin_url, f"DROP DATABASE IF EXISTS `{sa.make_url(url).database}`")


def run_as_admin(admin_url: str, statement: str) -> None:
    """One statement outside a transaction (CREATE/DROP DATABASE refuse to run in one)."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(statement))
    engine.dispose()


@contextlib.contextmanager
def claimed_redis_db(redis_url: str) -> Iterator[str]:
    """The URL of a Redis database of this run's own, emptied afterwards: for Celery, whose
    keys (queues, results, the workers' mailboxes) take no prefix of ours. The database is
    the first empty one of ``CLAIMABLE_REDIS_DBS`` whose claim key this run sets (SET NX:
    two runs never get the same one), so concurrent runs never share or flush each other's."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
    for db in CLAIMABLE_REDIS_DBS:
        url = urlsplit(redis_url)._replace(path=f"/{db}").geturl()
        client = redis.Redis.from_url(url)
        try:
            if client.dbsize() == 0 and client.set(
                REDIS_CLAIM_KEY, owner, nx=True, ex=REDIS_CLAIM_SECONDS
            ):
                break
        finally:
            client.close()
    else:
        raise RuntimeError(
            f"no Redis database of {redis_url} is free to claim (tried {CLAIMABLE_REDIS_DBS};"
            f" one is free when empty)"
        )
    try:
        yield url
    finally:
        client = redis.Redis.from_url(url)
        try:
            if client.get(REDIS_CLAIM_KEY) == owner.encode():
                client.flushdb()
        finally:
            client.close()


@contextlib.contextmanager
def claimed_rabbitmq_vhost(amqp_url: str) -> Iterator[str]:
    """``amqp_url`` on a RabbitMQ virtual host of this run's own, deleted afterwards: the
    counterpart of ``claimed_redis_db`` for Celery on RabbitMQ, whose queues (dagster-celery's
    one "dagster" queue), exchanges and workers' mailboxes would otherwise be those of every
    run on the broker's default host. Made with `rabbitmqctl` (the broker runs on this
    machine); the URL's user is given all rights on it."""
    vhost = f"zquant-tests-{uuid.uuid4().hex[:12]}"
    user = urlsplit(amqp_url).username or "guest"
    try:
        rabbitmqctl("add_vhost", vhost)
    except (OSError, subprocess.CalledProcessError) as error:
        require_service("rabbitmqctl (a virtual host of the tests' own)", error)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield urlsplit(amqp_url)._replace(path=f"/{quote(vhost, safe='')}").geturl()
    finally:
        rabbitmqctl("delete_vhost", vhost)


def rabbitmqctl(*argv: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *argv], check=True, capture_output=True, timeout=60)
