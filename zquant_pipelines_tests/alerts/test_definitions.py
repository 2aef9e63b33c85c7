"""The alert sensors evaluated as the daemon evaluates them (a tick with the cursor of the
last one, over real instance storage) after runs that really failed; the messages arrive at
a local HTTP receiver and a local SMTP server."""

import dagster as dg
import pytest
import yaml
from dagster._core.storage.tags import WILL_RETRY_TAG

from zquant_pipelines.alerts.definitions import (
    CHECK_FAILURE_SENSOR,
    RUN_FAILURE_SENSOR,
    build_alert_definitions,
)
from zquant_pipelines.assets.definitions import build_asset_definitions
from zquant_pipelines.constants import ENV_ALERT_URLS, ENV_UI_URL
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.tasks.builders import build_task_definitions, job_name
from zquant_pipelines.tasks.catalog import parse_catalog
from zquant_pipelines_tests.support.alert_receivers import alert_receivers
from zquant_pipelines_tests.support.catalog_files import catalog_text
from zquant_pipelines_tests.support.ports import unused_port
from zquant_pipelines_tests.support.wire_clients import wire_resources

UI_URL = "http://ui.example.com:3000"
DOOMED_TASK = {
    "name": "doomed",
    "task_type": "manual_task",
    "max_retries": 0,
    "executor": "in_process",
    "config": {"task_action": "example_task", "fail": True},
}
AS_OF, OPEN_DAY = "20261127", "2026-11-27"


@pytest.fixture
def receivers(monkeypatch):
    with alert_receivers() as (web, mail):
        monkeypatch.setenv(ENV_ALERT_URLS, f"{web.url},{mail.url}")
        monkeypatch.setenv(ENV_UI_URL, UI_URL)
        yield web, mail


def tick(defs: dg.Definitions, sensor_name: str, instance, cursor: str | None) -> str | None:
    """One evaluation of the sensor as the daemon makes it; the cursor it leaves."""
    sensor = defs.resolve_sensor_def(sensor_name)
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, repository_def=defs.get_repository_def()
    )
    data = sensor.evaluate_tick(context)
    errors = [reaction.error for reaction in data.dagster_run_reactions or [] if reaction.error]
    assert not errors, errors
    return data.cursor


def doomed_task_definitions(tmp_path) -> dg.Definitions:
    """The alert sensors with a task whose every run fails (ZQUANT_ALERT_URLS read now)."""
    catalog = parse_catalog(yaml.safe_load(catalog_text([DOOMED_TASK])))
    resources = {
        "market_source": SampleMarketSource(),
        "warehouse": Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}"),
    }
    return dg.Definitions.merge(
        build_task_definitions(catalog),
        dg.Definitions(resources=resources),
        build_alert_definitions(),
    )


def test_a_failed_task_run_is_announced_once_to_every_target(receivers, instance, tmp_path):
    web, mail = receivers
    defs = doomed_task_definitions(tmp_path)
    cursor = tick(defs, RUN_FAILURE_SENSOR, instance, None)  # starts after what is stored

    result = defs.resolve_job_def(job_name("doomed")).execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not result.success
    (step,) = [event.step_key for event in result.get_step_failure_events()]
    cursor = tick(defs, RUN_FAILURE_SENSOR, instance, cursor)

    for texts in (web.texts(), mail.texts()):
        (text,) = texts
        assert "zquant: task doomed failed" in text
        assert "Task: doomed" in text
        assert f"Run: {result.run_id} (job {job_name('doomed')})" in text
        assert f"Failed step: {step}" in text
        assert "Error: Failure: example_task failed on attempt 1 as configured" in text
        assert f"Link: {UI_URL}/runs/{result.run_id}" in text

    tick(defs, RUN_FAILURE_SENSOR, instance, cursor)
    assert len(web.received) == 1 and len(mail.received) == 1


