"""The catalog editor (tasks/editor.py) on real files: the shipped tasks.yaml edited in a
temporary folder, every refusal leaving the file byte-identical."""

import json
import threading
from pathlib import Path

import pytest

from zquant_pipelines.constants import REPO_ROOT
from zquant_pipelines.tasks import editor
from zquant_pipelines.tasks.catalog import load_catalog
from zquant_pipelines.tasks.editor import CatalogEditRefused

SHIPPED = REPO_ROOT / "tasks.yaml"
NEW_TASK = {
    "name": "weekly_calendar",
    "task_type": "common_task",
    "cron_expression": "0 9 * * 6",
    "description": "Saturday calendar refresh",
    "config": {"task_action": "sync_trading_calendar", "exchanges": ["SSE"]},
}


@pytest.fixture
def catalog_file(tmp_path) -> Path:
    path = tmp_path / "tasks.yaml"
    path.write_bytes(SHIPPED.read_bytes())
    return path


def refused(call, *args, **kwargs) -> list[str]:
    with pytest.raises(CatalogEditRefused) as caught:
        call(*args, **kwargs)
    return caught.value.problems


def test_add_appends_the_task_and_keeps_every_other_byte(catalog_file):
    before = catalog_file.read_text()
    result = editor.add_task(catalog_file, NEW_TASK)
    after = catalog_file.read_text()
    # Comments, order, quoting of the rest untouched; last_id records the new id.
    assert after.replace("\nlast_id: 16\n", "\nlast_id: 15\n").startswith(before)
    assert "\n\n  - name: weekly_calendar\n    id: 16\n" in after  # after last_id
    assert load_catalog(catalog_file).tasks["weekly_calendar"].cron_expression == "0 9 * * 6"
    assert result.backup is not None and result.backup.read_text() == before
    assert result.names == ("weekly_calendar",)


def test_a_refused_add_lists_every_problem_and_writes_nothing(catalog_file):
    before = catalog_file.read_bytes()
    bad = {
        "name": "broken",
        "task_type": "common_task",
        "cron_expression": "61 * * * *",
        "max_retries": -1,
        "config": {"task_action": "no_such_action"},
    }
    problems = refused(editor.add_task, catalog_file, bad)
    assert len(problems) >= 3
    assert all(problem.startswith("task 'broken'") for problem in problems)
    for field in ("cron_expression", "max_retries", "task_action"):
        assert any(field in problem for problem in problems), (field, problems)
    assert catalog_file.read_bytes() == before
    assert list(catalog_file.parent.glob("tasks.yaml.~*~")) == []


def test_adding_an_existing_name_is_refused(catalog_file):
    before = catalog_file.read_bytes()
    problems = refused(editor.add_task, catalog_file, {**NEW_TASK, "name": "sync_stock_list"})
    assert problems == [
        "task 'sync_stock_list': already in the catalog (change it with `zquant tasks update`)"
    ]
    assert catalog_file.read_bytes() == before


def test_update_sets_fields_and_keeps_comments_of_the_entry(catalog_file):
    editor.update_task(
        catalog_file,
        "sync_stock_list",
        {"cron_expression": "45 8 * * *", "config.task_action": "sync_stock_list", "tags": None},
    )
    text = catalog_file.read_text()
    assert 'cron_expression: "45 8 * * *"  # every morning before the open' in text
    assert load_catalog(catalog_file).tasks["sync_stock_list"].cron_expression == "45 8 * * *"
    original = SHIPPED.read_text()
    assert text.replace('"45 8 * * *"', '"30 8 * * *"') == original


