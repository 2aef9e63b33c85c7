"""The catalog's Definitions come from ZQUANT_TASKS_FILE; a bad catalog fails the code location
whole, with every problem listed."""

import pytest

from zquant_pipelines.tasks.catalog import CatalogError
from zquant_pipelines.tasks.definitions import build_catalog_definitions
from zquant_pipelines_tests.tasks.support import example, location_workspace


def test_definitions_follow_the_tasks_file(use_catalog):
    use_catalog([example("alpha", interval_seconds=60), example("beta", task_type="manual_task")])

    defs = build_catalog_definitions()

    assert {job.name for job in defs.jobs} == {"alpha_job", "beta_job"}
    assert [sensor.name for sensor in defs.sensors] == ["alpha_sensor"]


def test_a_bad_catalog_fails_with_every_problem(use_catalog):
    use_catalog(
        [
            example("alpha", cron_expression="61 * * * *"),
            example("alpha", task_type="manual_task", interval_seconds=60),
        ]
    )

    with pytest.raises(CatalogError) as caught:
        build_catalog_definitions()

    problems = caught.value.problems
    assert any("cron_expression '61 * * * *'" in p for p in problems)
    assert any("already used by task #1" in p for p in problems)
    assert len(problems) >= 3


def test_a_bad_catalog_is_a_code_location_error(use_catalog, instance):
    use_catalog([example("alpha", cron_expression="0 8 * * 8")])

    with location_workspace(instance) as workspace:
        error = workspace.get_code_location_error(workspace.code_location_names[0])

    assert error is not None
    assert "task 'alpha': cron_expression '0 8 * * 8'" in error.to_string()
