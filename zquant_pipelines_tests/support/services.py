"""The local services tests and bench reach: their addresses (PostgreSQL admin URL, Redis
URL, each overridable by environment), throwaway PostgreSQL databases, and the rule for a
service that is not there (skip locally, fail under CI=true)."""

import os
import uuid

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get(
    "ZQUANT_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("ZQUANT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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
