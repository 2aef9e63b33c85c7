"""Edits of tasks.yaml that cannot break the catalog: add, update and remove tasks (workflows
are tasks too), for the `zquant tasks` commands, the zquant import and a REST layer alike.

Every edit works the same way:
1. read the file (``read_catalog_text``'s size cap and UTF-8, the catalog loader's YAML
   rules) and note its SHA-256;
2. change the entries in a round-trip YAML document (ruamel.yaml), so comments, order,
   quoting and layout of everything the edit does not touch are kept byte for byte; every
   entry without an ``id`` gets the one it loads with written (after its ``name``), and
   ``last_id`` records the highest id, so removing or adding a task never moves another
   task's id;
3. validate the whole resulting text with the catalog's own validator; any problem
   refuses the edit with every problem listed (``CatalogEditRefused``), nothing written;
4. under a lock (``tasks.yaml.lock`` beside the file, so two editors never interleave),
   check that the file still has the hash read in 1 (an edit by hand or by another editor
   in between refuses this one), keep the old file as a numbered backup
   (``tasks.yaml.~N~``, the newest ``BACKUPS_KEPT``), write the new text to a temporary
   file in the same folder and ``os.replace`` it over the old one, so a reader sees the
   old file or the new one, never half of one.

Reloading the code location after a write is the caller's (the CLI's): this module knows
files, not servers.

An added task without an ``id`` gets the next after every id in the file and the file's
``last_id``, which every edit raises to the highest id in the file (written before
``tasks``), so a removed task's id is not given to a new task.

A change is plain data: a task spec as tasks.yaml holds it (a mapping), or field values by
name where a dotted name reaches into a mapping (``config.start_date``) and None removes
the field.
"""

import contextlib
import dataclasses
import hashlib
import io
import itertools
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import filelock
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from zquant_pipelines.safe_yaml import show_value
from zquant_pipelines.tasks.catalog import (
    ID_CHECK,
    Catalog,
    CatalogError,
    catalog_from_text,
    entry_ids,
)
from zquant_pipelines.tasks.catalog_yaml import (
    CatalogFileError,
    parse_catalog_yaml,
    read_catalog_text,
)

# Numbered backups kept beside the file (tasks.yaml.~1~, ~2~, ...); older ones are deleted.
BACKUPS_KEPT = 10
# How long an edit waits for another one to finish before it gives up.
LOCK_TIMEOUT_SECONDS = 10.0
BACKUP_PATTERN = re.compile(r"\.~(\d+)~$")


