"""`zquant status`: per dataset the latest complete trading day and whether it is on time,
read from a real SQLite warehouse whose calendar reaches today (the deadline set to 00:00 so
the latest open day up to today is due whenever the test runs)."""

import json

import dagster as dg
import pytest

from zquant_pipelines.cli.main import EXIT_OK, EXIT_USAGE, main
from zquant_pipelines.constants import (
    ENV_FRESHNESS_DEADLINE,
    ENV_WAREHOUSE_URL,
    FRESHNESS_DATASETS,
)
from zquant_pipelines.operations.local import LocalOperations
from zquant_pipelines_tests.support.freshness_warehouse import today_world


@pytest.fixture
def operations(tmp_path, monkeypatch):
    """Weekdays open; every dataset stored up to the latest open day but factor_daily,
    stored up to the open day before it."""
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    _, before, latest = today_world(url, late=("factor_daily",))
    monkeypatch.setenv(ENV_WAREHOUSE_URL, url)
    monkeypatch.setenv(ENV_FRESHNESS_DEADLINE, "00:00")
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        yield LocalOperations(instance), before, latest


def test_status_json_names_each_datasets_latest_complete_day(operations, capsys):
    ops, before, latest = operations
    assert main(["status", "--json"], operations=ops) == EXIT_OK
    shown = {row["dataset"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(shown) == set(FRESHNESS_DATASETS)
    for dataset in ("daily", "adj_factor", "daily_basic"):
        assert shown[dataset]["on_time"] is True
        assert shown[dataset]["latest_complete_day"] == latest.isoformat()
        assert shown[dataset]["missing_days"] == []
    assert shown["factor_daily"]["on_time"] is False
    assert shown["factor_daily"]["latest_complete_day"] == before.isoformat()
    assert shown["factor_daily"]["missing_days"] == [latest.isoformat()]
    for row in shown.values():
        assert row["expected_day"] == latest.isoformat()
        assert row["deadline"] == f"{latest.isoformat()}T00:00:00+08:00"


def test_status_prints_a_line_per_dataset_and_the_deadline(operations, capsys):
    ops, before, latest = operations
    assert main(["status"], operations=ops) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0].split()
        == "DATASET LATEST COMPLETE DAY EXPECTED DAY ON TIME MISSING OPEN DAYS".split()
    )
    shown = len(FRESHNESS_DATASETS)
    rows = {line.split()[0]: line.split()[1:] for line in lines[1 : 1 + shown]}
    assert rows["daily"] == [str(latest), str(latest), "yes", "-"]
    assert rows["factor_daily"] == [str(before), str(latest), "LATE", str(latest)]
    assert f"{latest} (due {latest} 00:00:00+08:00)" in lines[1 + shown]
    assert lines[1 + shown].startswith("Each open day is due by 00:00 Asia/Shanghai;")


def test_a_bad_deadline_is_a_usage_error_naming_the_variable_and_value(
    operations, capsys, monkeypatch
):
    ops, _, _ = operations
    monkeypatch.setenv(ENV_FRESHNESS_DEADLINE, "7pm")
    assert main(["status"], operations=ops) == EXIT_USAGE
    error = capsys.readouterr().err
    assert f"{ENV_FRESHNESS_DEADLINE} '7pm' is not a time of day in HH:MM form" in error
