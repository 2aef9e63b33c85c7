"""The task catalog: tasks.yaml read into validated ``TaskSpec``s, or a ``CatalogError``.

Loading checks everything and reports every problem at once, one line each naming the task
and the field; a catalog with any problem is refused whole, never half-loaded. zquant's
field names are kept (name, task_type, cron_expression, interval_seconds, max_retries,
retry_interval, enabled, description, config), plus timezone, executor, retry_backoff and
tags. Tasks refer to each other by name, so a name must be usable as a Dagster name.

Rules beyond the obvious:
- ``id``: the task's number for zquant's API (its ``task_id``), stable for the task's life:
  a positive whole number, unique in the catalog. The top-level ``last_id`` (optional, the
  editor keeps it) is the highest id ever given, so a removed task's id is not given again.
  A task written without an id gets, at load, the next number after the highest ``id``
  written and ``last_id``, in file order (the editor writes every task's id on its first
  edit, so these stay put; by hand, an entry without an id inserted before another one
  without an id, or a higher id written, moves them).
- Triggers: a cron expression (standard 5 fields, see ``cron.py``) or ``interval_seconds``,
  never both, and neither on a ``manual_task``. A ``common_task`` or ``workflow`` with no
  trigger is allowed: it runs when triggered by hand (or as a workflow member), which lets
  a schedule be removed without rewriting the task.
- ``interval_seconds`` is at least ``MIN_INTERVAL_SECONDS`` (10 s): the Dagster daemon
  evaluates sensors in a loop that turns about every 5 s, so a shorter period could not be
  honoured, and 10 s keeps a tick within about one loop turn of its due time.
- Workflow members are other tasks of the catalog, by name: each must exist, be enabled,
  appear once, and not be a workflow itself (nested workflows are not supported: a
  workflow is one job whose ops are its members' actions, so list the inner workflow's
  members instead). Dependencies must be members, not the member itself, and acyclic; a
  cycle is reported with its path.
- A workflow's members are kept in topological order; members whose dependencies are met
  at the same point keep the order of the workflow's ``tasks`` list.
- ``executor: celery`` fits parallel workflows without ``max_parallel``: Celery has no
  per-run step limit or ordering (the workers' slots bound parallelism), so a serial
  workflow or a max_parallel on Celery would be silently ignored; both are refused.

Reading the file is ``catalog_yaml.py``'s, the checks of single values ``catalog_checks.py``'s
and reading a workflow's config ``catalog_workflows.py``'s; this module validates the tasks.
"""

import copy
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from zquant_pipelines.constants import EXECUTOR_NAMES, MARKET_TIMEZONE, TASK_TYPES
from zquant_pipelines.safe_yaml import show_value
from zquant_pipelines.tasks.action_params import (
    ActionParams,
    ActionParamsError,
    parse_action_params,
)
from zquant_pipelines.tasks.catalog_checks import (
    are_tags,
    is_choice,
    is_flag,
    is_seconds,
    is_text,
    is_whole,
    is_zone,
    name_problem,
)
from zquant_pipelines.tasks.catalog_workflows import (
    WorkflowSpec,
    celery_workflow_problems,
    parse_workflow,
)
from zquant_pipelines.tasks.catalog_yaml import (
    CatalogFileError,
    parse_catalog_yaml,
    read_catalog_text,
)
from zquant_pipelines.tasks.cron import cron_problems

RETRY_BACKOFFS = ("fixed", "exponential")
ID_CHECK = is_whole(1)
TASK_FIELDS = (
    "name",
    "id",
    "task_type",
    "cron_expression",
    "interval_seconds",
    "timezone",
    "enabled",
    "max_retries",
    "retry_interval",
    "retry_backoff",
    "description",
    "config",
    "executor",
    "tags",
)

DEFAULT_MAX_RETRIES = 3
DEFAULT_RETRY_INTERVAL = 60
MIN_INTERVAL_SECONDS = 10
# Longer than any cron expression written by hand; cron_problems quotes its fields.
MAX_CRON_CHARS = 200


class CatalogError(Exception):
    """A catalog that cannot load; ``problems`` lists every problem, one message each."""

    def __init__(self, problems: list[str], source: str = "tasks.yaml"):
        self.problems = list(problems)
        self.source = source
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        super().__init__(
            "\n".join([f"{source} is not a valid task catalog ({count}):"] + self.problems)
        )


