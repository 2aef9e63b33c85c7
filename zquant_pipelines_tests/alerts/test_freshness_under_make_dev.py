"""Freshness under the real `make dev` (webserver + daemon): daily_basic misses the deadline
of the latest open day (the deadline set to 00:00, so that day is due whenever the test
runs). The daemon's freshness sensor records the verdicts on the datasets' checks, which
GraphQL (what the asset's Checks tab shows) reports; the freshness alert sends one
message, and none more on later ticks; `zquant --url ... status` shows the server's verdicts."""

import json

import dagster as dg
import pytest
import requests

from zquant_pipelines import cli
from zquant_pipelines.alerts.definitions import FRESHNESS_ALERT_SENSOR
from zquant_pipelines.constants import (
    ENV_ALERT_URLS,
    ENV_FRESHNESS_DEADLINE,
    ENV_UI_URL,
    ENV_WAREHOUSE_URL,
    FRESHNESS_CHECK,
)
from zquant_pipelines_tests.support.alert_receivers import alert_receivers, finished_tick_count
from zquant_pipelines_tests.support.freshness_warehouse import today_world
from zquant_pipelines_tests.support.make_dev import serve_make_dev
from zquant_pipelines_tests.support.operations_environment import TEST_CATALOG
from zquant_pipelines_tests.support.waiting import wait_until

UI_URL = "http://dagster.example.com"
# The freshness sensor ticks every minute, the alert sensor every 30 s.
DEADLINE_SECONDS = 240
# No run of this test calls tushare: the market source is built, never asked.
UNUSED_TUSHARE_URL = "http://127.0.0.1:9"

pytestmark = pytest.mark.slow

CHECK_STATE = """
query CheckState($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 1) {
    status
    evaluation { severity description }
  }
}
"""


def check_state(url: str, dataset: str) -> list[dict]:
    """The latest freshness execution, as GraphQL (the asset's Checks tab) shows it."""
    reply = requests.post(
        f"{url}/graphql",
        json={
            "query": CHECK_STATE,
            "variables": {"assetKey": {"path": [dataset]}, "checkName": FRESHNESS_CHECK},
        },
        timeout=60,
    )
    assert "errors" not in reply.json(), reply.text
    return reply.json()["data"]["assetCheckExecutions"]


def test_a_missed_deadline_is_shown_and_announced_once(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    _, before, latest = today_world(url, late=("daily_basic",))
    with alert_receivers() as (web, mail):
        for name, value in {
            ENV_ALERT_URLS: f"{web.url},{mail.url}",
            ENV_UI_URL: UI_URL,
            ENV_FRESHNESS_DEADLINE: "00:00",
            ENV_WAREHOUSE_URL: url,
        }.items():
            monkeypatch.setenv(name, value)
        (tmp_path / "make_dev").mkdir()
        with serve_make_dev(tmp_path / "make_dev", UNUSED_TUSHARE_URL, TEST_CATALOG) as dev_url:
            wait_until(lambda: web.received and mail.received, DEADLINE_SECONDS, "an alert")
            instance = dg.DagsterInstance.get()
            # The tick that sent it ends, then one more tick runs to its end.
            ticks_at_alert = wait_until(
                lambda: finished_tick_count(instance, FRESHNESS_ALERT_SENSOR),
                DEADLINE_SECONDS,
                "the alert's tick to end",
            )
            wait_until(
                lambda: (finished_tick_count(instance, FRESHNESS_ALERT_SENSOR) or 0)
                > ticks_at_alert,
                DEADLINE_SECONDS,
                "an alert tick after the alert",
            )
            late_state = check_state(dev_url, "daily_basic")
            on_time_state = check_state(dev_url, "daily")
            capsys.readouterr()
            code = cli.main(["--url", dev_url, "status", "--json"])
            shown = capsys.readouterr()
        web_texts, mail_texts = web.texts(), mail.texts()

    for texts in (web_texts, mail_texts):
        # A failure shows every message received, title and body, as received.
        assert len(texts) == 1, f"expected one alert, received {len(texts)}: {texts}"
        (text,) = texts
        assert text.splitlines()[:5] == [
            f"zquant: daily_basic for {latest} missed its deadline",
            "Dataset: daily_basic",
            f"Day expected: {latest} (open day, due by {latest}T00:00:00+08:00)",
            f"Latest complete day: {before}",
            f"Missing open days: {latest}",
        ]
        assert f"Link: {UI_URL}/assets/daily_basic?view=checks" in text, text
    assert late_state == [
        {
            "status": "FAILED",
            "evaluation": {
                "severity": "ERROR",
                "description": f"daily_basic for {latest} missed its deadline",
            },
        }
    ]
    assert [execution["status"] for execution in on_time_state] == ["SUCCEEDED"]
    assert code == 0, shown.err
    verdicts = {row["dataset"]: row for row in json.loads(shown.out)}
    assert verdicts["daily_basic"]["on_time"] is False
    assert verdicts["daily_basic"]["latest_complete_day"] == before.isoformat()
    assert verdicts["daily"]["on_time"] is True
    assert verdicts["daily"]["expected_day"] == latest.isoformat()