def test_a_failed_blocking_check_is_announced_once(
    receivers, instance, tushare_server_factory, tmp_path
):
    """The stock list went stale (most stocks gone): daily's blocking row-count check fails."""
    web, mail = receivers
    server = tushare_server_factory(SampleMarketSource(as_of=AS_OF))
    resources = wire_resources(server, tmp_path)
    warehouse = resources["warehouse"]
    defs = dg.Definitions.merge(
        build_asset_definitions(), dg.Definitions(resources=resources), build_alert_definitions()
    )
    job = defs.resolve_job_def("market_data_job")
    assert job.execute_in_process(instance=instance, partition_key=OPEN_DAY).success
    cursor = tick(defs, CHECK_FAILURE_SENSOR, instance, None)  # the passed checks are history
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM stock_basic WHERE ts_code > '000200'")
    server.short_reply("stock_basic", 0)

    result = job.execute_in_process(instance=instance, partition_key=OPEN_DAY, raise_on_error=False)
    assert not result.success
    failed_blocking = {
        evaluation.asset_key.to_user_string()
        for evaluation in result.get_asset_check_evaluations()
        if not evaluation.passed and evaluation.check_name == "row_count_vs_listed"
    }
    assert "daily" in failed_blocking
    cursor = tick(defs, CHECK_FAILURE_SENSOR, instance, cursor)

    for texts in (web.texts(), mail.texts()):
        assert len(texts) == len(failed_blocking)
        (daily,) = [text for text in texts if "blocking check daily row_count_vs_listed" in text]
        assert f"Run: {result.run_id}" in daily
        assert f"Partitions: {OPEN_DAY}" in daily
        assert "Error: blocking check row_count_vs_listed of daily failed" in daily
        assert f'"{OPEN_DAY}": {{"listed": ' in daily
        assert f"Link: {UI_URL}/runs/{result.run_id}" in daily
    assert not any("no_duplicate_keys" in text for text in web.texts())

    tick(defs, CHECK_FAILURE_SENSOR, instance, cursor)
    assert len(web.received) == len(failed_blocking) == len(mail.received)
    warehouse.dispose()


def test_the_sensors_start_stopped_without_targets_and_running_with_them(monkeypatch):
    monkeypatch.delenv(ENV_ALERT_URLS, raising=False)
    stopped = build_alert_definitions()
    monkeypatch.setenv(ENV_ALERT_URLS, "json://127.0.0.1:9/")
    running = build_alert_definitions()
    for name in (RUN_FAILURE_SENSOR, CHECK_FAILURE_SENSOR):
        assert stopped.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.STOPPED
        assert running.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING


def test_only_the_last_attempt_of_a_retried_run_is_announced(receivers, tmp_path):
    """With Dagster's run retries on, a failed run that will be retried is not announced;
    its last attempt is."""
    web, _ = receivers
    defs = doomed_task_definitions(tmp_path)
    job = defs.resolve_job_def(job_name("doomed"))
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(
        temp_dir=str(tmp_path / "dagster_home"), overrides={"run_retries": {"enabled": True}}
    ) as instance:
        cursor = tick(defs, RUN_FAILURE_SENSOR, instance, None)
        first = job.execute_in_process(
            instance=instance, raise_on_error=False, tags={"dagster/max_retries": "1"}
        )
        assert instance.get_run_by_id(first.run_id).tags[WILL_RETRY_TAG] == "true"
        cursor = tick(defs, RUN_FAILURE_SENSOR, instance, cursor)
        assert web.received == []

        last = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={"dagster/max_retries": "0"},  # its retries used up
        )
        assert instance.get_run_by_id(last.run_id).tags[WILL_RETRY_TAG] == "false"
        tick(defs, RUN_FAILURE_SENSOR, instance, cursor)
    (text,) = web.texts()
    assert f"Run: {last.run_id}" in text


def test_a_dead_target_fails_the_tick_naming_it_without_its_password(
    monkeypatch, instance, tmp_path
):
    dead = f"json://ops:hunter2@127.0.0.1:{unused_port()}/"
    monkeypatch.setenv(ENV_ALERT_URLS, dead)
    defs = doomed_task_definitions(tmp_path)
    cursor = tick(defs, RUN_FAILURE_SENSOR, instance, None)
    defs.resolve_job_def(job_name("doomed")).execute_in_process(
        instance=instance, raise_on_error=False
    )
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, repository_def=defs.get_repository_def()
    )
    data = defs.resolve_sensor_def(RUN_FAILURE_SENSOR).evaluate_tick(context)
    (reaction,) = data.dagster_run_reactions
    error = reaction.error.to_string()
    assert "alert not delivered to: #1 json://ops:***@127.0.0.1:" in error
    assert "hunter2" not in error
