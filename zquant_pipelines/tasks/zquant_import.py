"""zquant v0.4's scheduled tasks (its ``zq_task_scheduled_tasks`` table, in MySQL/MariaDB or
SQLite) read and mapped to task specs of tasks.yaml, for `zquant tasks import-zquant`; the
catalog editor writes them.

The mapping (zquant's fields in ../shared/reference/zquant-v0.4.md, section 2):
- name: kept when it is a valid task name here, else ``zquant_<id>`` (zquant's names are
  usually Chinese); the zquant name opens the description and the id is the tag
  ``zquant_id``, so the two stay linked.
- id: zquant's id, so its clients' ids keep addressing the task; a new one when tasks.yaml
  has a task with that id already (``add_tasks``' ``renumber_taken_ids``).
- task_type, cron_expression, interval_seconds (cron wins, as in zquant), max_retries,
  retry_interval and enabled as they are; a manual task's ``enabled`` is left out (zquant
  forces it false; here a manual task runs by hand either way).
- A cron's day-of-week is APScheduler's (0 = Monday): it is rewritten for standard cron
  (0 = Sunday). APScheduler fires when day-of-month AND day-of-week match, standard cron
  when either does, so a cron restricting both is refused.
- config ``{command, timeout_seconds}`` -> ``run_script`` (the script relative to the
  scripts folder, its arguments, the timeout); ``task_action`` -> the action of the same
  name with zquant's params (ISO dates as YYYYMMDD, example_task's duration_seconds as
  sleep_seconds); a workflow keeps its type, on_failure and members (by task id or name,
  dependencies likewise), a parallel one zquant's 10 threads as ``max_parallel``.

What cannot map is refused, each task with its reason (``ZquantImportError``); facts that
tasks.yaml does not hold (a paused task, ignored keys) come back as notes.
"""

import datetime as dt
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import sqlalchemy as sa

from zquant_pipelines.safe_yaml import show_value
from zquant_pipelines.tasks.catalog import TASK_TYPES
from zquant_pipelines.tasks.catalog_checks import name_problem

TASK_TABLE = "zq_task_scheduled_tasks"
COLUMNS = (
    "id, name, task_type, cron_expression, interval_seconds, enabled, paused, description,"
    " config_json, max_retries, retry_interval"
)
# zquant's parallel workflows run their waves on this many threads.
ZQUANT_WORKFLOW_THREADS = 10
# zquant actions and the param names each takes here (zquant's name -> ours).
ACTION_PARAM_NAMES: dict[str, dict[str, str]] = {
    "example_task": {"message": "message", "duration_seconds": "sleep_seconds"},
    "sync_stock_list": {},
    "sync_trading_calendar": {"start_date": "start_date", "end_date": "end_date"},
    "sync_daily_data": {
        name: name for name in ("ts_code", "symbol", "codelist", "start_date", "end_date")
    },
    "sync_all_daily_data": {name: name for name in ("codelist", "start_date", "end_date")},
    **{
        action: {"start_date": "start_date", "end_date": "end_date"}
        for action in ("sync_daily_basic_data", "sync_factor_data", "sync_stkfactorpro_data")
    },
    "calculate_factor": {"codes": "codes", "start_date": "start_date", "end_date": "end_date"},
    # income / balance / cashflow as zquant writes them (balance is balancesheet here).
    "sync_financial_data": {"statement_type": "statement_type"},
}
# zquant params with no counterpart here that change nothing a task does when left out.
DROPPED_PARAMS = {
    "example_task": {"steps": "zquant's progress steps"},
    "calculate_factor": {"factor_id": "every factor is computed in one pass here"},
}
PYTHON_PROGRAM = re.compile(r"python(3(\.\d+)?)?")
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ZquantImportError(Exception):
    """The import refused: ``problems`` names each zquant task and why it cannot map."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(["nothing imported:"] + problems))


@dataclass
class ZquantImport:
    """Task specs in zquant's id order, and notes on what tasks.yaml does not keep."""

    specs: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_zquant_tasks(url: str) -> list[dict]:
    """The rows of zquant's task table, by id (``mysql://`` URLs use PyMySQL)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ZquantImportError(
            [f"{url!r} is not a database URL (e.g. mysql+pymysql://user@host/zquant)"]
        ) from None
    if parsed.drivername == "mysql":
        parsed = parsed.set(drivername="mysql+pymysql")
    shown = parsed.render_as_string(hide_password=True)
    engine = sa.create_engine(parsed)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(TASK_TABLE):
                raise ZquantImportError([f"{shown} has no table {TASK_TABLE} (zquant's tasks)"])
            rows = connection.execute(sa.text(f"SELECT {COLUMNS} FROM {TASK_TABLE} ORDER BY id"))
            return [dict(row._mapping) for row in rows]
    except sa.exc.SQLAlchemyError as error:
        reason = str(error.orig if getattr(error, "orig", None) else error).splitlines()[0]
        raise ZquantImportError([f"cannot read {shown}: {reason}"]) from None
    finally:
        engine.dispose()


def map_zquant_tasks(rows: list[Mapping]) -> ZquantImport:
    """Task specs for zquant's rows; every row that cannot map is refused together."""
    names = {row["id"]: our_name(row) for row in rows}
    by_zquant_name = {row["name"]: names[row["id"]] for row in rows}
    result, problems = ZquantImport(), []
    for row in rows:
        label = f"zquant task {row['id']} {show_value(row['name'])}"
        found: list[str] = []
        spec = _spec(row, names[row["id"]], names, by_zquant_name, found, result.notes, label)
        problems += [f"{label}: {problem}" for problem in found]
        result.specs.append(spec)
    if problems:
        raise ZquantImportError(problems)
    return result


