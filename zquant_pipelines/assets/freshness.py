"""Freshness in the UI: a check per dataset that its latest due open day is stored, and the
sensor that evaluates the checks every minute.

Dagster's own freshness (FreshnessPolicy, the freshness check factories) judges the time
since the last materialization on a cron, blind to the exchanges' holidays, and a weekday
holiday's partition is materialized with no data at all. These checks judge the warehouse
against the synced calendar instead (``sync/freshness.py``). The sensor reports each
verdict as a runless check evaluation, only when it changes (a new day expected, a day
stored, a day late), so the check's history is one line per change and the asset's Checks
tab and health show the latest; `Execute` on the check runs the same evaluation in a run.
A failed verdict is what the freshness alert (alerts/definitions.py) announces.
"""

import datetime as dt

import dagster as dg

# Dagster's clock, which its tests (and ours) can freeze.
from dagster._time import get_current_datetime

from zquant_pipelines.constants import FRESHNESS_CHECK, FRESHNESS_DATASETS, MARKET_TIMEZONE
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.sync.freshness import Freshness, freshness

FRESHNESS_SENSOR = "freshness_by_calendar"
FRESHNESS_INTERVAL_SECONDS = 60
FRESHNESS_DESCRIPTION = (
    "Each open trading day (the synced trade_cal; closed days are never due) is stored by"
    f" ZQUANT_FRESHNESS_DEADLINE (default 19:00 {MARKET_TIMEZONE}): at least the row-count"
    " check's share of the stocks listed that day. Evaluated every minute by the"
    f" {FRESHNESS_SENSOR} sensor."
)
# The metadata that makes a verdict: a new value of any of them is a new evaluation.
VERDICT_KEYS = ("expected_day", "latest_complete_day")


def verdict_evaluation(verdict: Freshness) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(verdict.dataset),
        check_name=FRESHNESS_CHECK,
        passed=verdict.on_time,
        metadata=verdict.to_metadata(),
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{verdict.dataset} for {verdict.expected_day} stored by its deadline"
            if verdict.on_time
            else f"{verdict.dataset} for {verdict.expected_day} missed its deadline"
        ),
    )


def is_new(instance: dg.DagsterInstance, evaluation: dg.AssetCheckEvaluation) -> bool:
    """Whether ``evaluation`` differs from the check's latest stored verdict."""
    history = instance.event_log_storage.get_asset_check_execution_history(
        evaluation.asset_check_key, limit=1
    )
    stored = history[0].evaluation if history else None
    if not isinstance(stored, dg.AssetCheckEvaluation):
        return True
    return stored.passed != evaluation.passed or any(
        stored.metadata.get(key) != evaluation.metadata.get(key) for key in VERDICT_KEYS
    )


def new_freshness_evaluations(
    instance: dg.DagsterInstance, warehouse: Warehouse, now: dt.datetime
) -> list[dg.AssetCheckEvaluation]:
    """The verdicts at ``now`` that differ from the stored ones."""
    evaluations = [verdict_evaluation(verdict) for verdict in freshness(warehouse, now)]
    return [evaluation for evaluation in evaluations if is_new(instance, evaluation)]


@dg.multi_asset_check(
    name="freshness_checks",
    specs=[
        dg.AssetCheckSpec(FRESHNESS_CHECK, asset=dataset, description=FRESHNESS_DESCRIPTION)
        for dataset in FRESHNESS_DATASETS
    ],
    can_subset=True,
)
def freshness_checks(context: dg.AssetCheckExecutionContext, warehouse: Warehouse):
    # The UI executes one check or several: each is its own choice.
    selected = context.selected_asset_check_keys
    for verdict in freshness(warehouse, get_current_datetime()):
        evaluation = verdict_evaluation(verdict)
        if evaluation.asset_check_key not in selected:
            continue
        yield dg.AssetCheckResult(
            asset_key=evaluation.asset_key,
            check_name=FRESHNESS_CHECK,
            passed=evaluation.passed,
            metadata=evaluation.metadata,
            severity=evaluation.severity,
            description=evaluation.description,
        )


@dg.sensor(
    name=FRESHNESS_SENSOR,
    minimum_interval_seconds=FRESHNESS_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute: whether daily, adj_factor, daily_basic and factor_daily hold"
    " the latest open day whose deadline passed; records each change of verdict on the"
    f" datasets' {FRESHNESS_CHECK} check.",
)
def freshness_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse):
    try:
        changed = new_freshness_evaluations(context.instance, warehouse, get_current_datetime())
    except ValueError as error:  # no calendar up to today yet (before the first sync)
        return dg.SkipReason(f"no verdict: {error}")
    if not changed:
        return dg.SkipReason("no freshness verdict changed")
    context.log.info(", ".join(evaluation.description for evaluation in changed))
    return dg.SensorResult(asset_events=changed)
