"""The task catalog: tasks.yaml read into validated ``TaskSpec``s, or a ``CatalogError``.

Loading checks everything and reports every problem at once, one line each naming the task
and the field; a catalog with any problem is refused whole, never half-loaded. zquant's
field names are kept (name, task_type, cron_expression, interval_seconds, max_retries,
retry_interval, enabled, description, config), plus timezone, executor, retry_backoff and
tags. Tasks refer to each other by name, so a name must be usable as a Dagster name.

Rules beyond the obvious:
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
"""

import copy
import keyword
import math
import os
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from zquant_pipelines.constants import EXECUTOR_NAMES, MARKET_TIMEZONE
from zquant_pipelines.tasks.action_params import (
    ActionParams,
    ActionParamsError,
    parse_action_params,
    shorten,
    show_value,
)
from zquant_pipelines.tasks.cron import cron_problems

TASK_TYPES = ("manual_task", "common_task", "workflow")
RETRY_BACKOFFS = ("fixed", "exponential")
WORKFLOW_TYPES = ("serial", "parallel")
ON_FAILURE = ("stop", "continue")
TASK_FIELDS = (
    "name",
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
WORKFLOW_FIELDS = ("workflow_type", "on_failure", "max_parallel", "tasks")
MEMBER_FIELDS = ("name", "dependencies")

DEFAULT_MAX_RETRIES = 3
DEFAULT_RETRY_INTERVAL = 60
DEFAULT_MAX_PARALLEL = 4
MIN_INTERVAL_SECONDS = 10
# A retry waits in the run worker (time.sleep, which overflows on huge values); a retry a
# day later is the next scheduled run's job.
MAX_RETRY_INTERVAL_SECONDS = 86_400
# The shipped catalog is a few kB; a thousand tasks fit in well under 1 MiB. Bigger is a
# mistake or an attack, refused before it is read.
MAX_CATALOG_BYTES = 1024 * 1024
# A catalog nests about six levels (tasks, a task, config, a list); PyYAML composes
# recursively, so thousands of levels would crash it instead of failing to load.
MAX_NESTING = 50
# A YAML problem quotes the text it stumbled on (a tag, an anchor): this much of it.
SHOWN_PROBLEM_CHARS = 300
# Longer than any cron expression written by hand; cron_problems quotes its fields.
MAX_CRON_CHARS = 200

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Names Dagster refuses for jobs and ops, besides Python keywords.
DAGSTER_RESERVED_NAMES = frozenset(
    {"context", "conf", "config", "meta", "arg_dict", "dict", "input_arg_dict"}
    | {"output_arg_dict", "int", "str", "float", "bool", "input", "output", "type"}
)
# Tag prefixes our runs and Dagster set themselves.
RESERVED_TAG_PREFIXES = ("dagster/", ".dagster/", "zquant/")
# Zone keys that are not a place: they follow the host or are placeholders.
NON_GEOGRAPHIC_ZONES = frozenset({"localtime", "posixrules", "Factory"})


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
class WorkflowMember:
    name: str
    dependencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkflowSpec:
    """A workflow's configuration; ``members`` are in topological order."""

    workflow_type: str
    on_failure: str
    max_parallel: int | None
    members: tuple[WorkflowMember, ...]

    @property
    def member_names(self) -> tuple[str, ...]:
        return tuple(member.name for member in self.members)

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """(upstream, downstream) pairs: downstream waits for upstream."""
        return tuple((dep, member.name) for member in self.members for dep in member.dependencies)


@dataclass(frozen=True)
class TaskSpec:
    """One validated task. ``config`` is as written; ``action``/``params`` (manual and common
    tasks) and ``workflow`` (workflows) are its validated reading."""

    name: str
    task_type: str
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
    text = _read_catalog_text(path, source)
    try:
        data = yaml.load(text, Loader=_CatalogLoader)
    except yaml.YAMLError as error:
        raise CatalogError([_yaml_problem(error)], source) from None
    return parse_catalog(data, source)


def _read_catalog_text(path: str | Path, source: str) -> str:
    """The file's text; a file over ``MAX_CATALOG_BYTES`` is refused before it is read."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size <= MAX_CATALOG_BYTES:
                # A file still growing is read no further than the cap either.
                content = file.read(MAX_CATALOG_BYTES + 1)
                size = max(size, len(content))
    except OSError as error:
        raise CatalogError([f"cannot read {source}: {error.strerror or error}"], source) from None
    if size > MAX_CATALOG_BYTES:
        raise CatalogError(
            [
                f"{source} is {size:,} bytes, over the {MAX_CATALOG_BYTES:,}-byte limit of a"
                " task catalog"
            ],
            source,
        )
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CatalogError(
            [
                f"{source} is not UTF-8 text: byte {content[error.start]:#04x} at offset"
                f" {error.start:,}"
            ],
            source,
        ) from None


def parse_catalog(data: object, source: str = "tasks.yaml") -> Catalog:
    """Validate catalog data (the parsed YAML); raise ``CatalogError`` listing every problem."""
    problems: list[str] = []
    raw_tasks = _task_list(data, problems)
    names = [raw.get("name") if isinstance(raw, Mapping) else None for raw in raw_tasks]
    numbers: dict[str, list[int]] = {}
    for number, name in enumerate(names, start=1):
        if isinstance(name, str):
            numbers.setdefault(name, []).append(number)
    by_name: dict[str, Mapping] = {}
    for raw, name in zip(raw_tasks, names, strict=True):
        if isinstance(raw, Mapping) and _name_problem(name) is None:
            by_name.setdefault(name, raw)
    tasks: dict[str, TaskSpec] = {}
    for number, (raw, name) in enumerate(zip(raw_tasks, names, strict=True), start=1):
        label = _label(name, number, numbers)
        if not isinstance(raw, Mapping):
            problems.append(f"{label}: must be a mapping of fields, got {type(raw).__name__}")
            continue
        found = _identity_problems(name, number, numbers)
        task = _parse_task(raw, label, by_name, found)
        problems += [f"{label}: {message}" for message in found]
        if task is not None:
            tasks.setdefault(task.name, task)
    if problems:
        raise CatalogError(problems, source)
    return Catalog(tasks=tasks, source=source)


class _CatalogLoader(yaml.SafeLoader):
    """SafeLoader for a file anyone may have written: no aliases (an alias "bomb" of a few
    hundred bytes expands to gigabytes once validated or printed), nesting bounded (PyYAML
    composes recursively), a key given twice refused (YAML would keep the last), and a
    scalar that cannot be read (an impossible date, an over-long integer) an error at its
    line rather than a crash."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None,
                None,
                f"found the alias *{shorten(event.anchor)}: aliases are not allowed in a task"
                " catalog, write the value out",
                event.start_mark,
            )
        if self._depth >= MAX_NESTING:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_NESTING} levels", event.start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as error:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"cannot read {show_value(node.value)}: {error}",
                node.start_mark,
            ) from None

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"found the key {show_value(key)} twice",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    text = f"YAML syntax error at {where}{shorten(problem, SHOWN_PROBLEM_CHARS)}"
    text += f" ({context})" if context else ""
    if "alias" in text:
        text += "; quote values that start with '*', e.g. cron_expression: '*/5 * * * *'"
    return text


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
        f"unknown top-level key {show_value(key)} (the file holds a 'tasks' list)"
        for key in data
        if key != "tasks"
    ]
    if "tasks" not in data:
        problems.append("the top level has no 'tasks' list")
        return []
    if not isinstance(data["tasks"], list):
        problems.append(f"'tasks' must be a list of tasks, got {type(data['tasks']).__name__}")
        return []
    return data["tasks"]


