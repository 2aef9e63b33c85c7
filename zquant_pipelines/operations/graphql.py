"""The operations through a Dagster webserver's GraphQL API (`zquant --url http://HOST:PORT`).

Every query and mutation document is a module constant (``DOCUMENTS`` lists them), checked
against the installed dagster-graphql schema by the tests. Results are turned into the
same records the local back end returns, by the same definitions:

- history pages use ``runsOrError`` with the task tag filter; ``count`` is the true total;
- stats count each status group with ``runsOrError { count }`` (the server counts in SQL)
  and read the start and end times of finished runs, page by page, for the average and the
  nearest-rank p95, so durations cost one pass over the finished runs: the SQL aggregation
  of ``history.stats`` needs direct access to the run store (local mode);
- error summaries and output metadata come from the run's events (``logsForRun``).

Every URL printed goes through ``redaction.redact_credentials`` (--url may carry a password).
A `--read-only` webserver's refusals become one readable error naming the server.

Runs launched here wait in the server's queue until its daemon starts them.
"""

import datetime as dt
import math
import re
import time
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import requests

from zquant_pipelines.constants import TAG_TASK
from zquant_pipelines.history.runs import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    HistoryPage,
    RunDetail,
    RunSummary,
    StepSummary,
)
from zquant_pipelines.history.stats import P95_PERCENT, StatsReport, TaskStats
from zquant_pipelines.history.store import (
    CANCELED,
    FAILED,
    FINISHED_GROUPS,
    RUNNING,
    SUCCESS,
    parse_statuses,
    statuses_in,
    utc_from_timestamp,
)
from zquant_pipelines.operations.base import (
    DEFAULT_RUN_TIMEOUT_SECONDS,
    REPOSITORY_NAME,
    OperationFailed,
    Operations,
    RunOutcome,
    UsageProblem,
    location_name,
)
from zquant_pipelines.operations.status import RunState, TriggerState, instigator_name
from zquant_pipelines.redaction import redact_credentials
from zquant_pipelines.tasks.builders import IN_FLIGHT_STATUSES, job_name, pool_name, task_tags
from zquant_pipelines.tasks.catalog import TaskSpec
from zquant_pipelines.tasks.control import PAUSED_SLOTS

REQUEST_TIMEOUT_SECONDS = 60
DURATION_PAGE_SIZE = 1000
EVENT_PAGE_SIZE = 1000
RUN_POLL_SECONDS = 1.0
# Dagster's run retries tag each retried run with these (dagster._core.storage.tags).
RETRY_NUMBER_TAG = "dagster/retry_number"
PARENT_RUN_ID_TAG = "dagster/parent_run_id"
ROOT_RUN_ID_TAG = "dagster/root_run_id"
FINISHED_STATUSES = [status.value for status in statuses_in(*FINISHED_GROUPS)]
# What a `--read-only` webserver answers a mutation with: the result type of union-typed
# mutations, and inside the GraphQL error of Boolean-typed ones (setConcurrencyLimit:
# "Boolean cannot represent a non boolean value: <GrapheneUnauthorizedError instance>").
UNAUTHORIZED = "UnauthorizedError"

RUN_FIELDS = """
fragment RunFields on Run {
  runId
  jobName
  status
  creationTime
  startTime
  endTime
  tags { key value }
}
"""

TRIGGER_STATES = """
query TriggerStates($repositorySelector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $repositorySelector) {
    __typename
    ... on Repository {
      schedules { name scheduleState { id status } }
      sensors {
        name
        sensorState {
          id
          status
          typeSpecificData { ... on SensorData { lastTickTimestamp } }
        }
      }
    }
    ... on Error { message }
  }
}
"""

START_SCHEDULE = """
mutation StartSchedule($scheduleSelector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $scheduleSelector) {
    __typename
    ... on ScheduleStateResult { scheduleState { id status } }
    ... on Error { message }
  }
}
"""

STOP_SCHEDULE = """
mutation StopRunningSchedule($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename
    ... on ScheduleStateResult { scheduleState { id status } }
    ... on Error { message }
  }
}
"""

