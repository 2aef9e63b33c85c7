"""Prepare DAGSTER_HOME: our dagster.yaml, with PostgreSQL storage when DAGSTER_PG_URL is set.

Run as ``python -m zquant_pipelines.instance_home`` (the Makefile does). The written file
names the variable, never its value, so no password lands on disk.
"""

import os
from pathlib import Path

import yaml

from zquant_pipelines.constants import ENV_DAGSTER_HOME, ENV_PG_URL, REPO_ROOT

DEFAULT_HOME = REPO_ROOT / ".dagster_home"


def instance_config(template: Path = REPO_ROOT / "dagster.yaml") -> dict:
    config = yaml.safe_load(template.read_text())
    if os.environ.get(ENV_PG_URL):
        config["storage"] = {"postgres": {"postgres_url": {"env": ENV_PG_URL}}}
    return config


def instance_text() -> str:
    return yaml.safe_dump(instance_config(), sort_keys=False)


def is_prepared(home: Path) -> bool:
    """Whether ``home`` holds the dagster.yaml prepare_home writes today."""
    target = home / "dagster.yaml"
    return target.exists() and target.read_text() == instance_text()


def prepare_home(home: Path | None = None) -> Path:
    home = Path(home or os.environ.get(ENV_DAGSTER_HOME) or DEFAULT_HOME)
    home.mkdir(parents=True, exist_ok=True)
    if not is_prepared(home):
        (home / "dagster.yaml").write_text(instance_text())
    return home


if __name__ == "__main__":
    print(f"DAGSTER_HOME ready: {prepare_home()}")
