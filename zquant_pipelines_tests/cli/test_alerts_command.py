"""`zquant alerts test` as a real process: every target gets a test notification; a dead
target makes it exit 1 naming that target without its password."""

import os
import subprocess
import sys

from zquant_pipelines.constants import ENV_ALERT_URLS
from zquant_pipelines_tests.support.alert_receivers import alert_receivers
from zquant_pipelines_tests.support.ports import unused_port

ZQUANT = os.path.join(os.path.dirname(sys.executable), "zquant")
DEADLINE_SECONDS = 120


def alerts_test(urls: str | None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != ENV_ALERT_URLS}
    if urls is not None:
        env[ENV_ALERT_URLS] = urls
    return subprocess.run(
        [ZQUANT, "alerts", "test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
    )


def test_a_dead_target_is_named_and_the_good_ones_still_receive():
    dead = f"json://ops:hunter2@127.0.0.1:{unused_port()}/hook"
    with alert_receivers() as (web, mail):
        completed = alerts_test(f"{web.url}, {dead},{mail.url}")
        web_texts, mail_texts = web.texts(), mail.texts()
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "not delivered to: #2 json://ops:***@127.0.0.1:" in completed.stderr
    assert "delivered to 2 of 3 targets" in completed.stdout
    assert "hunter2" not in completed.stdout + completed.stderr
    (web_text,) = web_texts
    (mail_text,) = mail_texts
    for text in (web_text, mail_text):
        assert "zquant: test notification" in text


def test_all_targets_alive_exits_0_and_no_target_is_a_usage_error():
    with alert_receivers() as (web, _):
        completed = alerts_test(web.url)
        assert len(web.received) == 1
    assert completed.returncode == 0, completed.stderr
    missing = alerts_test(None)
    assert missing.returncode == 2
    assert f"{ENV_ALERT_URLS} names no target" in missing.stderr