START_SENSOR = """
mutation StartSensor($sensorSelector: SensorSelector!) {
  startSensor(sensorSelector: $sensorSelector) {
    __typename
    ... on Sensor { sensorState { id status } }
    ... on Error { message }
  }
}
"""

STOP_SENSOR = """
mutation StopSensor($id: String!) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { id status } }
    ... on Error { message }
  }
}
"""

CONCURRENCY_LIMITS = """
query ConcurrencyLimits {
  instance { concurrencyLimits { concurrencyKey limit } }
}
"""

SET_CONCURRENCY_LIMIT = """
mutation SetConcurrencyLimit($concurrencyKey: String!, $limit: Int!) {
  setConcurrencyLimit(concurrencyKey: $concurrencyKey, limit: $limit)
}
"""

DELETE_CONCURRENCY_LIMIT = """
mutation DeleteConcurrencyLimit($concurrencyKey: String!) {
  deleteConcurrencyLimit(concurrencyKey: $concurrencyKey)
}
"""

RUN_STATE = """
query RunState($latest: RunsFilter!, $inFlight: RunsFilter!) {
  latest: runsOrError(filter: $latest, limit: 1) {
    __typename
    ... on Runs { results { runId status } }
    ... on Error { message }
  }
  inFlight: runsOrError(filter: $inFlight, limit: 1) {
    __typename
    ... on Runs { results { runId } }
    ... on Error { message }
  }
}
"""

RUNS_PAGE = (
    """
query RunsPage($filter: RunsFilter!, $cursor: String, $limit: Int!) {
  runsOrError(filter: $filter, cursor: $cursor, limit: $limit) {
    __typename
    ... on Runs { count results { ...RunFields } }
    ... on Error { message }
  }
}
"""
    + RUN_FIELDS
)

RUN_COUNTS = """
query RunCounts(
  $total: RunsFilter!
  $success: RunsFilter!
  $failed: RunsFilter!
  $running: RunsFilter!
  $canceled: RunsFilter!
) {
  total: runsOrError(filter: $total, limit: 1) {
    ...RunCount
    ... on Runs { results { creationTime } }
  }
  success: runsOrError(filter: $success) { ...RunCount }
  failed: runsOrError(filter: $failed) { ...RunCount }
  running: runsOrError(filter: $running) { ...RunCount }
  canceled: runsOrError(filter: $canceled) { ...RunCount }
}

fragment RunCount on RunsOrError {
  __typename
  ... on Runs { count }
  ... on Error { message }
}
"""

RUN_TIMES = """
query RunTimes($filter: RunsFilter!, $cursor: String, $limit: Int!) {
  runsOrError(filter: $filter, cursor: $cursor, limit: $limit) {
    __typename
    ... on Runs { results { runId startTime endTime } }
    ... on Error { message }
  }
}
"""

TASK_TAG_VALUES = """
query TaskTagValues($tagKeys: [String!]) {
  runTagsOrError(tagKeys: $tagKeys) {
    __typename
    ... on RunTags { tags { key values } }
    ... on PythonError { message }
  }
}
"""

RUN_DETAIL = (
    """
query RunDetail($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      ...RunFields
      stepStats { stepKey status startTime endTime attempts { startTime } }
    }
    ... on Error { message }
  }
}
"""
    + RUN_FIELDS
)

