"""A code location of the catalog named by ZQUANT_TASKS_FILE, for tests that need Dagster to
load jobs by reference: runs submitted to the queue and multiprocess execution."""

import dagster as dg

from zquant_pipelines.resources.definitions import build_resource_definitions
from zquant_pipelines.tasks.definitions import build_catalog_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(build_resource_definitions(), build_catalog_definitions())
