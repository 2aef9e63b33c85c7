"""The operations through a Dagster webserver's GraphQL API (`zquant --url http://HOST:PORT`):
what to ask for each command and how the answers become the records the local back end
returns. The documents are ``graphql_documents``, sending them is ``graphql_client``, and
the stats figures are the measures of ``history.measures``:

- history pages use ``runsOrError`` with the task tag filter; ``count`` is the true total;
- stats count each status group with ``runsOrError { count }`` (the server counts in SQL)
  and read the start and end times of finished runs, page by page, for the average and the
  nearest-rank p95, so durations cost one pass over the finished runs: the SQL aggregation
  of ``history.stats`` needs direct access to the run store (local mode);
- error summaries and output metadata come from the run's events (``logsForRun``).

Runs launched here wait in the server's queue until its daemon starts them.
"""

import datetime as dt
import json
import time
from collections.abc import Mapping, Sequence

# Private module, but it is where Dagster names the tags it writes on retried runs.
from dagster._core.storage.tags import PARENT_RUN_ID_TAG, RETRY_NUMBER_TAG, ROOT_RUN_ID_TAG

from zquant_pipelines.constants import (
    FRESHNESS_CHECK,
    FRESHNESS_DATASETS,
    PAUSED_SLOTS,
    TAG_TASK,
)
from zquant_pipelines.history.measures import (
    duration_seconds,
    mean_duration,
    nearest_rank_p95,
    success_rate,
)
from zquant_pipelines.history.pause import is_paused_run, pause_request_pool, requested_runs
from zquant_pipelines.history.progress import RunProgress, run_progress
from zquant_pipelines.history.runs import (
    DEFAULT_PAGE_SIZE,
    HistoryPage,
    RunDetail,
    RunSummary,
    StepSummary,
    check_page_limit,
)
from zquant_pipelines.history.stats import StatsReport, TaskStats
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
    ProgressListener,
    RunOutcome,
    UsageProblem,
    location_name,
    no_such_run,
)
from zquant_pipelines.operations.graphql_client import GraphQLClient
from zquant_pipelines.operations.graphql_documents import (
    CONCURRENCY_LIMITS,
    DELETE_CONCURRENCY_LIMIT,
    LATEST_CHECK_EXECUTION,
    LAUNCH_RUN,
    REEXECUTE_RUN,
    RELOAD_LOCATION,
    RUN_COUNTS,
    RUN_DETAIL,
    RUN_EVENTS,
    RUN_STATE,
    RUN_STATUS,
    RUN_TIMES,
    RUNS_PAGE,
    SET_CONCURRENCY_LIMIT,
    START_SCHEDULE,
    START_SENSOR,
    STOP_SCHEDULE,
    STOP_SENSOR,
    TASK_TAG_VALUES,
    TERMINATE_RUN,
    TRIGGER_STATES,
)
from zquant_pipelines.operations.status import RunState, TriggerState, instigator_name
from zquant_pipelines.tasks.builders import IN_FLIGHT_STATUSES, job_name, pool_name, task_tags
from zquant_pipelines.tasks.catalog import TaskSpec

DURATION_PAGE_SIZE = 1000
EVENT_PAGE_SIZE = 1000
RUN_POLL_SECONDS = 1.0
FINISHED_STATUSES = [status.value for status in statuses_in(*FINISHED_GROUPS)]


def task_filter(task: str, statuses: Sequence[str] | None = None, **extra) -> dict:
    """A RunsFilter input for the runs of ``task`` (optionally of some statuses)."""
    runs_filter = {"tags": [{"key": TAG_TASK, "value": task}], **extra}
    if statuses is not None:
        runs_filter["statuses"] = list(statuses)
    return runs_filter


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
    if "jsonString" in entry:
        return json.loads(entry["jsonString"])
    for key in ("floatValue", "text", "boolValue"):
        if key in entry:
            return entry[key]
    return None