RUN_STATUS = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status }
    ... on Error { message }
  }
}
"""

RUN_EVENTS = """
query RunEvents($runId: ID!, $afterCursor: String, $limit: Int) {
  logsForRun(runId: $runId, afterCursor: $afterCursor, limit: $limit) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on ExecutionStepFailureEvent {
          stepKey
          message
          error { message causes { message } }
        }
        ... on RunFailureEvent {
          stepKey
          message
          error { message causes { message } }
        }
        ... on ExecutionStepOutputEvent {
          stepKey
          metadataEntries {
            label
            ... on IntMetadataEntry { intRepr }
            ... on FloatMetadataEntry { floatValue }
            ... on TextMetadataEntry { text }
            ... on BoolMetadataEntry { boolValue }
          }
        }
      }
    }
    ... on Error { message }
  }
}
"""

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""

RELOAD_LOCATION = """
mutation ReloadLocation($repositoryLocationName: String!) {
  reloadRepositoryLocation(repositoryLocationName: $repositoryLocationName) {
    __typename
    ... on WorkspaceLocationEntry {
      name
      loadStatus
      locationOrLoadError {
        __typename
        ... on RepositoryLocation {
          repositories { name jobs { name } schedules { name } sensors { name } }
        }
        ... on PythonError { message }
      }
    }
    ... on Error { message }
  }
}
"""

DOCUMENTS = {
    "TriggerStates": TRIGGER_STATES,
    "StartSchedule": START_SCHEDULE,
    "StopRunningSchedule": STOP_SCHEDULE,
    "StartSensor": START_SENSOR,
    "StopSensor": STOP_SENSOR,
    "ConcurrencyLimits": CONCURRENCY_LIMITS,
    "SetConcurrencyLimit": SET_CONCURRENCY_LIMIT,
    "DeleteConcurrencyLimit": DELETE_CONCURRENCY_LIMIT,
    "RunState": RUN_STATE,
    "RunsPage": RUNS_PAGE,
    "RunCounts": RUN_COUNTS,
    "RunTimes": RUN_TIMES,
    "TaskTagValues": TASK_TAG_VALUES,
    "RunDetail": RUN_DETAIL,
    "RunStatus": RUN_STATUS,
    "RunEvents": RUN_EVENTS,
    "LaunchRun": LAUNCH_RUN,
    "ReloadLocation": RELOAD_LOCATION,
}


def graphql_endpoint(url: str) -> str:
    """``http://HOST:PORT`` (or its /graphql) as the GraphQL endpoint; bad URLs refused."""
    try:
        parts = urlsplit(url.strip())
        # Reading the port checks it (parts.port raises for one out of range).
        is_address = parts.scheme in ("http", "https") and bool(parts.netloc) and parts.port != 0
    except ValueError:  # a malformed IPv6 host, a port out of range
        is_address = False
    if not is_address:
        raise UsageProblem(
            f"--url {redact_credentials(url)!r} is not a webserver address: give http://HOST:PORT"
            " (e.g. http://127.0.0.1:3000, where `make dev` serves)"
        )
    base = url.strip().rstrip("/")
    return base if base.endswith("/graphql") else f"{base}/graphql"


def task_filter(task: str, statuses: Sequence[str] | None = None, **extra) -> dict:
    """A RunsFilter input for the runs of ``task`` (optionally of some statuses)."""
    runs_filter = {"tags": [{"key": TAG_TASK, "value": task}], **extra}
    if statuses is not None:
        runs_filter["statuses"] = list(statuses)
    return runs_filter


