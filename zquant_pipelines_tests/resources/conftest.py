"""Fixtures of the resource tests: a Redis key prefix of the test's own."""

import uuid

import pytest
import redis


@pytest.fixture
def redis_key_prefix(redis_url):
    """A key prefix no other test uses; every key under it is deleted after the test."""
    prefix = f"zquant_test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()