class CatalogEditRefused(Exception):
    """An edit refused before anything was written; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[str], source: str):
        self.problems = list(problems)
        self.source = source
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        super().__init__("\n".join([f"{source} was not changed ({count}):"] + self.problems))


@dataclasses.dataclass(frozen=True)
class CatalogFile:
    """A catalog file as read: its text and the text's SHA-256 (an edit's precondition)."""

    path: Path
    text: str
    sha256: str


@dataclasses.dataclass(frozen=True)
class EditResult:
    """What an edit did: the tasks it touched, the catalog now in the file, the file's new
    text and hash, and the backup of the old file (None when nothing was written)."""

    path: Path
    names: tuple[str, ...]
    catalog: Catalog
    text: str
    sha256: str
    backup: Path | None


def read_catalog_file(path: str | Path) -> CatalogFile:
    path = Path(path)
    try:
        text = read_catalog_text(path, str(path))
        parse_catalog_yaml(text)
    except CatalogFileError as error:
        raise CatalogEditRefused([str(error)], str(path)) from None
    return CatalogFile(path, text, _sha256(text))


def parse_spec(text: str, source: str) -> dict:
    """One task spec from YAML or JSON text (JSON is YAML), read as tasks.yaml is read."""
    try:
        spec = parse_catalog_yaml(text)
    except CatalogFileError as error:
        raise CatalogEditRefused([f"{source}: {error}"], source) from None
    if not isinstance(spec, Mapping):
        raise CatalogEditRefused(
            [f"{source}: a task spec is a mapping of fields, got {type(spec).__name__}"], source
        )
    return dict(spec)


def parse_assignments(assignments: Sequence[str]) -> dict[str, object]:
    """``field=value`` pairs (values in YAML: ``enabled=false``, ``config.codes=[a, b]``; an
    empty value removes the field) as field values by name."""
    changes, problems = {}, []
    for assignment in assignments:
        field, equals, text = assignment.partition("=")
        if not equals or not field.strip():
            problems.append(f"--set {assignment!r}: expected FIELD=VALUE, e.g. enabled=false")
            continue
        try:
            changes[field.strip()] = parse_catalog_yaml(text) if text.strip() else None
        except CatalogFileError as error:
            problems.append(f"--set {field.strip()}: {error}")
    if problems:
        raise CatalogEditRefused(problems, "--set")
    return changes


def add_tasks(
    path: str | Path,
    specs: Sequence[Mapping],
    *,
    expected_sha256: str | None = None,
    dry_run: bool = False,
    renumber_taken_ids: bool = False,
) -> EditResult:
    """Append tasks (in order) to the catalog. A spec's ``id`` is kept (one the catalog uses
    already is refused, or with ``renumber_taken_ids`` replaced by a new one: the zquant
    import); a spec without one gets the next after every id of the file and the specs."""

    def change(document: CommentedMap) -> list[str]:
        tasks = document["tasks"]
        problems, names = [], _names(tasks)
        placed = _with_ids(document, specs, renumber_taken_ids)
        for number, spec in enumerate(placed, start=1):
            name = spec.get("name") if isinstance(spec, Mapping) else None
            if not isinstance(spec, Mapping):
                problems.append(f"spec #{number}: a task spec is a mapping of fields")
            elif name in names:
                problems.append(
                    f"task {show_value(name)}: already in the catalog (change it with"
                    " `zquant tasks update`)"
                )
            else:
                names.add(name)
                _append(tasks, spec)
        return problems

    names = tuple(spec.get("name") for spec in specs if isinstance(spec, Mapping))
    return _edit(path, change, names, expected_sha256, dry_run)


def add_task(path: str | Path, spec: Mapping, **options) -> EditResult:
    return add_tasks(path, [spec], **options)


def replace_task(path: str | Path, name: str, spec: Mapping, **options) -> EditResult:
    """The task becomes ``spec``: fields not in it go back to their defaults (the kept
    fields keep their comments and place). A different ``name`` in ``spec`` renames it."""
    return _change_task(path, name, dict(spec), replace=True, **options)


def update_task(path: str | Path, name: str, changes: Mapping, **options) -> EditResult:
    """Set the given fields of the task (dotted names reach into mappings; None removes the
    field), keeping the others."""
    return _change_task(path, name, dict(changes), replace=False, **options)


def remove_task(
    path: str | Path, name: str, *, expected_sha256: str | None = None, dry_run: bool = False
) -> EditResult:
    """Remove a task; refused while a workflow lists it as a member."""

    def change(document: CommentedMap) -> list[str]:
        tasks = document["tasks"]
        index = _index(tasks, name)
        if index is None:
            return [_unknown(name, tasks)]
        users = [
            entry.get("name")
            for entry in tasks
            if isinstance(entry, Mapping)
            and entry.get("task_type") == "workflow"
            and name in _member_names(entry)
        ]
        if users:
            return [
                f"task {show_value(name)}: workflow"
                f"{'s' if len(users) > 1 else ''} {', '.join(map(show_value, users))} list it"
                " in config.tasks: take it out of the workflow first"
            ]
        del tasks[index]
        return []

    return _edit(path, change, (name,), expected_sha256, dry_run)


def entries_yaml(specs: Sequence[Mapping]) -> str:
    """Task specs as the entries of tasks.yaml's list would be written."""
    buffer = io.StringIO()
    _round_trip().dump(_commented({"tasks": list(specs)}), buffer)
    return buffer.getvalue()


# --- the edit ------------------------------------------------------------------------------


def _change_task(
    path: str | Path,
    name: str,
    changes: dict,
    *,
    replace: bool,
    expected_sha256: str | None = None,
    dry_run: bool = False,
) -> EditResult:
    if replace:
        changes.setdefault("name", name)

    def change(document: CommentedMap) -> list[str]:
        tasks = document["tasks"]
        index = _index(tasks, name)
        if index is None:
            return [_unknown(name, tasks)]
        entry = tasks[index]
        if replace:
            # The id is the task's identity, not a setting: a spec without one keeps it.
            for key in [key for key in entry if key not in changes and key != "id"]:
                del entry[key]
        problems = []
        for field, value in changes.items():
            problems += _set_field(entry, field, value, name)
        return problems

    new_name = changes.get("name") if isinstance(changes.get("name"), str) else name
    names = tuple(dict.fromkeys((name, new_name)))
    return _edit(path, change, names, expected_sha256, dry_run)