def _quote_hint(value: object) -> str:
    if isinstance(value, bool):
        return " (YAML reads unquoted yes/no/on/off as true/false: quote the name)"
    return ""


def _label(name: object, number: int, numbers: Mapping[str, list[int]]) -> str:
    if not isinstance(name, str) or not name:
        return f"task #{number}"
    return f"task {show_value(name)}" + (f" (#{number})" if len(numbers[name]) > 1 else "")


def _identity_problems(name: object, number: int, numbers: Mapping[str, list[int]]) -> list[str]:
    problem = _name_problem(name)
    if problem:
        return [problem]
    first = numbers[name][0]
    return [] if first == number else [f"name {show_value(name)} is already used by task #{first}"]


def _name_problem(name: object) -> str | None:
    if name is None:
        return "name is required"
    if not isinstance(name, str):
        return f"name {show_value(name)} must be text" + _quote_hint(name)
    if not NAME_PATTERN.fullmatch(name):
        return (
            f"name {show_value(name)} is not an identifier (letters, digits and _, not starting"
            " with a digit)"
        )
    if keyword.iskeyword(name) or name in DAGSTER_RESERVED_NAMES:
        return f"name {show_value(name)} is reserved (a Python keyword or a name Dagster refuses)"
    return None


# Field checks: each returns None when the value is fine, else what is wrong with it.
def _is_text(value: object) -> str | None:
    return None if isinstance(value, str) else "must be text"


def _is_choice(options: tuple[str, ...]) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        return None if value in options else f"must be one of {', '.join(options)}"

    return check


