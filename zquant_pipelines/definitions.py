"""The code location: every piece's Definitions merged (`zquant_pipelines.definitions:defs`)."""

import dagster as dg

from zquant_pipelines.alerts.definitions import build_alert_definitions
from zquant_pipelines.assets.definitions import build_asset_definitions
from zquant_pipelines.assets.financials import build_financial_definitions
from zquant_pipelines.resources.definitions import build_resource_definitions
from zquant_pipelines.tasks.definitions import build_catalog_definitions

defs = dg.Definitions.merge(
    build_resource_definitions(),
    build_asset_definitions(),
    build_financial_definitions(),
    build_catalog_definitions(),
    build_alert_definitions(),
)
