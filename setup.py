"""Installable package for the zquant_pipelines Dagster code location."""

from setuptools import find_packages, setup

# The Dagster family is released in lock-step (core 1.13.N with libraries 0.29.N):
# pin every member to the same release so pip cannot pair mismatched versions.
DAGSTER_CORE = "1.13.27"
DAGSTER_LIBS = "0.29.27"

setup(
    name="zquant_pipelines",
    version="0.1.0",
    description="A-share market data sync, factors and task scheduling on Dagster",
    # Only the code location ships: the tests and bench run from a checkout (bench imports
    # the tests' helpers), so installed they would be packages whose imports fail.
    packages=find_packages(include=["zquant_pipelines", "zquant_pipelines.*"]),
    python_requires=">=3.11,<3.13",
    install_requires=[
        f"dagster=={DAGSTER_CORE}",
        f"dagster-webserver=={DAGSTER_CORE}",
        f"dagster-graphql=={DAGSTER_CORE}",
        f"dagster-pipes=={DAGSTER_CORE}",
        f"dagster-postgres=={DAGSTER_LIBS}",
        # Steps on Celery workers; the redis extra brings the client the broker, result
        # backend and the shared tushare rate limit use.
        f"dagster-celery[redis]=={DAGSTER_LIBS}",
        "pandas>=2.1,<3",
        "numpy>=1.26,<3",
        # Writes the CSV of PostgreSQL's COPY (C++): pandas' to_csv took most of a write.
        "pyarrow>=18,<27",
        "SQLAlchemy>=2.0,<2.1",
        "psycopg2-binary>=2.9.9",
        "tushare==1.4.29",
        "PyYAML>=6",
        "filelock>=3.12",
        "requests>=2.28,<3",
        # Run supervision: is a run worker alive, and the process trees of steps and scripts.
        "psutil>=5.9,<8",
        # Alert delivery to Slack, DingTalk, WeCom, Feishu, e-mail, webhooks (ZQUANT_ALERT_URLS).
        "apprise>=1.9,<2",
        # Round-trip edits of tasks.yaml (`zquant tasks add/update/remove`): comments kept.
        "ruamel.yaml>=0.18,<0.19",
        # zquant's MySQL/MariaDB database, read by `zquant tasks import-zquant`.
        "PyMySQL>=1.1,<2",
        # The live progress bar of `zquant trigger --wait` and `zquant sync-daily`.
        "rich>=13,<16",
        # `zquant api`: zquant's scheduler REST API (uvicorn also serves dagster-webserver).
        "fastapi>=0.115,<1",
        "uvicorn>=0.30,<1",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            # `make test` on two workers (-n 2 --dist loadfile --no-loadscope-reorder).
            "pytest-xdist>=3.6,<4",
            "hypothesis>=6.100",
            "ruff==0.8.6",
            # The local SMTP server the alert tests send e-mail to.
            "aiosmtpd>=1.4,<2",
        ],
        # `make bench`: the PNG of the benchmark curves.
        "bench": ["matplotlib>=3.8,<4"],
    },
    entry_points={
        "console_scripts": ["zquant=zquant_pipelines.cli.main:main"],
    },
)