def _is_whole(minimum: int) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        return None if value >= minimum else f"must be at least {minimum}"

    return check


def _is_seconds(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number of seconds"
    if isinstance(value, float) and not math.isfinite(value):  # YAML reads .inf and .nan
        return "must be a finite number of seconds"
    if value > MAX_RETRY_INTERVAL_SECONDS:
        return f"must be at most {MAX_RETRY_INTERVAL_SECONDS} (a day)"
    return None if value >= 0 else "must be at least 0"


def _is_flag(value: object) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


@cache
def _zone_keys() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - NON_GEOGRAPHIC_ZONES


def _is_zone(value: object) -> str | None:
    if not isinstance(value, str):
        return "must be text"
    if value not in _zone_keys():
        return "is not a time zone name (IANA, e.g. Asia/Shanghai, Europe/Berlin, UTC)"
    return None


def _are_tags(value: object) -> str | None:
    if not isinstance(value, Mapping):
        return "must be a mapping of text to text"
    for key, text in value.items():
        if not isinstance(key, str) or not isinstance(text, str):
            return f"tag {show_value(key)}: {show_value(text)} must be text: text"
        if key.startswith(RESERVED_TAG_PREFIXES):
            return (
                f"tag {show_value(key)} uses a reserved prefix ({', '.join(RESERVED_TAG_PREFIXES)})"
            )
    return None


FIELD_CHECKS: dict[str, Callable[[object], str | None]] = {
    "task_type": _is_choice(TASK_TYPES),
    "cron_expression": _is_text,
    "interval_seconds": _is_whole(MIN_INTERVAL_SECONDS),
    "timezone": _is_zone,
    "enabled": _is_flag,
    "max_retries": _is_whole(0),
    "retry_interval": _is_seconds,
    "retry_backoff": _is_choice(RETRY_BACKOFFS),
    "description": _is_text,
    "executor": _is_choice(EXECUTOR_NAMES),
    "tags": _are_tags,
}


def _parse_task(
    raw: Mapping, label: str, by_name: Mapping[str, Mapping], found: list[str]
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
        workflow = _parse_workflow(config or {}, raw.get("name"), by_name, found)
        if values.get("executor") == "celery" and config:
            found += _celery_workflow_problems(config)
    elif task_type is not None:
        action, params = _parse_action(config or {}, found)

    if found:
        return None
    return TaskSpec(
        name=raw["name"],
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


def _parse_workflow(
    config: Mapping, own_name: object, by_name: Mapping[str, Mapping], found: list[str]
) -> WorkflowSpec | None:
    problems_before = len(found)
    found += [
        f"config.{key}: not a workflow setting (known: {', '.join(WORKFLOW_FIELDS)})"
        for key in config
        if key not in WORKFLOW_FIELDS
    ]
    workflow_type = config.get("workflow_type")
    if workflow_type is None:
        found.append(f"config.workflow_type is required ({' or '.join(WORKFLOW_TYPES)})")
    elif workflow_type not in WORKFLOW_TYPES:
        found.append(
            f"config.workflow_type {show_value(workflow_type)}: must be serial or parallel"
        )
    on_failure = config.get("on_failure", "stop")
    if on_failure not in ON_FAILURE:
        found.append(f"config.on_failure {show_value(on_failure)}: must be stop or continue")
    max_parallel = config.get("max_parallel")
    if max_parallel is None:
        max_parallel = DEFAULT_MAX_PARALLEL if workflow_type == "parallel" else None
    elif workflow_type == "serial":
        found.append("config.max_parallel applies only to a parallel workflow")
    elif message := _is_whole(1)(max_parallel):
        found.append(f"config.max_parallel {show_value(max_parallel)}: {message}")
    members = _parse_members(config.get("tasks"), own_name, by_name, found)
    if len(found) > problems_before:
        return None
    return WorkflowSpec(
        workflow_type=workflow_type,
        on_failure=on_failure,
        max_parallel=max_parallel,
        members=members,
    )


def _celery_workflow_problems(config: Mapping) -> list[str]:
    problems = []
    if config.get("workflow_type") == "serial":
        problems.append(
            "executor 'celery': a serial workflow runs its members in order on one executor;"
            " use multiprocess or in_process"
        )
    if config.get("max_parallel") is not None:
        problems.append(
            f"config.max_parallel {show_value(config['max_parallel'])}: not applied under"
            " executor 'celery', where the workers' slots bound how many members run at once"
            " (zquant worker --concurrency); remove it"
        )
    return problems


def _parse_members(
    entries: object, own_name: object, by_name: Mapping[str, Mapping], found: list[str]
) -> tuple[WorkflowMember, ...]:
    if not isinstance(entries, list) or not entries:
        found.append("config.tasks must be a non-empty list of {name, dependencies} entries")
        return ()
    members: list[WorkflowMember] = []
    first_entry: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = f"config.tasks[{index}]"
        if not isinstance(entry, Mapping):
            found.append(
                f"{where} must be a mapping {{name, dependencies}}, got {show_value(entry)}"
            )
            continue
        found += [
            f"{where}.{key}: not a member setting (known: {', '.join(MEMBER_FIELDS)})"
            for key in entry
            if key not in MEMBER_FIELDS
        ]
        name = entry.get("name")
        if isinstance(name, str) and name in first_entry:
            found.append(
                f"{where}.name {show_value(name)}: already listed at"
                f" config.tasks[{first_entry[name]}]"
            )
            continue
        if isinstance(name, str):
            first_entry[name] = index
        member_problem = _member_problem(name, own_name, by_name)
        dependencies = _dependencies(entry, where, name, found)
        if member_problem:
            found.append(f"{where}.name {show_value(name)}: {member_problem}{_quote_hint(name)}")
        else:
            members.append(WorkflowMember(name, dependencies))
    for member in members:
        found += [
            f"config.tasks[{first_entry[member.name]}].dependencies: {show_value(dep)} is not a"
            " member of this workflow"
            for dep in member.dependencies
            if dep not in first_entry
        ]
    order = _topological_order(members)
    if len(order) < len(members):
        placed = {member.name for member in order}
        found += [
            f"config.tasks: dependency cycle {' -> '.join(cycle)} (a -> b: b depends on a)"
            for cycle in _cycles(members, placed)
        ]
    return tuple(order)


def _member_problem(name: object, own_name: object, by_name: Mapping[str, Mapping]) -> str | None:
    if not isinstance(name, str):
        return "each member needs the name of a task"
    if name == own_name:
        return "a workflow cannot contain itself"
    if name not in by_name:
        return "no task of that name in the catalog"
    task = by_name[name]
    if task.get("task_type") == "workflow":
        return "is a workflow: nested workflows are not supported (list its members instead)"
    if task.get("enabled") is False:
        return "is disabled (enabled: false): a workflow runs only enabled tasks"
    return None


def _dependencies(entry: Mapping, where: str, name: object, found: list[str]) -> tuple[str, ...]:
    deps = entry.get("dependencies")
    if deps is None:
        return ()
    if not isinstance(deps, list) or not all(isinstance(dep, str) for dep in deps):
        found.append(f"{where}.dependencies {show_value(deps)}: must be a list of member names")
        return ()
    if name in deps:
        found.append(f"{where}.dependencies: {show_value(name)} depends on itself")
    repeated = sorted({dep for dep in deps if deps.count(dep) > 1})
    if repeated:
        found.append(f"{where}.dependencies: {', '.join(map(show_value, repeated))} listed twice")
    return tuple(dict.fromkeys(dep for dep in deps if dep != name))


def _topological_order(members: list[WorkflowMember]) -> list[WorkflowMember]:
    """Kahn's order, taking the earliest-listed ready member each time; members caught in
    (or behind) a cycle are left out."""
    done: set[str] = set()
    order: list[WorkflowMember] = []
    while True:
        ready = next(
            (m for m in members if m.name not in done and set(m.dependencies) <= done), None
        )
        if ready is None:
            return order
        done.add(ready.name)
        order.append(ready)


def _cycles(members: list[WorkflowMember], ordered: set[str]) -> list[list[str]]:
    """One path per dependency cycle among the members a topological order could not place."""
    deps = {m.name: list(m.dependencies) for m in members if m.name not in ordered}
    position = {m.name: index for index, m in enumerate(members)}
    cycles = []
    while deps:
        # Members only waiting on a cycle, not part of one, drop out until each left has a
        # dependency left, so following dependencies from any of them must come round.
        while pruned := [n for n, ds in deps.items() if not any(d in deps for d in ds)]:
            for name in pruned:
                del deps[name]
        if not deps:
            break
        path = [min(deps, key=position.__getitem__)]
        while path.count(path[-1]) < 2:
            path.append(min((d for d in deps[path[-1]] if d in deps), key=position.__getitem__))
        cycle = path[path.index(path[-1]) :]
        cycle.reverse()  # upstream first: a -> b reads "b depends on a"
        start = cycle.index(min(cycle[:-1], key=position.__getitem__))
        cycles.append(cycle[start:-1] + cycle[:start] + [cycle[start]])
        for name in cycle:
            deps.pop(name, None)
    return cycles
