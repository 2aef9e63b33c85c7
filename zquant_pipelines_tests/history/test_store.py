"""Status groups, status filters, storage access and the JSON form shared by history and stats."""

import types
from datetime import UTC, datetime, timedelta, timezone

import dagster as dg
import pytest

from zquant_pipelines.history.store import (
    STATUS_GROUPS,
    NotSqlRunStorageError,
    json_ready,
    parse_statuses,
    sql_run_storage,
)

S = dg.DagsterRunStatus


def test_every_dagster_status_has_exactly_one_group():
    assert set(STATUS_GROUPS) == set(S)
    assert set(STATUS_GROUPS.values()) == {"success", "failed", "running", "canceled"}


def test_queued_and_started_runs_are_running_and_canceling_ones_canceled():
    assert {STATUS_GROUPS[status] for status in (S.QUEUED, S.STARTING, S.STARTED)} == {"running"}
    assert STATUS_GROUPS[S.CANCELING] == STATUS_GROUPS[S.CANCELED] == "canceled"


@pytest.mark.parametrize(
    ("words", "statuses"),
    [
        (["success"], [S.SUCCESS]),
        (["failed", "FAILURE"], [S.FAILURE]),
        (["Started"], [S.STARTED]),
        (["canceled"], [S.CANCELING, S.CANCELED]),
        (
            ["running"],
            [S.QUEUED, S.NOT_STARTED, S.MANAGED, S.STARTING, S.STARTED, S.SUSPENDED],
        ),
    ],
)
def test_status_words_name_dagster_statuses_or_zquant_groups(words, statuses):
    assert parse_statuses(words) == statuses


def test_an_unknown_status_word_is_named_with_the_choices():
    with pytest.raises(ValueError, match=r"statuses: unknown run status 'finished'; expected"):
        parse_statuses(["success", "finished"])


def test_the_sql_run_storage_of_an_instance_is_reached():
    with dg.instance_for_test(set_dagster_home=False) as instance:
        assert sql_run_storage(instance) is instance.run_storage


def test_a_run_storage_without_sql_is_refused_by_name():
    class FileRunStorage:
        pass

    not_sql = types.SimpleNamespace(run_storage=FileRunStorage())
    with pytest.raises(NotSqlRunStorageError, match=r"run_storage: FileRunStorage is not a SQL"):
        sql_run_storage(not_sql)


def test_json_form_writes_times_in_utc():
    market_time = datetime(2026, 2, 27, 15, 0, tzinfo=timezone(timedelta(hours=8)))

    assert json_ready({"at": [market_time], "status": S.SUCCESS}) == {
        "at": [datetime(2026, 2, 27, 7, 0, tzinfo=UTC).isoformat()],
        "status": "SUCCESS",
    }
