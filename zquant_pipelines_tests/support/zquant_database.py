"""zquant v0.4's scheduled-task table as its SQLAlchemy model declares it (reference
zquant-v0.4.md, section 2: the Enum stores the member names, COMMON_TASK, as zquant's does),
for the import tests to fill a SQLite or MariaDB database the way zquant would."""

import datetime as dt
import enum
import json
from collections.abc import Mapping, Sequence

import sqlalchemy as sa


class TaskType(enum.Enum):
    MANUAL_TASK = "manual_task"
    COMMON_TASK = "common_task"
    WORKFLOW = "workflow"


METADATA = sa.MetaData()
SCHEDULED_TASKS = sa.Table(
    "zq_task_scheduled_tasks",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("job_id", sa.String(200), nullable=False, unique=True),
    sa.Column("task_type", sa.Enum(TaskType), nullable=False),
    sa.Column("cron_expression", sa.String(100)),
    sa.Column("interval_seconds", sa.Integer),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("description", sa.Text),
    sa.Column("config_json", sa.Text),
    sa.Column("max_retries", sa.Integer, default=3),
    sa.Column("retry_interval", sa.Integer, default=60),
    sa.Column("created_by", sa.String(50)),
    sa.Column("updated_by", sa.String(50)),
    sa.Column("created_time", sa.DateTime),
    sa.Column("updated_time", sa.DateTime),
)


def fill_zquant_database(url: str, tasks: Sequence[Mapping]) -> None:
    """Create zquant's table at ``url`` and insert ``tasks`` (zquant's fields; ``config`` as
    an object, ``task_type`` by value) in order, ids from 1, as zquant's API would."""
    engine = sa.create_engine(url)
    METADATA.create_all(engine)
    now = dt.datetime(2025, 12, 1, 12, 0)
    with engine.begin() as connection:
        for task in tasks:
            task_type = TaskType(task["task_type"])
            row = {key: value for key, value in task.items() if key != "config"}
            row |= {
                "task_type": task_type,
                "job_id": f"{task_type.value}_{task['name']}_{int(now.timestamp())}",
                "config_json": json.dumps(task.get("config", {}), ensure_ascii=False),
                "created_by": "admin",
                "updated_by": "admin",
                "created_time": now,
                "updated_time": now,
            }
            connection.execute(SCHEDULED_TASKS.insert().values(**row))
    engine.dispose()