def nearest_rank_p95(durations: Sequence[float]) -> float | None:
    """The ``ceil(0.95 n)``-th smallest duration, as ``history.stats`` computes it in SQL."""
    if not durations:
        return None
    rank = -(-P95_PERCENT * len(durations) // 100)
    return sorted(durations)[rank - 1]


def innermost_error_line(event: Mapping) -> str:
    """The first line of the innermost cause of a failure event, as ``error_summary``."""
    error = event.get("error")
    if error is None:
        text = event["message"]
    else:
        text = (error["causes"][-1] if error["causes"] else error)["message"]
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{event['stepKey']}: {first_line}" if event.get("stepKey") else first_line


def metadata_value(entry: Mapping):
    if "intRepr" in entry:
        return int(entry["intRepr"])
    for key in ("floatValue", "text", "boolValue"):
        if key in entry:
            return entry[key]
    return None


class GraphQLOperations(Operations):
    """Operations through the GraphQL API at ``url`` (``http://HOST:PORT``)."""

    def __init__(self, url: str, run_timeout_seconds: float = DEFAULT_RUN_TIMEOUT_SECONDS):
        self.endpoint = graphql_endpoint(url)
        # The server as messages name it: its password replaced.
        self.server = redact_credentials(self.endpoint.removesuffix("/graphql"))
        self.location = location_name()
        self.run_timeout_seconds = run_timeout_seconds
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def execute(self, document: str, variables: Mapping | None = None) -> dict:
        """The ``data`` of one GraphQL request; transport and GraphQL errors are raised."""
        try:
            response = self._session.post(
                self.endpoint,
                json={"query": document, "variables": dict(variables or {})},
                timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except requests.RequestException as error:
            # The exception's text may quote the URL, user-info included.
            raise OperationFailed(
                redact_credentials(
                    f"cannot reach the Dagster webserver at {self.server}: {error}; start one"
                    " with `make dev` or fix --url / ZQUANT_DAGSTER_URL"
                )
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not ("data" in body or body.get("errors")):
            content_type = response.headers.get("Content-Type", "no content type")
            raise OperationFailed(
                f"--url {self.server} is not a Dagster webserver: POST /graphql answered HTTP"
                f" {response.status_code} ({content_type}), not GraphQL"
            )
        if body.get("errors"):
            messages = "; ".join(error.get("message", str(error)) for error in body["errors"])
            if UNAUTHORIZED in messages:
                named = re.search(r"mutation\s+(\w+)", document)
                raise self.read_only_refusal(named[1] if named else "a change")
            raise OperationFailed(f"GraphQL error from {self.server}: {messages}")
        return body["data"]

    def read_only_refusal(self, change: str) -> OperationFailed:
        """The error for the mutation ``change`` that a `--read-only` webserver refused."""
        return OperationFailed(
            f"{self.server} is a read-only Dagster webserver: it refused {change}. Make changes"
            " through the editors' webserver (deploy/README.md, Access)"
        )

    def result(self, data: Mapping, field: str, expected: str) -> dict:
        """``data[field]`` when it is of type ``expected``, else its error raised."""
        value = data[field]
        if value["__typename"] == UNAUTHORIZED:
            raise self.read_only_refusal(field)
        if value["__typename"] != expected:
            message = value.get("message") or value["__typename"]
            raise OperationFailed(f"{field}: {value['__typename']}: {message}")
        return value

    # --- reads -------------------------------------------------------------------------

    def trigger_states(self, tasks: Sequence[TaskSpec]) -> dict[str, TriggerState]:
        repository = self._repository_instigators()
        states = {}
        for task in tasks:
            name = instigator_name(task)
            if name is None:
                continue
            state = repository.get(name)
            if state is None:
                raise OperationFailed(
                    f"the server's code location {self.location} has no {name} for task"
                    f" {task.name!r}: its tasks.yaml differs from this one; reload it with"
                    " `zquant --url URL reload`"
                )
            data = state.get("typeSpecificData") or {}
            states[task.name] = TriggerState(
                instigator_name=name,
                running=state["status"] == "RUNNING",
                last_tick=utc_from_timestamp(data.get("lastTickTimestamp")),
            )
        return states

    def paused_tasks(self) -> set[str]:
        prefix = pool_name("")
        limits = self.execute(CONCURRENCY_LIMITS)["instance"]["concurrencyLimits"]
        return {
            limit["concurrencyKey"].removeprefix(prefix)
            for limit in limits
            if limit["concurrencyKey"].startswith(prefix) and limit["limit"] == PAUSED_SLOTS
        }

    def run_states(self, task_names: Sequence[str]) -> dict[str, RunState]:
        in_flight = [status.value for status in IN_FLIGHT_STATUSES]
        states = {}
        for name in task_names:
            data = self.execute(
                RUN_STATE, {"latest": task_filter(name), "inFlight": task_filter(name, in_flight)}
            )
            latest = self.result(data, "latest", "Runs")["results"]
            flying = self.result(data, "inFlight", "Runs")["results"]
            states[name] = RunState(
                latest_run_id=latest[0]["runId"] if latest else None,
                latest_status=latest[0]["status"] if latest else None,
                in_flight=bool(flying),
            )
        return states

    def history(
        self,
        task: str,
        statuses: Sequence[str] | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> HistoryPage:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise UsageProblem(
                f"--limit: expected an integer from 1 to {MAX_PAGE_SIZE}, got {limit}"
            )
        try:
            run_statuses = (
                [status.value for status in parse_statuses(statuses)] if statuses else None
            )
        except ValueError as error:
            raise UsageProblem(str(error)) from None
        if (
            cursor is not None
            and self.execute(RUN_STATUS, {"runId": cursor})["runOrError"]["__typename"] != "Run"
        ):
            raise UsageProblem(f"cursor: no run with id {cursor!r}; pass a next_cursor of a page")
        data = self.execute(
            RUNS_PAGE,
            {"filter": task_filter(task, run_statuses), "cursor": cursor, "limit": limit + 1},
        )
        runs = self.result(data, "runsOrError", "Runs")
        shown = runs["results"][:limit]
        return HistoryPage(
            task=task,
            statuses=run_statuses,
            total=runs["count"],
            runs=[self._run_summary(run) for run in shown],
            next_cursor=shown[-1]["runId"] if len(runs["results"]) > limit else None,
        )

    def run_detail(self, run_id: str) -> RunDetail:
        data = self.execute(RUN_DETAIL, {"runId": run_id})
        if data["runOrError"]["__typename"] == "RunNotFoundError":
            raise OperationFailed(
                f"run_id: no run {run_id!r} in the run store; list a task's runs with"
                " `zquant history NAME`"
            )
        run = self.result(data, "runOrError", "Run")
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        steps = [
            StepSummary(
                step_key=step["stepKey"],
                status=step["status"],
                start=utc_from_timestamp(step["startTime"]),
                end=utc_from_timestamp(step["endTime"]),
                duration_seconds=_duration(step["startTime"], step["endTime"]),
                attempts=len(step["attempts"]) or None,
            )
            for step in run["stepStats"]
        ]
        return RunDetail(
            run=self._run_summary(run),
            parent_run_id=tags.get(PARENT_RUN_ID_TAG),
            root_run_id=tags.get(ROOT_RUN_ID_TAG),
            tags=tags,
            steps=steps,
        )

    def stats(self, task: str | None = None, since: dt.datetime | None = None) -> StatsReport:
        if task is not None:
            names = [task]
        else:
            data = self.execute(TASK_TAG_VALUES, {"tagKeys": [TAG_TASK]})
            tags = self.result(data, "runTagsOrError", "RunTags")["tags"]
            names = sorted(
                value for tag in tags if tag["key"] == TAG_TASK for value in tag["values"]
            )
        extra = {}
        if since is not None:
            if since.tzinfo is None or since.utcoffset() is None:
                raise UsageProblem(f"since: {since.isoformat()!r} has no timezone")
            # createdAfter is strict; one microsecond earlier keeps runs created at `since`,
            # as the local stats do.
            extra["createdAfter"] = since.timestamp() - 1e-6
        rows = {name: self._task_figures(name, extra) for name in names}
        tasks = [_task_stats(name, *figures) for name, figures in rows.items()]
        counts = [figures[0] for figures in rows.values()]
        overall_counts = {
            key: sum(count[key] for count in counts)
            for key in ("total", SUCCESS, FAILED, RUNNING, CANCELED)
        }
        latest = [count["latest"] for count in counts if count["latest"] is not None]
        overall_counts["latest"] = max(latest) if latest else None
        durations = [duration for figures in rows.values() for duration in figures[1]]
        overall = _task_stats(None, overall_counts, durations)
        return StatsReport(since=since, tasks=tasks, overall=overall)

    # --- writes ------------------------------------------------------------------------

    def submit_run(self, task: TaskSpec, config: dict) -> str:
        data = self.execute(
            LAUNCH_RUN,
            {
                "executionParams": {
                    "selector": {
                        "repositoryLocationName": self.location,
                        "repositoryName": REPOSITORY_NAME,
                        "jobName": job_name(task.name),
                    },
                    "runConfigData": config,
                    "executionMetadata": {
                        "tags": [{"key": k, "value": v} for k, v in task_tags(task).items()]
                    },
                }
            },
        )
        launched = data["launchRun"]
        if launched["__typename"] == "RunConfigValidationInvalid":
            problems = "; ".join(error["message"] for error in launched["errors"])
            raise UsageProblem(f"--config is not valid for {job_name(task.name)}: {problems}")
        if launched["__typename"] == "PipelineNotFoundError":
            raise OperationFailed(
                f"{launched['message']}: the server's code may be older than tasks.yaml;"
                " reload it with `zquant --url URL reload`"
            )
        return self.result(data, "launchRun", "LaunchRunSuccess")["run"]["runId"]

    def execute_run(self, task: TaskSpec, config: dict) -> RunOutcome:
        run_id = self.submit_run(task, config)
        deadline = time.monotonic() + self.run_timeout_seconds
        while True:
            data = self.execute(RUN_STATUS, {"runId": run_id})
            status = self.result(data, "runOrError", "Run")["status"]
            if status in FINISHED_STATUSES:
                return self.outcome(run_id, status)
            if time.monotonic() > deadline:
                raise OperationFailed(
                    f"run {run_id} is still {status} after {self.run_timeout_seconds:.0f} s;"
                    " is the server's daemon running (`make dev` starts one)? Follow it with"
                    f" `zquant --url URL history --run {run_id}`"
                )
            time.sleep(RUN_POLL_SECONDS)

    def outcome(self, run_id: str, status: str) -> RunOutcome:
        metadata, failures = {}, []
        for event in self._run_events(run_id):
            if event["__typename"] == "ExecutionStepOutputEvent":
                metadata |= {
                    entry["label"]: metadata_value(entry) for entry in event["metadataEntries"]
                }
            elif event["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent"):
                failures.append(event)
        error = innermost_error_line(failures[0]) if status == "FAILURE" and failures else None
        return RunOutcome(run_id=run_id, status=status, metadata=metadata, error=error)

    def set_trigger_running(self, task: TaskSpec, running: bool) -> None:
        name = instigator_name(task)
        state = self._repository_instigators().get(name)
        if state is None:
            raise OperationFailed(
                f"the server's code location {self.location} has no {name}; reload it with"
                " `zquant --url URL reload`"
            )
        if (state["status"] == "RUNNING") == running:
            return
        schedule = task.trigger == "cron"
        if running:
            selector = {"repositoryLocationName": self.location, "repositoryName": REPOSITORY_NAME}
            if schedule:
                data = self.execute(
                    START_SCHEDULE, {"scheduleSelector": {**selector, "scheduleName": name}}
                )
                self.result(data, "startSchedule", "ScheduleStateResult")
            else:
                data = self.execute(
                    START_SENSOR, {"sensorSelector": {**selector, "sensorName": name}}
                )
                self.result(data, "startSensor", "Sensor")
        elif schedule:
            data = self.execute(STOP_SCHEDULE, {"id": state["id"]})
            self.result(data, "stopRunningSchedule", "ScheduleStateResult")
        else:
            data = self.execute(STOP_SENSOR, {"id": state["id"]})
            self.result(data, "stopSensor", "StopSensorMutationResult")

    def pause(self, task_name: str) -> None:
        self.execute(
            SET_CONCURRENCY_LIMIT, {"concurrencyKey": pool_name(task_name), "limit": PAUSED_SLOTS}
        )

    def resume(self, task_name: str) -> None:
        self.execute(DELETE_CONCURRENCY_LIMIT, {"concurrencyKey": pool_name(task_name)})

    def reload(self) -> str:
        data = self.execute(RELOAD_LOCATION, {"repositoryLocationName": self.location})
        entry = self.result(data, "reloadRepositoryLocation", "WorkspaceLocationEntry")
        loaded = entry["locationOrLoadError"]
        if loaded is None or loaded["__typename"] != "RepositoryLocation":
            message = (loaded or {}).get("message", "still loading")
            raise OperationFailed(
                f"code location {self.location} did not load after the reload: {message.strip()}"
                " (check the catalog with `zquant tasks validate`)"
            )
        (repository,) = loaded["repositories"]
        return (
            f"code location {self.location} reloaded on {self.server}:"
            f" {len(repository['jobs'])} jobs, {len(repository['schedules'])} schedules,"
            f" {len(repository['sensors'])} sensors"
        )

    # --- helpers -----------------------------------------------------------------------

    def _repository_instigators(self) -> dict[str, dict]:
        """Every schedule's and sensor's state in the repository, by name."""
        data = self.execute(
            TRIGGER_STATES,
            {
                "repositorySelector": {
                    "repositoryLocationName": self.location,
                    "repositoryName": REPOSITORY_NAME,
                }
            },
        )
        repository = self.result(data, "repositoryOrError", "Repository")
        states = {item["name"]: item["scheduleState"] for item in repository["schedules"]}
        states |= {item["name"]: item["sensorState"] for item in repository["sensors"]}
        return states

    def _run_summary(self, run: Mapping) -> RunSummary:
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        error = None
        if run["status"] == "FAILURE":
            error = self.outcome(run["runId"], run["status"]).error
        return RunSummary(
            run_id=run["runId"],
            job_name=run["jobName"],
            task=tags.get(TAG_TASK),
            status=run["status"],
            created=utc_from_timestamp(run["creationTime"]),
            start=utc_from_timestamp(run["startTime"]),
            end=utc_from_timestamp(run["endTime"]),
            duration_seconds=_duration(run["startTime"], run["endTime"]),
            attempts=1 + int(tags.get(RETRY_NUMBER_TAG, "0")),
            error=error,
        )

    def _run_events(self, run_id: str) -> list[dict]:
        events, cursor = [], None
        while True:
            data = self.execute(
                RUN_EVENTS, {"runId": run_id, "afterCursor": cursor, "limit": EVENT_PAGE_SIZE}
            )
            connection = self.result(data, "logsForRun", "EventConnection")
            events += connection["events"]
            if not connection["hasMore"]:
                return events
            cursor = connection["cursor"]

    def _task_figures(self, task: str, extra: dict) -> tuple[dict, list[float]]:
        """A task's counts per status group, latest creation time, and finished durations."""
        filters = {"total": task_filter(task, **extra)}
        for group in (SUCCESS, FAILED, RUNNING, CANCELED):
            statuses = [status.value for status in statuses_in(group)]
            filters[group] = task_filter(task, statuses, **extra)
        data = self.execute(RUN_COUNTS, filters)
        counts = {key: self.result(data, key, "Runs")["count"] for key in filters}
        newest = self.result(data, "total", "Runs")["results"]
        counts["latest"] = newest[0]["creationTime"] if newest else None
        durations, cursor = [], None
        while True:
            data = self.execute(
                RUN_TIMES,
                {
                    "filter": task_filter(task, FINISHED_STATUSES, **extra),
                    "cursor": cursor,
                    "limit": DURATION_PAGE_SIZE,
                },
            )
            page = self.result(data, "runsOrError", "Runs")["results"]
            durations += [
                run["endTime"] - run["startTime"]
                for run in page
                if run["startTime"] is not None and run["endTime"] is not None
            ]
            if len(page) < DURATION_PAGE_SIZE:
                return counts, durations
            cursor = page[-1]["runId"]


def _task_stats(task: str | None, counts: Mapping, durations: Sequence[float]) -> TaskStats:
    finished = counts[SUCCESS] + counts[FAILED] + counts[CANCELED]
    return TaskStats(
        task=task,
        total_executions=counts["total"],
        success_count=counts[SUCCESS],
        failed_count=counts[FAILED],
        running_count=counts[RUNNING],
        canceled_count=counts[CANCELED],
        success_rate=counts[SUCCESS] / finished if finished else None,
        avg_duration_seconds=math.fsum(durations) / len(durations) if durations else None,
        p95_duration_seconds=nearest_rank_p95(durations),
        latest_execution_time=utc_from_timestamp(counts["latest"]),
    )


def _duration(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start