def test_ids_stay_with_their_task_through_removals_and_adds(tmp_path):
    # A hand-written catalog without ids: the first edit writes each task's id (the one it
    # loads with), so removing the first task moves no other task's id.
    path = tmp_path / "tasks.yaml"
    path.write_text(
        "tasks:\n"
        + "".join(
            f"  - name: {name}  # {name}'s comment\n    task_type: manual_task\n"
            f"    config: {{task_action: sync_stock_list}}\n"
            for name in ("first", "second", "third")
        )
    )

    editor.remove_task(path, "first")
    editor.add_task(path, {**NEW_TASK, "name": "fourth"})
    editor.add_task(path, {**NEW_TASK, "name": "chosen", "id": 10})
    editor.replace_task(path, "second", {**NEW_TASK, "name": "second"})

    ids = {name: task.id for name, task in load_catalog(path).tasks.items()}
    assert ids == {"second": 2, "third": 3, "fourth": 4, "chosen": 10}
    text = path.read_text()
    assert text.startswith("last_id: 10\ntasks:\n")
    assert "  - name: third  # third's comment\n    id: 3\n    task_type:" in text
    # A removed task's id is never given again, not even the highest one's.
    editor.remove_task(path, "chosen")
    assert editor.add_task(path, {**NEW_TASK, "name": "fifth"}).catalog.tasks["fifth"].id == 11
    problems = refused(editor.add_task, path, {**NEW_TASK, "name": "clash", "id": 3})
    assert problems == ["task 'clash': id 3 is already used by task 'third'"]


def test_taken_ids_are_renumbered_when_asked(catalog_file):
    # The zquant import: zquant's ids are kept where free, the others follow every id.
    specs = [{**NEW_TASK, "name": name, "id": task_id} for name, task_id in (("a", 3), ("b", 20))]

    result = editor.add_tasks(catalog_file, specs, renumber_taken_ids=True)

    assert (result.catalog.tasks["a"].id, result.catalog.tasks["b"].id) == (21, 20)


def test_update_with_a_whole_spec_replaces_the_task(catalog_file):
    spec = {**NEW_TASK, "name": "sync_trading_calendar"}
    editor.replace_task(catalog_file, "sync_trading_calendar", spec)
    task = load_catalog(catalog_file).tasks["sync_trading_calendar"]
    assert (task.cron_expression, task.description) == ("0 9 * * 6", "Saturday calendar refresh")
    assert task.params.exchanges == ["SSE"]
    # The fields the spec has keep their place (and comments); the other tasks are untouched.
    # One task entry of that name (workflows list it as a member, further indented).
    assert catalog_file.read_text().count("\n  - name: sync_trading_calendar\n") == 1


def test_a_refused_update_names_task_and_field(catalog_file):
    before = catalog_file.read_bytes()
    problems = refused(
        editor.update_task, catalog_file, "heartbeat", {"interval_seconds": 3, "enabled": "yes"}
    )
    assert problems == [
        "task 'heartbeat': interval_seconds 3: must be at least 10",
        "task 'heartbeat': enabled 'yes': must be true or false",
    ]
    assert catalog_file.read_bytes() == before
    assert refused(editor.update_task, catalog_file, "nope", {"enabled": True})[0].startswith(
        "task 'nope': no such task (known: "
    )


def test_removing_a_workflow_member_is_refused_naming_the_workflow(catalog_file):
    before = catalog_file.read_bytes()
    problems = refused(editor.remove_task, catalog_file, "sync_all_daily_data")
    assert problems == [
        "task 'sync_all_daily_data': workflows 'after_close', 'evening_workflow' list it in"
        " config.tasks: take it out of the workflow first"
    ]
    assert catalog_file.read_bytes() == before


def test_remove_a_workflow_then_its_members(catalog_file):
    editor.remove_task(catalog_file, "after_close")
    editor.remove_task(catalog_file, "evening_workflow")
    editor.remove_task(catalog_file, "calculate_factor")
    tasks = load_catalog(catalog_file).tasks
    assert not {"after_close", "evening_workflow", "calculate_factor"} & set(tasks)
    assert "sync_stock_list" in tasks
    assert "# The task catalog: every scheduled or hand-run job" in catalog_file.read_text()


