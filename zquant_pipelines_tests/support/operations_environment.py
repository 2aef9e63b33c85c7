"""A throwaway world for the CLI and operations tests: a DAGSTER_HOME with our dagster.yaml,
a small task catalog, a SQLite warehouse, and the code location loaded from workspace.yaml
(one code server, shared by a module's tests because it takes seconds to start); and a
Dagster webserver serving that workspace in this process."""

import contextlib
import dataclasses
import textwrap
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import pytest
import uvicorn
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from dagster_webserver.app import create_app_from_workspace_process_context

from zquant_pipelines.constants import (
    ENV_DAGSTER_URL,
    ENV_DATA_DIR,
    ENV_PG_URL,
    ENV_SCRIPTS_DIR,
    ENV_TASKS_FILE,
    ENV_WAREHOUSE_URL,
)
from zquant_pipelines.instance_home import prepare_home
from zquant_pipelines.operations.base import WORKSPACE_FILE, op_configs, run_config
from zquant_pipelines.operations.local import LocalOperations
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.sync.market import sync_stock_basic
from zquant_pipelines_tests.support.ports import bound_socket, port_of

# Each test works on tasks of its own, so the order the tests run in does not matter:
# nightly/ticker (enable, disable), by_hand (history, stats: runs made by the fixture),
# held (pause), queued (trigger), chain (a workflow), repair_daily_bars (sync-daily).
TEST_CATALOG = textwrap.dedent(
    """
    tasks:
      - name: nightly
        task_type: common_task
        cron_expression: "0 18 * * 1-5"
        max_retries: 0
        executor: in_process
        config: {task_action: example_task, message: nightly}
      - name: ticker
        task_type: common_task
        interval_seconds: 60
        enabled: false
        max_retries: 0
        executor: in_process
        config: {task_action: example_task}
      - name: by_hand
        task_type: manual_task
        max_retries: 0
        executor: in_process
        config: {task_action: example_task, message: by hand}
      - name: held
        task_type: manual_task
        max_retries: 0
        config: {task_action: example_task}
      - name: queued
        task_type: common_task
        max_retries: 0
        config: {task_action: example_task, message: default}
      - name: chain
        task_type: workflow
        config:
          workflow_type: serial
          tasks:
            - {name: by_hand}
            - {name: queued, dependencies: [by_hand]}
      - name: repair_daily_bars
        task_type: manual_task
        max_retries: 0
        executor: in_process
        config:
          task_action: sync_daily_data
          codelist: ["000047"]
          start_date: "20240102"
          end_date: "20240110"
    """
)
SERVER_START_SECONDS = 60
TASK_NAMES = ("nightly", "ticker", "by_hand", "held", "queued", "chain", "repair_daily_bars")


@dataclasses.dataclass(frozen=True)
class OperationsEnvironment:
    root: Path
    tasks_file: Path
    warehouse_url: str
    instance: dg.DagsterInstance
    workspace: WorkspaceProcessContext

    def local_operations(self) -> LocalOperations:
        return LocalOperations(self.instance, workspace=self.workspace)


def executed_run(ops: LocalOperations, name: str, overrides: Mapping | None = None) -> str:
    """The id of a run of task ``name`` (its params with ``overrides``) carried to its end in
    this process."""
    catalog = ops.catalog()
    task = catalog.tasks[name]
    return ops.execute_run(task, run_config(op_configs(catalog, task, overrides or {}))).run_id


@contextlib.contextmanager
def operations_environment(
    root: Path,
    catalog: str = TEST_CATALOG,
    scripts: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
):
    """The environment variables set for the duration, the instance and the workspace open
    (the code location serves ``catalog``; ``scripts``, name -> text, are run_script's
    folder when given; ``environment`` adds variables, e.g. a tushare wire server's URL and
    token, which the code location and its runs then read)."""
    tasks_file = root / "tasks.yaml"
    tasks_file.write_text(catalog)
    warehouse_url = f"sqlite:///{root / 'warehouse.db'}"
    with pytest.MonkeyPatch.context() as patch:
        if scripts is not None:
            folder = root / "scripts"
            folder.mkdir()
            for name, text in scripts.items():
                (folder / name).write_text(text)
            patch.setenv(ENV_SCRIPTS_DIR, str(folder))
        for name in (ENV_PG_URL, ENV_DAGSTER_URL, "TUSHARE_TOKEN"):
            patch.delenv(name, raising=False)
        home = prepare_home(root / "home")
        patch.setenv("DAGSTER_HOME", str(home))
        patch.setenv(ENV_TASKS_FILE, str(tasks_file))
        patch.setenv(ENV_WAREHOUSE_URL, warehouse_url)
        patch.setenv(ENV_DATA_DIR, str(root / "data"))
        for name, value in (environment or {}).items():
            patch.setenv(name, value)
        with (
            dg.DagsterInstance.get() as instance,
            WorkspaceProcessContext(
                instance,
                WorkspaceFileTarget(paths=[str(WORKSPACE_FILE)]),
                code_server_log_level="WARNING",
            ) as workspace,
        ):
            yield OperationsEnvironment(root, tasks_file, warehouse_url, instance, workspace)


def seed_stock_basic(env: OperationsEnvironment) -> None:
    """The sample market's stock list in the warehouse: a daily sync checks its codes
    against it."""
    warehouse = Warehouse(url=env.warehouse_url)
    sync_stock_basic(SampleMarketSource(), warehouse)
    warehouse.dispose()


def drive_queue_once(env: OperationsEnvironment) -> None:
    """One pass of Dagster's run queue daemon, as `dagster-daemon run` makes every few s."""
    with QueuedRunCoordinatorDaemon(interval_seconds=1) as daemon:
        list(daemon.run_iteration(env.workspace))


@contextlib.contextmanager
def serving(workspace):
    """A Dagster webserver for ``workspace`` in a thread of this process: its base URL."""
    app = create_app_from_workspace_process_context(workspace)
    sock = bound_socket()
    port = port_of(sock)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_SECONDS
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "webserver did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