class GraphQLOperations(GraphQLClient, Operations):
    """Operations through the GraphQL API at ``url`` (``http://HOST:PORT``)."""

    def __init__(self, url: str, run_timeout_seconds: float = DEFAULT_RUN_TIMEOUT_SECONDS):
        super().__init__(url)
        self.location = location_name()
        self.run_timeout_seconds = run_timeout_seconds

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
        try:
            check_page_limit(limit)
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
            raise no_such_run(run_id)
        run = self.result(data, "runOrError", "Run")
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        steps = [
            StepSummary(
                step_key=step["stepKey"],
                status=step["status"],
                start=utc_from_timestamp(step["startTime"]),
                end=utc_from_timestamp(step["endTime"]),
                duration_seconds=duration_seconds(step["startTime"], step["endTime"]),
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

    def rebuild_stats(self) -> int:
        raise OperationFailed(
            "stats --rebuild: the summary lives in the run store's database, which a webserver"
            " does not expose; run it without --url where the instance is (local mode)"
        )

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

    def execute_run(
        self, task: TaskSpec, config: dict, on_progress: ProgressListener | None = None
    ) -> RunOutcome:
        return self.run_to_end(self.submit_run(task, config), on_progress)

    def run_to_end(self, run_id: str, on_progress: ProgressListener | None = None) -> RunOutcome:
        deadline = time.monotonic() + self.run_timeout_seconds
        while True:
            progress = self.run_progress(run_id)
            status = progress.status
            if on_progress is not None:
                on_progress(progress)
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

    def run_status(self, run_id: str) -> str | None:
        data = self.execute(RUN_STATUS, {"runId": run_id})
        if data["runOrError"]["__typename"] == "RunNotFoundError":
            return None
        return self.result(data, "runOrError", "Run")["status"]

    def run_progress(self, run_id: str) -> RunProgress:
        data = self.execute(RUN_STATUS, {"runId": run_id})
        if data["runOrError"]["__typename"] == "RunNotFoundError":
            raise no_such_run(run_id)
        run = self.result(data, "runOrError", "Run")
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        return run_progress(run_id, run["status"], tags)

    def request_termination(self, run_id: str) -> None:
        data = self.execute(TERMINATE_RUN, {"runId": run_id})
        self.result(data, "terminateRun", "TerminateRunSuccess")

    def submit_reexecution(self, run_id: str, from_failure: bool) -> str:
        strategy = "FROM_FAILURE" if from_failure else "ALL_STEPS"
        data = self.execute(REEXECUTE_RUN, {"parentRunId": run_id, "strategy": strategy})
        try:
            launched = self.result(data, "launchRunReexecution", "LaunchRunSuccess")
        except OperationFailed as error:
            raise OperationFailed(f"run {run_id} could not be re-executed: {error}") from None
        return launched["run"]["runId"]

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

    def request_run_pause(self, run_id: str) -> None:
        self.execute(
            SET_CONCURRENCY_LIMIT, {"concurrencyKey": pause_request_pool(run_id), "limit": 0}
        )

    def run_pause_requests(self) -> list[str]:
        limits = self.execute(CONCURRENCY_LIMITS)["instance"]["concurrencyLimits"]
        return requested_runs(limit["concurrencyKey"] for limit in limits)

    def withdraw_run_pause(self, run_id: str) -> None:
        self.execute(DELETE_CONCURRENCY_LIMIT, {"concurrencyKey": pause_request_pool(run_id)})

    def freshness(self, now: dt.datetime) -> list:
        """The server's verdicts: each dataset's latest freshness check evaluation (the
        freshness sensor stores one whenever a verdict changes), not one computed at ``now``."""
        from zquant_pipelines.sync.freshness import Freshness

        verdicts = []
        for dataset in FRESHNESS_DATASETS:
            data = self.execute(
                LATEST_CHECK_EXECUTION,
                {"assetKey": {"path": [dataset]}, "checkName": FRESHNESS_CHECK},
            )
            executions = data["assetCheckExecutions"]
            evaluation = executions[0]["evaluation"] if executions else None
            if evaluation is None:
                raise OperationFailed(
                    f"{dataset} has no {FRESHNESS_CHECK} verdict on {self.server} yet: is the"
                    " freshness sensor running (the server's daemon starts it)?"
                )
            metadata = {
                entry["label"]: metadata_value(entry) for entry in evaluation["metadataEntries"]
            }
            checked_at = utc_from_timestamp(evaluation["timestamp"])
            verdicts.append(Freshness.from_metadata(dataset, metadata, checked_at))
        return verdicts

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
            duration_seconds=duration_seconds(run["startTime"], run["endTime"]),
            attempts=1 + int(tags.get(RETRY_NUMBER_TAG, "0")),
            error=error,
            paused=is_paused_run(run["runId"], tags),
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
                duration
                for run in page
                if (duration := duration_seconds(run["startTime"], run["endTime"])) is not None
            ]
            if len(page) < DURATION_PAGE_SIZE:
                return counts, durations
            cursor = page[-1]["runId"]


def _task_stats(task: str | None, counts: Mapping, durations: Sequence[float]) -> TaskStats:
    return TaskStats(
        task=task,
        total_executions=counts["total"],
        success_count=counts[SUCCESS],
        failed_count=counts[FAILED],
        running_count=counts[RUNNING],
        canceled_count=counts[CANCELED],
        success_rate=success_rate(counts[SUCCESS], counts[FAILED], counts[CANCELED]),
        avg_duration_seconds=mean_duration(durations),
        p95_duration_seconds=nearest_rank_p95(durations),
        latest_execution_time=utc_from_timestamp(counts["latest"]),
    )
