"""Resources picked from the environment: where the tushare budget lives."""

import dagster as dg
import pytest

from zquant_pipelines.constants import ENV_RATE_LIMIT_URL, ENV_TUSHARE_API_URL, ENV_TUSHARE_TOKEN
from zquant_pipelines.resources.definitions import market_source_from_env
from zquant_pipelines.resources.rate_limit import FileRateLimiter, RedisRateLimiter

RATE_LIMIT_URL = "redis://:s3cret-redis-password@127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("url", "store"), [(RATE_LIMIT_URL, RedisRateLimiter), (None, FileRateLimiter)]
)
def test_rate_limit_url_from_env_picks_the_store(monkeypatch, url, store):
    monkeypatch.setenv(ENV_TUSHARE_TOKEN, "a-token")
    if url:
        monkeypatch.setenv(ENV_RATE_LIMIT_URL, url)
    else:
        monkeypatch.delenv(ENV_RATE_LIMIT_URL, raising=False)

    source = market_source_from_env()
    with dg.build_resources({"market_source": source}) as resources:
        client = resources.market_source
        assert client.rate_limit_url == url
        assert type(client._rate_limiter()) is store
    # Dagster shows the variable's name, never the URL with its password.
    assert "s3cret" not in repr(source)


def test_tushare_api_url_is_passed_by_name(monkeypatch):
    gateway = "http://gw-user:gw-s3cret@127.0.0.1:9/api"
    monkeypatch.setenv(ENV_TUSHARE_TOKEN, "a-token")
    monkeypatch.setenv(ENV_TUSHARE_API_URL, gateway)
    source = market_source_from_env()
    # Dagster snapshots the resource's config: an EnvVar is shown as its name only.
    assert source.api_url == dg.EnvVar(ENV_TUSHARE_API_URL)
    with dg.build_resources({"market_source": source}) as resources:
        assert resources.market_source.api_url == gateway