def our_name(row: Mapping) -> str:
    name = row["name"]
    return name if name_problem(name) is None else f"zquant_{row['id']}"


def _spec(row, name, names, by_zquant_name, found, notes, label) -> dict:
    task_type = str(row["task_type"] or "").lower()
    if task_type not in TASK_TYPES:
        found.append(f"task_type {show_value(row['task_type'])} is not one of {TASK_TYPES}")
    spec: dict = {"name": name, "id": row["id"], "task_type": task_type}
    cron, interval = row["cron_expression"], row["interval_seconds"]
    if cron:
        spec["cron_expression"] = _standard_cron(cron, found)
        if interval:
            notes.append(
                f"{label}: interval_seconds {interval} dropped (the cron wins, as in zquant)"
            )
    elif interval:
        spec["interval_seconds"] = int(interval)
    if task_type != "manual_task":
        spec["enabled"] = bool(row["enabled"])
    if row["paused"]:
        notes.append(f"{label}: paused in zquant; hold its runs here with `zquant pause {name}`")
    if row["max_retries"] is not None:
        spec["max_retries"] = int(row["max_retries"])
    if row["retry_interval"] is not None:
        spec["retry_interval"] = int(row["retry_interval"])
    description = row["description"] or ""
    if name != row["name"]:
        description = f"{row['name']}: {description}" if description else row["name"]
    if description:
        spec["description"] = description
    spec["tags"] = {"zquant_id": str(row["id"])}
    try:
        config = json.loads(row["config_json"] or "{}")
    except json.JSONDecodeError as error:
        found.append(f"config_json is not JSON: {error.msg}")
        return spec
    if not isinstance(config, dict):
        found.append(f"config_json {show_value(config)} is not an object")
    elif task_type == "workflow":
        spec["config"] = _workflow(config, names, by_zquant_name, found)
    else:
        spec["config"] = _action(config, found, notes, label)
    return spec


def _action(config: dict, found: list[str], notes: list[str], label: str) -> dict:
    if "command" in config:
        ignored = sorted(set(config) - {"command", "timeout_seconds"})
        if ignored:
            notes.append(f"{label}: config {', '.join(ignored)} ignored (zquant ignores it too)")
        return _script(config, found)
    action = config.get("task_action")
    if action not in ACTION_PARAM_NAMES:
        found.append(
            f"config.task_action {show_value(action)}: no such action here"
            f" (mapped: {', '.join(ACTION_PARAM_NAMES)}, or a command)"
        )
        return {}
    mapped: dict = {"task_action": action}
    for key, value in config.items():
        if key in ("task_action", "task_type", "resume_from_execution_id"):
            continue
        if key in DROPPED_PARAMS.get(action, {}):
            notes.append(f"{label}: config.{key} dropped ({DROPPED_PARAMS[action][key]})")
        elif action == "example_task" and key == "success_rate":
            if value != 1 and value != 1.0:
                found.append(
                    f"config.success_rate {show_value(value)}: random failures are not"
                    " supported (example_task's fail / fail_attempts fail on purpose)"
                )
        elif key in ACTION_PARAM_NAMES[action]:
            mapped[ACTION_PARAM_NAMES[action][key]] = _date_text(key, value)
        else:
            found.append(f"config.{key}: {action} takes no such parameter here")
    return mapped