def test_add_a_workflow_with_members_and_dependencies(catalog_file):
    workflow = {
        "name": "morning",
        "task_type": "workflow",
        "cron_expression": "0 7 * * 1-5",
        "config": {
            "workflow_type": "serial",
            "tasks": [
                {"name": "sync_trading_calendar"},
                {"name": "sync_stock_list", "dependencies": ["sync_trading_calendar"]},
            ],
        },
    }
    editor.add_task(catalog_file, workflow)
    spec = load_catalog(catalog_file).tasks["morning"].workflow
    assert spec.edges == (("sync_trading_calendar", "sync_stock_list"),)
    cyclic = {**workflow, "name": "loop"}
    cyclic["config"] = {
        "workflow_type": "serial",
        "tasks": [
            {"name": "sync_trading_calendar", "dependencies": ["sync_stock_list"]},
            {"name": "sync_stock_list", "dependencies": ["sync_trading_calendar"]},
        ],
    }
    problems = refused(editor.add_task, catalog_file, cyclic)
    assert any("task 'loop': config.tasks: dependency cycle" in p for p in problems), problems


def test_a_change_under_the_editor_refuses_the_write(catalog_file, monkeypatch):
    """The file is edited by hand between the editor's read and its write."""
    real_write = editor._write

    def edited_meanwhile(current, text):
        catalog_file.write_text(current.text + "# edited by hand\n")
        return real_write(current, text)

    monkeypatch.setattr(editor, "_write", edited_meanwhile)
    problems = refused(editor.add_task, catalog_file, NEW_TASK)
    assert "changed since it was read" in problems[0]
    assert catalog_file.read_text().endswith("# edited by hand\n")
    assert "weekly_calendar" not in catalog_file.read_text()


def test_an_expected_hash_that_no_longer_matches_is_refused(catalog_file):
    read = editor.read_catalog_file(catalog_file)
    editor.update_task(catalog_file, "heartbeat", {"interval_seconds": 600})
    problems = refused(
        editor.update_task,
        catalog_file,
        "heartbeat",
        {"interval_seconds": 900},
        expected_sha256=read.sha256,
    )
    assert "changed since it was read" in problems[0]
    assert load_catalog(catalog_file).tasks["heartbeat"].interval_seconds == 600


def test_numbered_backups_keep_the_newest(catalog_file, monkeypatch):
    monkeypatch.setattr(editor, "BACKUPS_KEPT", 2)
    for seconds in (20, 30, 40):
        editor.update_task(catalog_file, "heartbeat", {"interval_seconds": seconds})
    backups = sorted(p.name for p in catalog_file.parent.glob("tasks.yaml.~*~"))
    assert backups == ["tasks.yaml.~2~", "tasks.yaml.~3~"]
    assert "interval_seconds: 30" in (catalog_file.parent / "tasks.yaml.~3~").read_text()


def test_concurrent_edits_all_land(catalog_file):
    """Editors in threads, each retrying when another changed the file first: every task
    is added once, none lost."""
    names = [f"parallel_{number}" for number in range(3)]

    def add(name):
        while True:
            try:
                editor.add_task(catalog_file, {**NEW_TASK, "name": name})
                return
            except CatalogEditRefused as error:
                assert "changed since it was read" in error.problems[0], error.problems

    threads = [threading.Thread(target=add, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(names) <= set(load_catalog(catalog_file).tasks)


def test_spec_text_yaml_or_json_and_assignments():
    assert editor.parse_spec(json.dumps(NEW_TASK), "spec.json") == NEW_TASK
    assert editor.parse_spec("name: x\ntask_type: manual_task\n", "-")["name"] == "x"
    assert refused(editor.parse_spec, "- a\n- b\n", "spec.yaml") == [
        "spec.yaml: a task spec is a mapping of fields, got list"
    ]
    assert editor.parse_assignments(["enabled=false", "config.codes=[a, b]", "tags="]) == {
        "enabled": False,
        "config.codes": ["a", "b"],
        "tags": None,
    }
    assert refused(editor.parse_assignments, ["enabled"])[0].startswith("--set 'enabled'")