def _edit(
    path: str | Path,
    change: Callable[[CommentedMap], list[str]],
    names: tuple,
    expected_sha256: str | None,
    dry_run: bool,
) -> EditResult:
    current = read_catalog_file(path)
    source = str(current.path)
    if expected_sha256 is not None and expected_sha256 != current.sha256:
        raise CatalogEditRefused([_changed_under(source)], source)
    yaml = _round_trip()
    document = yaml.load(current.text)
    if not isinstance(document, Mapping) or not isinstance(document.get("tasks"), list):
        raise CatalogEditRefused(
            [f"{source} has no 'tasks' list to edit: fix it by hand (`zquant tasks validate`)"],
            source,
        )
    _write_ids(document)
    _record_last_id(document)
    problems = change(document)
    _record_last_id(document)
    if problems:
        raise CatalogEditRefused(problems, source)
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    text = buffer.getvalue()
    try:
        catalog = catalog_from_text(text, source)
    except CatalogError as error:
        raise CatalogEditRefused(error.problems, source) from None
    backup = None
    if not dry_run:
        backup = _write(current, text)
    return EditResult(current.path, names, catalog, text, _sha256(text), backup)


def _write(current: CatalogFile, text: str) -> Path:
    """Replace the file with ``text`` if it is still as read; the backup of the old file."""
    source = str(current.path)
    lock = filelock.FileLock(f"{current.path}.lock", timeout=LOCK_TIMEOUT_SECONDS)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise CatalogEditRefused(
            [f"another edit of {source} holds {lock.lock_file}; try again when it is done"],
            source,
        ) from None
    try:
        try:
            now = read_catalog_text(current.path, source)
        except CatalogFileError:
            now = None
        if now is None or _sha256(now) != current.sha256:
            raise CatalogEditRefused([_changed_under(source)], source)
        backup = _backup(current)
        _replace(current.path, text)
        _prune_backups(current.path)
        return backup
    finally:
        lock.release()


def _backup(current: CatalogFile) -> Path:
    number = max(_backup_numbers(current.path), default=0) + 1
    backup = current.path.with_name(f"{current.path.name}.~{number}~")
    with open(backup, "x", encoding="utf-8", newline="") as file:
        file.write(current.text)
    return backup


def _backup_numbers(path: Path) -> list[int]:
    prefix = f"{path.name}.~"
    return [
        int(match.group(1))
        for other in path.parent.iterdir()
        if other.name.startswith(prefix) and (match := BACKUP_PATTERN.search(other.name))
    ]


def _prune_backups(path: Path) -> None:
    for number in sorted(_backup_numbers(path))[:-BACKUPS_KEPT]:
        with contextlib.suppress(FileNotFoundError):
            path.with_name(f"{path.name}.~{number}~").unlink()


def _replace(path: Path, text: str) -> None:
    mode = os.stat(path).st_mode & 0o7777
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a crash
    finally:
        os.close(folder)


def _changed_under(source: str) -> str:
    return (
        f"{source} changed since it was read (edited by hand or by another editor):"
        " nothing written; read it again and repeat the change"
    )


# --- entries -------------------------------------------------------------------------------


def _round_trip() -> YAML:
    yaml = YAML()  # round-trip mode: comments, order and quoting are kept
    yaml.indent(mapping=2, sequence=4, offset=2)  # tasks.yaml's layout: "  - name: ..."
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long description or command
    return yaml


def _names(tasks: CommentedSeq) -> set:
    return {entry.get("name") for entry in tasks if isinstance(entry, Mapping)}


def _index(tasks: CommentedSeq, name: str) -> int | None:
    return next(
        (
            index
            for index, entry in enumerate(tasks)
            if isinstance(entry, Mapping) and entry.get("name") == name
        ),
        None,
    )


def _unknown(name: str, tasks: CommentedSeq) -> str:
    known = ", ".join(str(name) for name in _names(tasks) if name is not None)
    return f"task {show_value(name)}: no such task (known: {known})"


