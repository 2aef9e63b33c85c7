"""Schedule status and next tick, by zquant's rules (operations/status.py)."""

import datetime as dt

import pytest
from dagster._core.scheduler.instigation import InstigatorStatus

from zquant_pipelines.constants import TASK_SORT_KEYS
from zquant_pipelines.operations.local import stored_trigger_running
from zquant_pipelines.operations.status import (
    NEXT_TICK_KEY,
    ROW_SORT_KEYS,
    TriggerState,
    instigator_name,
    next_tick,
    schedule_status,
)
from zquant_pipelines.tasks.catalog import parse_catalog

NOW = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)  # a Friday, 17:00 in Shanghai


@pytest.mark.parametrize(
    "enabled, paused, in_flight, latest, has_trigger, overdue, expected",
    [
        (False, True, True, "SUCCESS", True, False, "disabled"),
        (True, True, True, "FAILURE", True, False, "paused"),
        (True, False, True, "SUCCESS", True, False, "running"),
        (True, False, False, "STARTED", True, False, "running"),
        # zquant's pending: enabled and waiting for its next fire, also after a success.
        (True, False, False, "SUCCESS", True, False, "pending"),
        (True, False, False, None, True, False, "pending"),
        (True, False, False, "FAILURE", True, False, "failed"),
        (True, False, False, "CANCELED", True, False, "failed"),
        # A trigger over 300 s late (the daemon is not ticking): disabled.
        (True, False, False, "SUCCESS", True, True, "disabled"),
        (True, False, True, None, True, True, "running"),
        # No trigger (zquant: no scheduler job): how the latest run went, else disabled.
        (True, False, False, "SUCCESS", False, False, "success"),
        (True, False, False, "FAILURE", False, False, "failed"),
        (True, False, False, None, False, False, "disabled"),
        (True, False, True, None, False, False, "running"),
    ],
)
def test_schedule_status(enabled, paused, in_flight, latest, has_trigger, overdue, expected):
    assert schedule_status(enabled, paused, in_flight, latest, has_trigger, overdue) == expected


@pytest.fixture(scope="module")
def tasks():
    catalog = parse_catalog(
        {
            "tasks": [
                {
                    "name": "evening",
                    "task_type": "common_task",
                    "cron_expression": "0 18 * * 1-5",
                    "config": {"task_action": "example_task"},
                },
                {
                    "name": "often",
                    "task_type": "common_task",
                    "interval_seconds": 300,
                    "config": {"task_action": "example_task"},
                },
                {
                    "name": "by_hand",
                    "task_type": "manual_task",
                    "config": {"task_action": "example_task"},
                },
            ]
        }
    )
    return catalog.tasks


def test_next_tick_of_a_running_schedule_is_its_next_fire_time(tasks):
    running = TriggerState("evening_schedule", running=True)
    tick = next_tick(tasks["evening"], running, NOW)
    assert tick == dt.datetime(2024, 3, 1, 10, 0, tzinfo=dt.UTC)  # 18:00 Shanghai that day
    assert next_tick(tasks["evening"], TriggerState("evening_schedule", False), NOW) is None


def test_next_tick_of_a_sensor_is_its_last_tick_plus_the_interval(tasks):
    last = NOW - dt.timedelta(seconds=100)
    state = TriggerState("often_sensor", running=True, last_tick=last)
    assert next_tick(tasks["often"], state, NOW) == last + dt.timedelta(seconds=300)
    assert next_tick(tasks["often"], TriggerState("often_sensor", True), NOW) is None


def test_instigator_names(tasks):
    names = {name: instigator_name(task) for name, task in tasks.items()}
    assert names == {"evening": "evening_schedule", "often": "often_sensor", "by_hand": None}


@pytest.mark.parametrize(
    "stored, enabled, expected",
    [
        (None, True, True),
        (None, False, False),
        (InstigatorStatus.DECLARED_IN_CODE, True, True),
        (InstigatorStatus.DECLARED_IN_CODE, False, False),
        (InstigatorStatus.STOPPED, True, False),
        (InstigatorStatus.RUNNING, False, True),
    ],
)
def test_stored_state_wins_over_the_default(stored, enabled, expected):
    assert stored_trigger_running(stored, enabled) is expected


def test_the_cli_offers_exactly_the_sort_keys_the_list_orders_by():
    assert set(TASK_SORT_KEYS) == {*ROW_SORT_KEYS, NEXT_TICK_KEY}
