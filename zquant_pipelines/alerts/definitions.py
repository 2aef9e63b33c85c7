"""The alert sensors: a run failure sensor and a sensor over blocking check evaluations.

Both are ordinary Dagster sensors, listed and toggled in the UI like any other; they start
RUNNING when ZQUANT_ALERT_URLS names a target and STOPPED otherwise, and read the targets at
each tick. Each keeps a cursor in the instance (the run failure sensor Dagster's own, the
check sensor the storage id of the last evaluation it read), so every failure is announced
once; on its first tick a sensor starts after the latest event instead of announcing history.
A target that does not take a message fails the tick (run failures) or is named in the skip
reason (checks), visible in the sensor's tick history; the event is not sent again.

Freshness deadline alerts belong here too, as a third sensor next to these two.
"""

import dagster as dg

from zquant_pipelines.alerts.messages import check_failure_alert, run_failure_alert
from zquant_pipelines.alerts.notify import alert_urls, deliver, send, ui_url
from zquant_pipelines.constants import TAG_TASK

RUN_FAILURE_SENSOR = "alert_on_run_failure"
CHECK_FAILURE_SENSOR = "alert_on_blocking_check_failure"
# Check evaluations read per tick; the cursor carries the rest to the next tick.
CHECK_EVALUATIONS_PER_TICK = 200
NO_TARGETS = "no alert targets: ZQUANT_ALERT_URLS is empty"
# Dagster's tag on a failed run its run retries will start again (not its last attempt).
WILL_RETRY_TAG = "dagster/will_retry"


def default_status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if alert_urls() else dg.DefaultSensorStatus.STOPPED


def innermost_error(error):
    """The error a step's failure wraps (the user's exception, not Dagster's wrapper)."""
    while error is not None and error.cause is not None:
        error = error.cause
    return error


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
            error = innermost_error(step_failures[0].event_specific_data.error)
            error_text = error.message if error else None
        else:
            failed_step = None
            run_error = getattr(context.failure_event.event_specific_data, "error", None)
            error_text = run_error.message if run_error else context.failure_event.message
        deliver(
            run_failure_alert(
                task=run.tags.get(TAG_TASK),
                run_id=run.run_id,
                job=run.job_name,
                failed_step=failed_step,
                error=error_text,
                ui_url=ui_url(),
            ),
            urls,
        )

    return alert_on_run_failure


def check_failure_alert_sensor(status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.sensor(
        name=CHECK_FAILURE_SENSOR,
        default_status=status,
        description="Sends a notification to ZQUANT_ALERT_URLS for each blocking asset check"
        " that fails: task, run, step, check, its metadata, link.",
    )
    def alert_on_blocking_check_failure(context: dg.SensorEvaluationContext):
        storage = context.instance.event_log_storage
        evaluations = dg.EventRecordsFilter(
            event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION,
            after_cursor=int(context.cursor) if context.cursor else None,
        )
        if context.cursor is None:
            latest = storage.get_event_records(evaluations, limit=1, ascending=False)
            context.update_cursor(str(latest[0].storage_id if latest else 0))
            return dg.SkipReason("started: announcing check failures from now on")
        records = storage.get_event_records(
            evaluations, limit=CHECK_EVALUATIONS_PER_TICK, ascending=True
        )
        urls = alert_urls()
        undelivered = []
        for record in records:
            event = record.event_log_entry.dagster_event
            evaluation = event.event_specific_data
            if urls and evaluation.blocking and not evaluation.passed:
                run = context.instance.get_run_by_id(record.run_id)
                alert = check_failure_alert(
                    task=run.tags.get(TAG_TASK) if run else None,
                    run_id=record.run_id,
                    asset=evaluation.asset_key.to_user_string(),
                    check=evaluation.check_name,
                    step=event.step_key,
                    metadata={key: value.value for key, value in evaluation.metadata.items()},
                    ui_url=ui_url(),
                )
                undelivered.extend(send(alert, urls))
            context.update_cursor(str(record.storage_id))
        if undelivered:
            return dg.SkipReason(f"alerts not delivered to: {', '.join(sorted(set(undelivered)))}")
        if not urls:
            return dg.SkipReason(NO_TARGETS)
        return None

    return alert_on_blocking_check_failure


def build_alert_definitions() -> dg.Definitions:
    status = default_status()
    return dg.Definitions(
        sensors=[run_failure_alert_sensor(status), check_failure_alert_sensor(status)]
    )
