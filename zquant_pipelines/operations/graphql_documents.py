"""The GraphQL documents the `zquant --url` back end sends to a Dagster webserver.

Every query and mutation is a module constant and ``DOCUMENTS`` lists them by operation
name; the tests validate each against the installed dagster-graphql schema. Only the
documents live here: sending them and reading the answers is ``operations.graphql``.
"""

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
    ... on Run { status tags { key value } }
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

TERMINATE_RUN = """
mutation TerminateRun($runId: String!) {
  terminateRun(runId: $runId) {
    __typename
    ... on TerminateRunSuccess { run { runId status } }
    ... on TerminateRunFailure { message }
    ... on Error { message }
  }
}
"""

REEXECUTE_RUN = """
mutation ReexecuteRun($parentRunId: String!, $strategy: ReexecutionStrategy!) {
  launchRunReexecution(reexecutionParams: { parentRunId: $parentRunId, strategy: $strategy }) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
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
    "TerminateRun": TERMINATE_RUN,
    "ReexecuteRun": REEXECUTE_RUN,
    "ReloadLocation": RELOAD_LOCATION,
}
