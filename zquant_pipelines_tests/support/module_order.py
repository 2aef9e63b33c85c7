"""The order `make test` runs the test modules in: the slowest first, so that under
pytest-xdist (`-n 2 --dist loadfile`, which hands out whole modules in collection order) no
long module starts last on one worker while the other sits idle. Modules stay whole and
keep their own order, so module-scoped fixtures (one `dagster dev` per module) are built
once either way."""

# Roughly slowest first, by pytest --durations (real `make dev`, real daemons,
# dagster CLI subprocesses, demo and bench runs). A module missing here runs after these,
# in pytest's usual order.
SLOW_MODULES = (
    "zquant_pipelines_tests/test_demo.py",
    "zquant_pipelines_tests/test_bench.py",
    "zquant_pipelines_tests/test_dagster_dev.py",
    "zquant_pipelines_tests/test_operations_doc.py",
    "zquant_pipelines_tests/cli/test_progress_under_dagster_dev.py",
    "zquant_pipelines_tests/tasks/test_crash.py",
    "zquant_pipelines_tests/operations/test_local.py",
    "zquant_pipelines_tests/alerts/test_under_the_daemon.py",
    "zquant_pipelines_tests/operations/test_terminate_retry.py",
    "zquant_pipelines_tests/test_definitions.py",
    "zquant_pipelines_tests/test_scale_out.py",
    "zquant_pipelines_tests/deploy/test_access.py",
)


def slowest_modules_first(items: list) -> None:
    """Reorder collected ``items`` in place: modules of SLOW_MODULES first, in its order;
    the rest after them, as collected (a stable sort keeps each module's tests in order)."""
    rank = {module: index for index, module in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(SLOW_MODULES)))
