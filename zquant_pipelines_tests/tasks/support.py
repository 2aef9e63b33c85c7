"""Helpers of the scheduler tests: catalogs of example tasks, their Definitions on the sample
resources, instance settings taken from the shipped dagster.yaml, and reading what happened
to each step of a run from the run's event log."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.test_utils import in_process_test_workspace
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from zquant_pipelines.tasks.builders import build_task_definitions, job_name
from zquant_pipelines.tasks.catalog import parse_catalog

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGSTER_YAML = REPO_ROOT / "dagster.yaml"
LOCATION_MODULE = "zquant_pipelines_tests.tasks.catalog_location"
# A run launcher that records launches without starting a process: the queue tests only
# need to see which runs leave the queue.
MOCKED_RUN_LAUNCHER = {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"}


def example(name: str, task_type: str = "common_task", max_retries: int = 0, **fields) -> dict:
    """A catalog entry running example_task; ``config`` entries become its parameters."""
    params = fields.pop("config", {})
    return {
        "name": name,
        "task_type": task_type,
        "max_retries": max_retries,
        "config": {"task_action": "example_task", **params},
        **fields,
    }


def member(name: str, *dependencies: str) -> dict:
    return {"name": name, "dependencies": list(dependencies)}


def workflow(name: str, workflow_type: str, on_failure: str, members: list, **fields) -> dict:
    settings = {"workflow_type": workflow_type, "on_failure": on_failure, "tasks": members}
    settings |= fields.pop("settings", {})
    return {"name": name, "task_type": "workflow", "config": settings, **fields}


def task_definitions(tasks: list[dict], resources: dict) -> dg.Definitions:
    """The catalog's Definitions with the given resources bound to every job."""
    catalog = parse_catalog({"tasks": tasks})
    bound = dg.Definitions(resources=resources)
    return dg.Definitions.merge(build_task_definitions(catalog), bound)


def dagster_home(tmp_path) -> str:
    """A fresh DAGSTER_HOME folder in tmp_path for a test instance."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    return str(home)


def shipped_instance_config() -> dict:
    """The shipped dagster.yaml (queue, tag limit, pools) with a launcher that only records."""
    return {**yaml.safe_load(DAGSTER_YAML.read_text()), "run_launcher": MOCKED_RUN_LAUNCHER}


def location_repository() -> ReconstructableRepository:
    """The test code location as a repository Dagster can rebuild in another process."""
    return ReconstructableRepository.for_module(
        LOCATION_MODULE, "defs", working_directory=str(REPO_ROOT)
    )


class CatalogLocation:
    """The test catalog loaded as a code location, creating runs as the webserver and the
    daemon do: from the location's job, with the job's run tags and the location's origin
    (which the run queue requires)."""

    def __init__(self, instance: dg.DagsterInstance, workspace):
        self.instance = instance
        self.workspace = workspace
        self.repository = location_repository()
        location = workspace.get_code_location(workspace.code_location_names[0])
        self.remote_repository = location.get_repository("__repository__")

    def job(self, task_name: str) -> dg.JobDefinition:
        return self.repository.get_reconstructable_job(job_name(task_name)).get_definition()

    def create_run(self, task_name: str, status: dg.DagsterRunStatus | None = None):
        job = self.job(task_name)
        remote_job = self.remote_repository.get_full_job(job.name)
        return self.instance.create_run_for_job(
            job,
            status=status,
            tags=remote_job.run_tags,
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
        )

    def submit_run(self, task_name: str) -> str:
        """A run of the task handed to the instance's run coordinator (the queue)."""
        run = self.create_run(task_name)
        self.instance.submit_run(run.run_id, self.workspace)
        return run.run_id

    def status(self, run_id: str) -> dg.DagsterRunStatus:
        return self.instance.get_run_by_id(run_id).status


@contextmanager
def location_workspace(instance: dg.DagsterInstance):
    """A workspace holding catalog_location.py, loaded in this process: set ZQUANT_TASKS_FILE
    (and the warehouse) first."""
    origin = LoadableTargetOrigin(
        module_name=LOCATION_MODULE, attribute="defs", working_directory=str(REPO_ROOT)
    )
    with in_process_test_workspace(instance, origin) as workspace:
        yield workspace


@contextmanager
def catalog_location(instance: dg.DagsterInstance) -> Iterator[CatalogLocation]:
    with location_workspace(instance) as workspace:
        yield CatalogLocation(instance, workspace)


def dagster_events(instance: dg.DagsterInstance, run_id: str) -> list[dg.EventLogEntry]:
    return [entry for entry in instance.all_logs(run_id) if entry.dagster_event is not None]


def log_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The run's plain log lines (context.log and Dagster's own notices), in order."""
    return [entry.user_message for entry in instance.all_logs(run_id) if not entry.dagster_event]


def step_event_types(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[str]]:
    """Each step's Dagster event types, in order."""
    types: dict[str, list[str]] = {}
    for entry in dagster_events(instance, run_id):
        if entry.step_key:
            types.setdefault(entry.step_key, []).append(entry.dagster_event.event_type_value)
    return types


def first_time(instance: dg.DagsterInstance, run_id: str, step: str, event_type: str) -> float:
    """When ``step`` first logged ``event_type`` (timestamps of one process clock)."""
    return next(
        entry.timestamp
        for entry in dagster_events(instance, run_id)
        if entry.step_key == step and entry.dagster_event.event_type_value == event_type
    )


def step_start_order(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [
        entry.step_key
        for entry in dagster_events(instance, run_id)
        if entry.dagster_event.event_type_value == "STEP_START"
    ]


def member_outcomes(instance: dg.DagsterInstance, run_id: str, members: list[str]) -> dict:
    """What happened to each member of a workflow run, from its event log:

    - ``succeeded``: the step ran its action and yielded its output;
    - ``failed``: STEP_FAILURE (after every retry);
    - ``skipped``: Dagster's STEP_SKIPPED (an upstream member yielded nothing), or the step
      started but skipped its action (on_failure stop) and yielded nothing;
    - ``not run``: Dagster did not start it because an upstream member failed;
    - ``missing``: none of these (a test failure: every member must be accounted for).
    """
    types = step_event_types(instance, run_id)
    messages = log_messages(instance, run_id)
    outcomes = {}
    for name in members:
        seen = types.get(name, [])
        if "STEP_FAILURE" in seen:
            outcomes[name] = "failed"
        elif "STEP_SKIPPED" in seen:
            outcomes[name] = "skipped"
        elif "STEP_SUCCESS" in seen:
            outcomes[name] = "succeeded" if "STEP_OUTPUT" in seen else "skipped"
        elif any(message.startswith(f"Dependencies for step {name} ") for message in messages):
            outcomes[name] = "not run"
        else:
            outcomes[name] = "missing"
    return outcomes


def reason_for(instance: dg.DagsterInstance, run_id: str, name: str) -> str:
    """The log line that says why member ``name`` did not run its action."""
    prefixes = (
        f"{name} skipped: ",
        f"Dependencies for step {name} ",
        f"Skipping step {name} ",
    )
    return next(m for m in log_messages(instance, run_id) if m.startswith(prefixes))
