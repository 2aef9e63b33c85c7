"""Scale-out on one machine: a PostgreSQL-backed Dagster instance, Celery workers on a Redis
broker, the tushare wire server, and a parallel sync workflow on the celery executor.

Shared by the two-worker test (zquant_pipelines_tests/test_scale_out.py) and the one-vs-two
workers benchmark (bench/bench_scale_out.py). Every process gets the same environment, as
on a real deployment: the instance and the warehouse are reached by URL, never through a
worker's local files.
"""

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import yaml

from zquant_pipelines.constants import (
    ENV_CELERY_BROKER,
    ENV_DATA_DIR,
    ENV_PG_URL,
    ENV_RATE_LIMIT_URL,
    ENV_TASKS_FILE,
    ENV_TUSHARE_API_URL,
    ENV_TUSHARE_TOKEN,
    ENV_WAREHOUSE_URL,
)
from zquant_pipelines.dates import parse_tushare_date
from zquant_pipelines.executors import celery_worker_app
from zquant_pipelines.instance_home import prepare_home
from zquant_pipelines.sync.market import to_warehouse_frame
from zquant_pipelines_tests.support import catalog_files
from zquant_pipelines_tests.support.tushare_wire_server import TushareWireServer

WORKFLOW = "scale_out"
JOB = f"{WORKFLOW}_job"
AS_OF = "20261127"
PERIODS = (("sep", "20260914", "20260930"), ("oct", "20261008", "20261023"))
CALENDAR_START, CALENDAR_END = "20260901", "20261031"
WORKER_START_SECONDS = 60
RUN_SECONDS = 300


def catalog_text() -> str:
    """Reference data, then bars and daily_basic of two periods as four parallel members."""
    members = [{"name": "calendar"}, {"name": "stocks"}]
    tasks = [
        common("calendar", "sync_trading_calendar", CALENDAR_START, CALENDAR_END),
        {
            "name": "stocks",
            "task_type": "common_task",
            "config": {"task_action": "sync_stock_list"},
        },
    ]
    for period, start, end in PERIODS:
        for kind, action in (("bars", "sync_all_daily_data"), ("basic", "sync_daily_basic_data")):
            name = f"{kind}_{period}"
            tasks.append(common(name, action, start, end))
            members.append({"name": name, "dependencies": ["calendar"]})
    tasks.append(
        {
            "name": WORKFLOW,
            "task_type": "workflow",
            "executor": "celery",
            "config": {"workflow_type": "parallel", "on_failure": "continue", "tasks": members},
        }
    )
    return catalog_files.catalog_text(tasks)


def common(name: str, action: str, start: str, end: str) -> dict:
    return {
        "name": name,
        "task_type": "common_task",
        "config": {"task_action": action, "start_date": start, "end_date": end},
    }


@dataclass
class ScaleOut:
    """The environment every process of the set-up shares, and where their logs go."""

    root: Path
    env: dict[str, str]
    server: TushareWireServer

    def start_workers(self, names: list[str]) -> list[subprocess.Popen]:
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "zquant_pipelines.cli", "worker", "--name", name],
                env=self.env,
                stdout=(self.root / f"{name}.log").open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for name in names
        ]
        self.wait_for_workers(names, workers)
        return workers

    def wait_for_workers(self, names: list[str], workers: list[subprocess.Popen]) -> None:
        app = celery_worker_app(self.env)
        deadline = time.monotonic() + WORKER_START_SECONDS
        while True:
            answered = {
                name.split("@")[0] for reply in app.control.ping(timeout=1.0) for name in reply
            }
            if set(names) <= answered:
                return
            dead = [
                name
                for name, worker in zip(names, workers, strict=True)
                if worker.poll() is not None
            ]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(self.worker_log(name)[-2000:] for name in names)
                raise AssertionError(f"workers {sorted(set(names) - answered)} not ready:\n{logs}")

    @contextlib.contextmanager
    def open_instance(self) -> Iterator[dg.DagsterInstance]:
        """The instance the processes share, as DAGSTER_HOME describes it."""
        with environment(self.env), dg.DagsterInstance.get() as instance:
            yield instance

    def worker_log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def run_workflow(self, run_config: Mapping) -> tuple[subprocess.CompletedProcess, float]:
        """`dagster job execute` of the workflow, as an operator would: result and seconds."""
        return self.execute_job(JOB, run_config)

    def execute_job(
        self, job: str, run_config: Mapping, tags: Mapping[str, str] | None = None, **env: str
    ) -> tuple[subprocess.CompletedProcess, float]:
        """`dagster job execute` of ``job`` with extra environment ``env``: result, seconds."""
        config_file = self.root / "run_config.yaml"
        config_file.write_text(yaml.safe_dump(dict(run_config)))
        command = [
            sys.executable, "-m", "dagster", "job", "execute",
            "-m", "zquant_pipelines.definitions", "-j", job, "-c", str(config_file),
        ]  # fmt: skip
        if tags:
            command += ["--tags", json.dumps(dict(tags))]
        started = time.monotonic()
        result = subprocess.run(
            command,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=RUN_SECONDS,
        )
        return result, time.monotonic() - started


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, 15)
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, 9)
            worker.wait()


