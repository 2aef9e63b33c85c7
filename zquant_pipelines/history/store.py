"""What history and stats share about the Dagster run store.

Owns: reaching the SQL run storage behind an instance, zquant's grouping of Dagster run
statuses (success / failed / running / canceled), parsing status filters, and
``JsonRecord`` (the records' ``to_dict``, in ``json_form``'s JSON form). The run store is
the only execution history; nothing here writes.
"""

from collections.abc import Iterable
from datetime import UTC, datetime

import dagster as dg

# Private module, but it is the base class of both SqliteRunStorage and PostgresRunStorage
# and the only place their `connect()` is declared.
from dagster._core.storage.runs.sql_run_storage import SqlRunStorage

from zquant_pipelines.history.json_form import json_ready

SUCCESS = "success"
FAILED = "failed"
RUNNING = "running"
CANCELED = "canceled"

# Every Dagster status belongs to exactly one group, so the group counts add up to the
# total. "running" is every status that is neither finished nor being canceled: waiting in
# the queue (QUEUED, NOT_STARTED), launching (STARTING), executing (STARTED), held
# (SUSPENDED) or run outside Dagster's control (MANAGED). A CANCELING run was stopped on
# request, so it counts with the canceled ones.
STATUS_GROUPS: dict[dg.DagsterRunStatus, str] = {
    dg.DagsterRunStatus.SUCCESS: SUCCESS,
    dg.DagsterRunStatus.FAILURE: FAILED,
    dg.DagsterRunStatus.QUEUED: RUNNING,
    dg.DagsterRunStatus.NOT_STARTED: RUNNING,
    dg.DagsterRunStatus.MANAGED: RUNNING,
    dg.DagsterRunStatus.STARTING: RUNNING,
    dg.DagsterRunStatus.STARTED: RUNNING,
    dg.DagsterRunStatus.SUSPENDED: RUNNING,
    dg.DagsterRunStatus.CANCELING: CANCELED,
    dg.DagsterRunStatus.CANCELED: CANCELED,
}
# Finished runs form the success-rate denominator; running ones do not (zquant counted them).
FINISHED_GROUPS = (SUCCESS, FAILED, CANCELED)


def statuses_in(*groups: str) -> list[dg.DagsterRunStatus]:
    return [status for status, group in STATUS_GROUPS.items() if group in groups]


def parse_statuses(values: Iterable[str]) -> list[dg.DagsterRunStatus]:
    """Turn status filter words into Dagster statuses.

    Accepts Dagster status names in any case (``failure``, ``STARTED``) and zquant's group
    names (``success``, ``failed``, ``running``, ``canceled``), which stand for every status
    of the group.
    """
    by_name = {status.value: status for status in dg.DagsterRunStatus}
    parsed: list[dg.DagsterRunStatus] = []
    for value in values:
        word = str(value).strip()
        if word.lower() in (SUCCESS, FAILED, RUNNING, CANCELED):
            matches = statuses_in(word.lower())
        elif word.upper() in by_name:
            matches = [by_name[word.upper()]]
        else:
            choices = ", ".join([SUCCESS, FAILED, RUNNING, CANCELED, *by_name])
            raise ValueError(f"statuses: unknown run status {value!r}; expected one of {choices}")
        parsed.extend(status for status in matches if status not in parsed)
    return parsed


class NotSqlRunStorageError(TypeError):
    """The instance keeps runs somewhere history cannot aggregate in SQL."""


def sql_run_storage(instance: dg.DagsterInstance) -> SqlRunStorage:
    storage = instance.run_storage
    if not isinstance(storage, SqlRunStorage):
        raise NotSqlRunStorageError(
            f"run_storage: {type(storage).__name__} is not a SQL run storage; history and stats"
            " need SQLite or PostgreSQL instance storage (the `storage:` section of dagster.yaml)"
        )
    return storage


def utc_from_timestamp(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=UTC)


def utc_from_naive(moment: datetime | None) -> datetime | None:
    """The run store keeps DateTime columns as naive UTC."""
    return None if moment is None else moment.replace(tzinfo=UTC)


def naive_utc(moment: datetime, field: str) -> datetime:
    """A timezone-aware datetime as the run store's naive UTC; naive input is ambiguous."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{field}: {moment.isoformat()!r} has no timezone; pass an aware datetime"
            " (e.g. with tzinfo=ZoneInfo('Asia/Shanghai'))"
        )
    return moment.astimezone(UTC).replace(tzinfo=None)


class JsonRecord:
    """Mixin for the history dataclasses: ``to_dict()`` for ``--json`` output."""

    def to_dict(self) -> dict:
        return json_ready(self)
