"""The task catalog's Definitions, read from ZQUANT_TASKS_FILE (default: tasks.yaml)."""

import os
from pathlib import Path

import dagster as dg

from zquant_pipelines.constants import DEFAULT_TASKS_FILE, ENV_TASKS_FILE, REPO_ROOT
from zquant_pipelines.tasks.builders import build_task_definitions
from zquant_pipelines.tasks.catalog import Catalog, load_catalog


def tasks_file() -> Path:
    return Path(os.environ.get(ENV_TASKS_FILE) or REPO_ROOT / DEFAULT_TASKS_FILE)


def load_task_catalog() -> Catalog:
    """The catalog, or CatalogError listing every problem (the code location then fails)."""
    return load_catalog(tasks_file())


def build_catalog_definitions() -> dg.Definitions:
    return build_task_definitions(load_task_catalog())
