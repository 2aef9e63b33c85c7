"""The alert sensors: a run failure sensor, a sensor over blocking check evaluations and a
sensor over the freshness checks' verdicts.

Both are ordinary Dagster sensors, listed and toggled in the UI like any other; they start
RUNNING when ZQUANT_ALERT_URLS names a target and STOPPED otherwise, and read the targets at
each tick. Each keeps a cursor in the instance (the run failure sensor Dagster's own, the
check sensor the id of the last check execution record it read), so every failure is announced
once; on its first tick a sensor starts after the latest event instead of announcing history.
A target that does not take a message fails the tick (run failures) or is named in the skip
reason (checks), visible in the sensor's tick history; the event is not sent again.

The freshness alert reads the latest verdict of each dataset's freshness check (evaluated by
the freshness sensor of assets/freshness.py, or by hand in the UI) and announces a failed one
once per dataset and day expected; its cursor holds the last day announced per dataset. Its
first tick announces a deadline already missed: that is the present, not history.
"""

import json

import dagster as dg

# Private modules, but they are where Dagster names the status of a check's execution record
# and the tags it reads (WILL_RETRY_TAG: a failed run its run retries start again).
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
    WILL_RETRY_TAG,
)

from zquant_pipelines.alerts.messages import (
    Alert,
    check_failure_alert,
    freshness_alert,
    run_failure_alert,
)
from zquant_pipelines.alerts.notify import alert_urls, deliver, send, ui_url
from zquant_pipelines.constants import FRESHNESS_CHECK, FRESHNESS_DATASETS, TAG_TASK

RUN_FAILURE_SENSOR = "alert_on_run_failure"
CHECK_FAILURE_SENSOR = "alert_on_blocking_check_failure"
FRESHNESS_ALERT_SENSOR = "alert_on_missed_freshness_deadline"
# Failed executions read per blocking check and tick; the cursor carries the rest on.
CHECK_EXECUTIONS_PER_TICK = 100
FAILED = AssetCheckExecutionRecordStatus.FAILED
NO_TARGETS = "no alert targets: ZQUANT_ALERT_URLS is empty"


def default_status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if alert_urls() else dg.DefaultSensorStatus.STOPPED


def run_partitions(run: dg.DagsterRun | None) -> str | None:
    """The partition or partition range a run wrote, as its tags name it."""
    tags = run.tags if run else {}
    if partition := tags.get(PARTITION_NAME_TAG):
        return partition
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    return f"{start}...{end}" if start and end else None


def innermost_error_text(error) -> str | None:
    """The message of the error a failure wraps (the user's exception, not Dagster's
    wrapper), its class without the module path: ``Failure: ...``."""
    while error is not None and error.cause is not None:
        error = error.cause
    if error is None:
        return None
    qualified, separator, rest = error.message.partition(": ")
    if separator and error.cls_name and qualified.endswith(error.cls_name):
        return f"{error.cls_name}: {rest}"
    return error.message


def run_failure_alert_sensor(status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR,
        default_status=status,
        description="Sends a notification to ZQUANT_ALERT_URLS for each run that fails"
        " (after its last retry): task, run, failed step, first error line, link.",
    )
    def alert_on_run_failure(context: dg.RunFailureSensorContext):
        run = context.dagster_run
        if run.tags.get(WILL_RETRY_TAG) == "true":
            return  # Dagster starts the run again; its last attempt is announced.
        urls = alert_urls()
        if not urls:
            context.log.info(NO_TARGETS)
            return
        step_failures = context.get_step_failure_events()
        if step_failures:
            failed_step = ", ".join(event.step_key for event in step_failures)
            error_text = innermost_error_text(step_failures[0].event_specific_data.error)
        else:
            failed_step = None
            run_error = getattr(context.failure_event.event_specific_data, "error", None)
            error_text = innermost_error_text(run_error) or context.failure_event.message
        deliver(
            run_failure_alert(
                task=run.tags.get(TAG_TASK),
                run_id=run.run_id,
                job=run.job_name,
                failed_step=failed_step,
                error=error_text,
                ui_url=ui_url(),
                partitions=run_partitions(run),
            ),
            urls,
        )

    return alert_on_run_failure