@dataclass(frozen=True)
class TaskSpec:
    """One validated task. ``config`` is as written; ``action``/``params`` (manual and common
    tasks) and ``workflow`` (workflows) are its validated reading."""

    name: str
    task_type: str
    id: int
    cron_expression: str | None = None
    interval_seconds: int | None = None
    timezone: str = MARKET_TIMEZONE
    enabled: bool = True
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_interval: float = DEFAULT_RETRY_INTERVAL
    retry_backoff: str = "fixed"
    description: str = ""
    config: dict = field(default_factory=dict)
    # None: the deployment's default (ZQUANT_EXECUTOR, else multiprocess), see executors.py.
    executor: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    action: str | None = None
    params: ActionParams | None = None
    workflow: WorkflowSpec | None = None

    @property
    def trigger(self) -> str | None:
        """'cron', 'interval', or None for a task that runs only when triggered."""
        if self.cron_expression:
            return "cron"
        return "interval" if self.interval_seconds else None


@dataclass(frozen=True)
class Catalog:
    """Validated tasks by name, in file order."""

    tasks: dict[str, TaskSpec]
    source: str = "tasks.yaml"

    def task_with_id(self, task_id: int) -> TaskSpec | None:
        return next((task for task in self.tasks.values() if task.id == task_id), None)

    def workflow(self, name: str) -> WorkflowSpec:
        task = self.tasks[name]
        if task.workflow is None:
            raise KeyError(f"task {name!r} is a {task.task_type}, not a workflow")
        return task.workflow

    def workflow_tasks(self, name: str) -> list[TaskSpec]:
        """A workflow's member tasks in topological order."""
        return [self.tasks[member] for member in self.workflow(name).member_names]


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate a tasks.yaml file."""
    source = str(path)
    try:
        text = read_catalog_text(path, source)
    except CatalogFileError as error:
        raise CatalogError([str(error)], source) from None
    return catalog_from_text(text, source)


def catalog_from_text(text: str, source: str = "tasks.yaml") -> Catalog:
    """Validate a catalog file's text, as ``load_catalog`` validates the file's."""
    try:
        data = parse_catalog_yaml(text)
    except CatalogFileError as error:
        raise CatalogError([str(error)], source) from None
    return parse_catalog(data, source)


def parse_catalog(data: object, source: str = "tasks.yaml") -> Catalog:
    """Validate catalog data (the parsed YAML); raise ``CatalogError`` listing every problem."""
    problems: list[str] = []
    raw_tasks = _task_list(data, problems)
    last_id = data.get("last_id") if isinstance(data, Mapping) else None
    if last_id is not None and ID_CHECK(last_id):
        problems.append(f"last_id {show_value(last_id)}: {ID_CHECK(last_id)}")
    names = [raw.get("name") if isinstance(raw, Mapping) else None for raw in raw_tasks]
    numbers: dict[str, list[int]] = {}
    for number, name in enumerate(names, start=1):
        if isinstance(name, str):
            numbers.setdefault(name, []).append(number)
    ids = entry_ids(raw_tasks, last_id)
    first_with_id: dict[int, int] = {}
    for number, task_id in enumerate(ids, start=1):
        if task_id is not None:
            first_with_id.setdefault(task_id, number)
    by_name: dict[str, Mapping] = {}
    for raw, name in zip(raw_tasks, names, strict=True):
        if isinstance(raw, Mapping) and name_problem(name) is None:
            by_name.setdefault(name, raw)
    tasks: dict[str, TaskSpec] = {}
    for number, (raw, name) in enumerate(zip(raw_tasks, names, strict=True), start=1):
        label = _label(name, number, numbers)
        if not isinstance(raw, Mapping):
            problems.append(f"{label}: must be a mapping of fields, got {type(raw).__name__}")
            continue
        found = _identity_problems(name, number, numbers)
        task_id = ids[number - 1]
        if raw.get("id") is not None and task_id is None:
            found.append(f"id {show_value(raw['id'])}: {ID_CHECK(raw['id'])}")
        elif task_id is not None and first_with_id[task_id] != number:
            first = first_with_id[task_id]
            found.append(
                f"id {task_id} is already used by {_label(names[first - 1], first, numbers)}"
            )
        task = _parse_task(raw, task_id, label, by_name, found)
        problems += [f"{label}: {message}" for message in found]
        if task is not None:
            tasks.setdefault(task.name, task)
    if problems:
        raise CatalogError(problems, source)
    return Catalog(tasks=tasks, source=source)


def entry_ids(entries: list, last_id: object = None) -> list[int | None]:
    """Each catalog entry's id (module docstring): its ``id``, or for an entry without one the
    next number after the highest ``id`` written and ``last_id``, in file order; None for an
    ``id`` that is not a positive whole number."""
    written = [entry.get("id") if isinstance(entry, Mapping) else None for entry in entries]
    valid = [value for value in [*written, last_id] if ID_CHECK(value) is None]
    following = itertools.count(max(valid, default=0) + 1)
    return [
        next(following) if value is None else (value if ID_CHECK(value) is None else None)
        for value in written
    ]


def _task_list(data: object, problems: list[str]) -> list:
    if data is None:
        problems.append("the file is empty: it must be a mapping with a 'tasks' list")
        return []
    if not isinstance(data, Mapping):
        problems.append(
            f"the top level must be a mapping with a 'tasks' list, got {type(data).__name__}"
        )
        return []
    problems += [
        f"unknown top-level key {show_value(key)} (the file holds a 'tasks' list and"
        " optionally 'last_id')"
        for key in data
        if key not in ("tasks", "last_id")
    ]
    if "tasks" not in data:
        problems.append("the top level has no 'tasks' list")
        return []
    if not isinstance(data["tasks"], list):
        problems.append(f"'tasks' must be a list of tasks, got {type(data['tasks']).__name__}")
        return []
    return data["tasks"]


def _label(name: object, number: int, numbers: Mapping[str, list[int]]) -> str:
    if not isinstance(name, str) or not name:
        return f"task #{number}"
    return f"task {show_value(name)}" + (f" (#{number})" if len(numbers[name]) > 1 else "")


def _identity_problems(name: object, number: int, numbers: Mapping[str, list[int]]) -> list[str]:
    problem = name_problem(name)
    if problem:
        return [problem]
    first = numbers[name][0]
    return [] if first == number else [f"name {show_value(name)} is already used by task #{first}"]


FIELD_CHECKS: dict[str, Callable[[object], str | None]] = {
    "task_type": is_choice(TASK_TYPES),
    "cron_expression": is_text,
    "interval_seconds": is_whole(MIN_INTERVAL_SECONDS),
    "timezone": is_zone,
    "enabled": is_flag,
    "max_retries": is_whole(0),
    "retry_interval": is_seconds,
    "retry_backoff": is_choice(RETRY_BACKOFFS),
    "description": is_text,
    "executor": is_choice(EXECUTOR_NAMES),
    "tags": are_tags,
}


def _parse_task(
    raw: Mapping,
    task_id: int | None,
    label: str,
    by_name: Mapping[str, Mapping],
    found: list[str],
) -> TaskSpec | None:
    """Check one task, adding its problems to ``found``; the spec when it has none."""
    unknown = [key for key in raw if key not in TASK_FIELDS]
    if unknown:
        found.append(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(show_value, unknown))}"
            f" (known: {', '.join(TASK_FIELDS)})"
        )
    values = {}
    for key, check in FIELD_CHECKS.items():
        value = raw.get(key)
        message = None if value is None else check(value)
        if message:
            found.append(f"{key} {show_value(value)}: {message}")
        elif value is not None:
            values[key] = value
    task_type = values.get("task_type")
    if raw.get("task_type") is None:
        found.append(f"task_type is required (one of {', '.join(TASK_TYPES)})")
    cron = values.get("cron_expression")
    if cron is not None and len(cron) > MAX_CRON_CHARS:
        found.append(f"cron_expression {show_value(cron)}: longer than {MAX_CRON_CHARS} characters")
    elif cron is not None:
        found += [f"cron_expression {cron!r}: {message}" for message in cron_problems(cron)]
    for trigger in ("cron_expression", "interval_seconds"):
        if task_type == "manual_task" and raw.get(trigger) is not None:
            found.append(f"{trigger} is not allowed on a manual_task (it runs only when triggered)")
    if raw.get("cron_expression") is not None and raw.get("interval_seconds") is not None:
        found.append("cron_expression and interval_seconds are both set: a task has one trigger")

    config = raw.get("config")
    action = params = workflow = None
    if config is not None and not isinstance(config, Mapping):
        found.append(f"config must be a mapping, got {type(config).__name__}")
    elif task_type == "workflow":
        workflow = parse_workflow(config or {}, raw.get("name"), by_name, found)
        if values.get("executor") == "celery" and config:
            found += celery_workflow_problems(config)
    elif task_type is not None:
        action, params = _parse_action(config or {}, found)

    if found:
        return None
    return TaskSpec(
        name=raw["name"],
        id=task_id,
        config=copy.deepcopy(dict(config or {})),
        action=action,
        params=params,
        workflow=workflow,
        **values,
    )


def _parse_action(config: Mapping, found: list[str]) -> tuple[str | None, ActionParams | None]:
    if "task_action" not in config:
        found.append("config.task_action is required (the action the task runs)")
        return None, None
    action = config["task_action"]
    params = {key: value for key, value in config.items() if key != "task_action"}
    try:
        return action, parse_action_params(action, params, "config")
    except ActionParamsError as error:
        found += error.problems
        return None, None