@contextlib.contextmanager
def scale_out(
    root: Path,
    instance_url: str,
    warehouse_url: str,
    redis_url: str,
    server: TushareWireServer,
    broker_url: str | None = None,
) -> Iterator[ScaleOut]:
    """The shared environment, with DAGSTER_HOME prepared for PostgreSQL storage. Redis (a
    database of the caller's own: ``services.claimed_redis_db``) holds the tushare budget
    and, unless ``broker_url`` names another broker (a virtual host of the caller's own:
    ``services.claimed_rabbitmq_vhost``), the Celery queue. Both are claimed empty, so no
    step another run left queued reaches this set-up's workers, and nothing here needs
    purging: a purge of a broker's shared queue would drop another run's steps."""
    tasks_file = root / "tasks.yaml"
    tasks_file.write_text(catalog_text())
    env = {
        **os.environ,
        ENV_PG_URL: instance_url,
        "DAGSTER_HOME": str(root / "home"),
        ENV_WAREHOUSE_URL: warehouse_url,
        ENV_TASKS_FILE: str(tasks_file),
        ENV_DATA_DIR: str(root / "data"),
        ENV_CELERY_BROKER: broker_url or redis_url,
        ENV_RATE_LIMIT_URL: redis_url,
        ENV_TUSHARE_TOKEN: server.token,
        ENV_TUSHARE_API_URL: server.url,
    }
    with environment(env):
        prepare_home(root / "home")
    yield ScaleOut(root, env, server)


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def market_source_config(
    calls_per_window: int, window_seconds: float, row_limits: dict[str, int] | None = None
) -> dict:
    """Run config of the tushare resource: settings by variable name (the token never lands in
    run config), the budget shared through Redis, and the server's page sizes if it has its
    own (``row_limits``)."""
    return {
        "resources": {
            "market_source": {
                "config": {
                    "token": {"env": ENV_TUSHARE_TOKEN},
                    "api_url": {"env": ENV_TUSHARE_API_URL},
                    "rate_limit_url": {"env": ENV_RATE_LIMIT_URL},
                    "calls_per_minute": calls_per_window,
                    "rate_limit_window_seconds": window_seconds,
                    "max_attempts": 3,
                    "backoff_base_seconds": 0.05,
                    "backoff_max_seconds": 0.5,
                    "api_row_limits": row_limits or {},
                }
            }
        }
    }


def step_workers(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[str]]:
    """Which Celery worker ran each step: dagster-celery's engine event names it."""
    ran: dict[str, list[str]] = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        worker = event.engine_event_data.metadata.get("Celery worker")
        if worker is not None:
            ran.setdefault(event.step_key, []).append(worker.value.split("@")[0])
    return ran


def open_days(backing) -> list[dt.date]:
    """The trading days the workflow syncs (those of its periods)."""
    days = []
    for _, start, end in PERIODS:
        calendar = backing.query("trade_cal", exchange="SSE", start_date=start, end_date=end)
        days += [parse_tushare_date(d) for d in calendar.loc[calendar["is_open"] == 1, "cal_date"]]
    return sorted(days)


def served(backing, api_name: str, day: dt.date) -> pd.DataFrame:
    frame = to_warehouse_frame(api_name, backing.query(api_name, trade_date=f"{day:%Y%m%d}"))
    return frame.sort_values("ts_code").reset_index(drop=True)