def _date_text(key: str, value: object) -> object:
    """zquant's ISO dates (2024-01-02) as YYYYMMDD; other values as they are."""
    if key.endswith("_date") and isinstance(value, str):
        try:
            return dt.date.fromisoformat(value).strftime("%Y%m%d")
        except ValueError:
            return value
    return value


def _script(config: dict, found: list[str]) -> dict:
    try:
        argv = shlex.split(str(config["command"]))
    except ValueError as error:
        found.append(f"config.command {show_value(config['command'])}: {error}")
        return {}
    if argv and PYTHON_PROGRAM.fullmatch(PurePosixPath(argv[0]).name) and len(argv) > 1:
        argv = argv[1:]
    if not argv or argv[0].startswith("-") or PurePosixPath(argv[0]).is_absolute():
        found.append(
            f"config.command {show_value(config['command'])}: run_script runs a script of the"
            " scripts folder by its relative path (python SCRIPT ... or SCRIPT ...)"
        )
        return {}
    if "/" not in argv[0] and not argv[0].endswith(".py"):
        found.append(
            f"config.command {show_value(config['command'])}: runs the program {argv[0]!r},"
            " not a script of the scripts folder; wrap it in a script"
        )
        return {}
    mapped: dict = {"task_action": "run_script", "script": argv[0]}
    if argv[1:]:
        mapped["args"] = argv[1:]
    mapped["timeout_seconds"] = config.get("timeout_seconds", 3600)
    return mapped


def _workflow(config: dict, names: dict, by_zquant_name: dict, found: list[str]) -> dict:
    members, problems = [], []

    def member(reference: object) -> str | None:
        if isinstance(reference, int) and reference in names:
            return names[reference]
        if isinstance(reference, str) and reference in by_zquant_name:
            return by_zquant_name[reference]
        problems.append(f"config.tasks: {show_value(reference)} is no task of this database")
        return None

    for entry in config.get("tasks") or []:
        if not isinstance(entry, Mapping):
            problems.append(f"config.tasks: {show_value(entry)} is not a {{task_id, name}} entry")
            continue
        own = member(
            entry.get("task_id") if entry.get("task_id") is not None else entry.get("name")
        )
        deps = [member(dep) for dep in entry.get("dependencies") or []]
        if own is not None:
            mapped = {"name": own}
            if deps:
                mapped["dependencies"] = [dep for dep in deps if dep is not None]
            members.append(mapped)
    found += problems
    workflow = {key: config[key] for key in ("workflow_type", "on_failure") if key in config}
    if config.get("workflow_type") == "parallel":
        workflow["max_parallel"] = ZQUANT_WORKFLOW_THREADS
    workflow["tasks"] = members
    return workflow


def _standard_cron(expression: str, found: list[str]) -> str:
    fields = expression.split()
    if len(fields) != 5:
        found.append(f"cron_expression {expression!r}: zquant takes 5 fields")
        return expression
    day_of_month, day_of_week = fields[2], fields[4]
    if day_of_week in ("*", "?"):
        return expression
    if day_of_month not in ("*", "?"):
        found.append(
            f"cron_expression {expression!r}: restricts day of month and day of week, which"
            " APScheduler requires both and standard cron takes either of"
        )
        return expression
    days = _apscheduler_weekdays(day_of_week)
    if days is None:
        found.append(f"cron_expression {expression!r}: day of week {day_of_week!r} cannot map")
        return expression
    fields[4] = _standard_weekdays(days)
    return " ".join(fields)


def _apscheduler_weekdays(text: str) -> set[int] | None:
    """APScheduler's day_of_week (0 = Monday, names mon..sun) as a set of Monday-based days."""
    days: set[int] = set()
    for part in text.lower().split(","):
        spread, _, step = part.partition("/")
        if spread == "*":
            first, last = 0, 6
        else:
            low, _, high = spread.partition("-")
            first, last = _weekday(low), _weekday(high or low)
            if first is None or last is None or first > last:
                return None
        if (step and not step.isdigit()) or step == "0":
            return None
        days.update(range(first, last + 1, int(step or 1)))
    return days


def _weekday(token: str) -> int | None:
    if token in WEEKDAY_NAMES:
        return WEEKDAY_NAMES.index(token)
    return int(token) if token.isdigit() and int(token) <= 6 else None


def _standard_weekdays(days: set[int]) -> str:
    """Monday-based days as standard cron's day-of-week (0 = Sunday), ranges joined."""
    standard = sorted((day + 1) % 7 for day in days)
    if len(standard) == 7:
        return "*"
    runs = [[standard[0]]]
    for day in standard[1:]:
        if day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)
