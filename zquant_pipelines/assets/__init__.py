"""Software-defined assets: market data and factors, partitioned by trading day."""

import warnings

import dagster as dg

# Single-run backfills (BackfillPolicy) are "beta" in Dagster 1.13; we rely on them
# knowingly, and the warning on every import would drown the CLI's output.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