def check_failure_alert_sensor(status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.sensor(
        name=CHECK_FAILURE_SENSOR,
        default_status=status,
        description="Sends a notification to ZQUANT_ALERT_URLS for each blocking asset check"
        " of this code location that fails: task, run, step, check, its metadata, link.",
    )
    def alert_on_blocking_check_failure(context: dg.SensorEvaluationContext):
        # The check execution records (one table, ids increasing across checks) rather than
        # the event log: a global event cursor does not exist on run-sharded SQLite storage.
        storage = context.instance.event_log_storage
        asset_graph = context.repository_def.asset_graph
        blocking = [
            key
            for key in sorted(asset_graph.asset_check_keys, key=str)
            if asset_graph.get_check_spec(key).blocking
        ]
        if context.cursor is None:
            latest = [
                record.id
                for key in blocking
                for record in storage.get_asset_check_execution_history(key, limit=1)
            ]
            context.update_cursor(str(max(latest, default=0)))
            return dg.SkipReason("started: announcing check failures from now on")
        after = int(context.cursor)
        failures = sorted(
            (
                record
                for key in blocking
                for record in storage.get_asset_check_execution_history(
                    key, limit=CHECK_EXECUTIONS_PER_TICK, status={FAILED}
                )
                if record.id > after
            ),
            key=lambda record: record.id,
        )
        urls = alert_urls()
        undelivered = []
        for record in failures:
            if urls:
                undelivered.extend(send(check_alert(context.instance, record), urls))
            context.update_cursor(str(record.id))
        if undelivered:
            return undelivered_reason(undelivered)
        return dg.SkipReason(NO_TARGETS) if not urls else None

    return alert_on_blocking_check_failure


def check_alert(instance: dg.DagsterInstance, record) -> Alert:
    """The alert of one failed check execution record."""
    event = record.event.dagster_event
    evaluation = event.event_specific_data
    run = instance.get_run_by_id(record.run_id)
    return check_failure_alert(
        task=run.tags.get(TAG_TASK) if run else None,
        run_id=record.run_id,
        asset=evaluation.asset_key.to_user_string(),
        check=evaluation.check_name,
        step=event.step_key,
        metadata={key: value.value for key, value in evaluation.metadata.items()},
        ui_url=ui_url(),
        partitions=run_partitions(run),
    )


def undelivered_reason(undelivered: list[str]) -> dg.SkipReason:
    return dg.SkipReason(f"alerts not delivered to: {', '.join(sorted(set(undelivered)))}")


def freshness_alert_sensor(status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.sensor(
        name=FRESHNESS_ALERT_SENSOR,
        default_status=status,
        description="Sends a notification to ZQUANT_ALERT_URLS once per dataset and open day"
        f" that misses its freshness deadline (the {FRESHNESS_CHECK} checks): dataset, day,"
        " deadline, latest complete day, link.",
    )
    def alert_on_missed_freshness_deadline(context: dg.SensorEvaluationContext):
        announced = json.loads(context.cursor) if context.cursor else {}
        storage = context.instance.event_log_storage
        urls = alert_urls()
        undelivered = []
        for dataset in FRESHNESS_DATASETS:
            key = dg.AssetCheckKey(dg.AssetKey(dataset), FRESHNESS_CHECK)
            history = storage.get_asset_check_execution_history(key, limit=1)
            evaluation = history[0].evaluation if history else None
            if not isinstance(evaluation, dg.AssetCheckEvaluation) or evaluation.passed:
                continue
            metadata = {name: value.value for name, value in evaluation.metadata.items()}
            if announced.get(dataset) == metadata["expected_day"]:
                continue
            if urls:
                undelivered.extend(send(missed_deadline_alert(dataset, metadata), urls))
            announced[dataset] = metadata["expected_day"]
        context.update_cursor(json.dumps(announced, sort_keys=True))
        if undelivered:
            return undelivered_reason(undelivered)
        return dg.SkipReason(NO_TARGETS) if not urls else None

    return alert_on_missed_freshness_deadline


def missed_deadline_alert(dataset: str, metadata: dict) -> Alert:
    """The alert of a failed freshness verdict (its metadata: assets/freshness.py)."""
    return freshness_alert(
        dataset=dataset,
        expected_day=metadata["expected_day"],
        deadline=metadata["deadline"],
        latest_complete_day=metadata.get("latest_complete_day"),
        missing_days=list(metadata["missing_days"]),
        ui_url=ui_url(),
    )


def build_alert_definitions() -> dg.Definitions:
    status = default_status()
    return dg.Definitions(
        sensors=[
            run_failure_alert_sensor(status),
            check_failure_alert_sensor(status),
            freshness_alert_sensor(status),
        ]
    )
