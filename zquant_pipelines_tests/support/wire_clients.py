"""The client and resources the tests point at a wire server (``tushare_wire_server``).

No rate limit to wait on (the server counts calls, the tests do not pace them), the
rate-limit state and the SQLite warehouse in the test's own folder.
"""

from pathlib import Path

from zquant_pipelines.resources.tushare_client import TushareClient
from zquant_pipelines.resources.warehouse import Warehouse

# Retries that fail a test in a second rather than after minutes of backoff.
FAST_RETRIES = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05, "timeout_seconds": 10}


def wire_client(server, folder: Path, **settings) -> TushareClient:
    """A TushareClient of ``server`` (a TushareWireServer); ``settings`` add to or override
    the defaults."""
    return TushareClient(
        **{
            "token": server.token,
            "api_url": server.url,
            "rate_limit_dir": str(folder / "ratelimit"),
            "calls_per_minute": 100_000,
            **settings,
        }
    )


def wire_resources(server, folder: Path) -> dict:
    """The assets' resources: ``market_source`` the client of ``server``, ``warehouse`` a
    SQLite file in ``folder``."""
    return {
        "market_source": wire_client(server, folder),
        "warehouse": Warehouse(url=f"sqlite:///{folder / 'warehouse.db'}"),
    }
