"""A workflow task's config read into a ``WorkflowSpec``: its settings, its members (other
enabled, non-workflow tasks of the catalog, by name), their dependencies, the members'
topological order and any dependency cycle, and what the Celery executor cannot honour.
The rules are in the docstring of ``catalog.py``.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from zquant_pipelines.safe_yaml import show_value
from zquant_pipelines.tasks.catalog_checks import is_whole, quote_hint

WORKFLOW_TYPES = ("serial", "parallel")
ON_FAILURE = ("stop", "continue")
WORKFLOW_FIELDS = ("workflow_type", "on_failure", "max_parallel", "tasks")
MEMBER_FIELDS = ("name", "dependencies")

DEFAULT_MAX_PARALLEL = 4


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


def parse_workflow(
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
    elif message := is_whole(1)(max_parallel):
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


def celery_workflow_problems(config: Mapping) -> list[str]:
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
            found.append(f"{where}.name {show_value(name)}: {member_problem}{quote_hint(name)}")
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