def _write_ids(document: CommentedMap) -> None:
    """Write the id each entry without one loads with (tasks.yaml's rule), after its name."""
    tasks = document["tasks"]
    for entry, task_id in zip(tasks, entry_ids(tasks, document.get("last_id")), strict=True):
        if isinstance(entry, CommentedMap) and "id" not in entry:
            entry.insert(_after_name(entry), "id", task_id)


def _after_name(entry: Mapping) -> int:
    return list(entry).index("name") + 1 if "name" in entry else 0


def _task_ids(document: CommentedMap) -> list:
    return [entry.get("id") for entry in document["tasks"] if isinstance(entry, Mapping)]


def _record_last_id(document: CommentedMap) -> None:
    """Raise ``last_id`` to the highest id in the file, so a removed task's id is never given
    again (written before ``tasks`` when the file has none; an invalid one is left for the
    validator to name)."""
    current = document.get("last_id")
    if current is not None and ID_CHECK(current):
        return
    ids = [task_id for task_id in [*_task_ids(document), current] if ID_CHECK(task_id) is None]
    highest = max(ids, default=None)
    if highest == current:
        return
    if "last_id" in document:
        document["last_id"] = highest
    else:
        document.insert(list(document).index("tasks"), "last_id", highest)


def _with_ids(document: CommentedMap, specs: Sequence, renumber_taken: bool) -> list:
    """The specs, each mapping with an id (``add_tasks``' rule) written after its name."""
    taken = _task_ids(document)
    wanted = [spec.get("id") if isinstance(spec, Mapping) else None for spec in specs]
    if renumber_taken:
        wanted = [None if task_id in taken else task_id for task_id in wanted]
    known = [*taken, *wanted, document.get("last_id")]
    numbers = [task_id for task_id in known if ID_CHECK(task_id) is None]
    following = itertools.count(max(numbers, default=0) + 1)
    placed = []
    for spec, task_id in zip(specs, wanted, strict=True):
        if not isinstance(spec, Mapping):
            placed.append(spec)
            continue
        items = [(key, value) for key, value in spec.items() if key != "id"]
        at = _after_name(dict(items))
        number = next(following) if task_id is None else task_id
        placed.append(dict(items[:at] + [("id", number)] + items[at:]))
    return placed


def _member_names(workflow: Mapping) -> list:
    config = workflow.get("config")
    members = config.get("tasks") if isinstance(config, Mapping) else None
    if not isinstance(members, list):
        return []
    return [member.get("name") for member in members if isinstance(member, Mapping)]


def _append(tasks: CommentedSeq, spec: Mapping) -> None:
    tasks.append(_commented(spec))
    # A blank line before the new entry, as between the entries written by hand.
    tasks.yaml_set_comment_before_after_key(len(tasks) - 1, before="\n", indent=2)


def _commented(value: object) -> object:
    """Plain data as round-trip nodes, so new entries are written in block style."""
    if isinstance(value, Mapping):
        return CommentedMap((key, _commented(item)) for key, item in value.items())
    if isinstance(value, list):
        return CommentedSeq(_commented(item) for item in value)
    if isinstance(value, str) and not _reads_back(value):
        # ruamel writes YAML 1.2, where `yes`, `on` or `0o17` are text; the catalog loader
        # reads YAML 1.1, where they are not: such text is quoted.
        return DoubleQuotedScalarString(value)
    return value


def _reads_back(text: str) -> bool:
    try:
        return parse_catalog_yaml(text) == text
    except CatalogFileError:
        return False


def _set_field(entry: CommentedMap, field: str, value: object, name: str) -> list[str]:
    """Set (None: remove) ``field`` of the entry; a dotted field reaches into mappings."""
    *parents, last = field.split(".")
    target = entry
    for depth, part in enumerate(parents):
        inner = target.get(part)
        if inner is None and value is not None:
            inner = target[part] = CommentedMap()
        if inner is None:
            return []
        if not isinstance(inner, Mapping):
            where = ".".join(parents[: depth + 1])
            return [
                f"task {show_value(name)}: {field}: {where} is {show_value(inner)}, not a mapping"
            ]
        target = inner
    if value is None:
        target.pop(last, None)
    elif isinstance(target.get(last), Mapping) and isinstance(value, Mapping) and not parents:
        # A whole mapping (config) replaced key by key, so kept keys keep their comments.
        current = target[last]
        for key in [key for key in current if key not in value]:
            del current[key]
        for key, item in value.items():
            current[key] = _commented(item)
    else:
        target[last] = _commented(value)
    return []


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
