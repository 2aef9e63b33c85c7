"""Each package of zquant_pipelines imports only what docs/architecture.md says it may."""

import ast
from pathlib import Path

from zquant_pipelines.constants import REPO_ROOT

PACKAGE = REPO_ROOT / "zquant_pipelines"
# docs/architecture.md, "Packages: what each owns and what it may import".
MAY_IMPORT = {
    "datasets": {"constants"},
    "constants": {"datasets"},
    "dates": {"constants"},
    "sample_market": {"constants", "datasets", "dates"},
    "resources": {"constants", "datasets", "dates", "factors", "sample_market"},
    "factors": {"constants", "dates"},
    "sync": {"constants", "datasets", "dates", "factors"},
    "history": {"constants"},
    "process_tree": set(),
    "step_watchdog": {"process_tree"},
    "supervision": {"process_tree"},
    "executors": {"constants", "step_watchdog"},
    "safe_yaml": set(),
    "screening": {"constants", "dates", "resources", "safe_yaml", "sync"},
    "table_statistics": {"constants", "resources", "sync"},
    "assets": {
        "constants",
        "datasets",
        "dates",
        "executors",
        "history",
        "resources",
        "screening",
        "sync",
        "table_statistics",
    },
    "tasks": {
        "assets",
        "constants",
        "dates",
        "executors",
        "process_tree",
        "resources",
        "safe_yaml",
        "screening",
        "sync",
        "table_statistics",
    },
    "redaction": set(),
    "alerts": {"constants", "redaction"},
    "instance_home": {"constants"},
    "operations": {
        "constants",
        "history",
        "instance_home",
        "redaction",
        "resources",
        "supervision",
        "sync",
        "tasks",
    },
    "demo": {"assets", "constants", "dates", "instance_home", "operations", "resources", "sync"},
    "api": {"constants", "history", "operations", "tasks"},
    "cli": {
        "alerts",
        "api",
        "constants",
        "dates",
        "demo",
        "executors",
        "history",
        "operations",
        "resources",
        "screening",
        "tasks",
    },
    "dev_server": {"constants", "instance_home"},
    "definitions": {"alerts", "assets", "resources", "tasks"},
}
# Plain functions, tested with plain frames.
NO_DAGSTER = ("sync", "factors", "screening", "table_statistics")


def imports_of(path: Path) -> set[str]:
    """Top-level names (``dagster``, ``zquant_pipelines.X``) that ``path`` imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            if node.module == "zquant_pipelines":
                names.update(f"zquant_pipelines.{alias.name}" for alias in node.names)
    return names


def unit_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_every_module_belongs_to_a_listed_package():
    units = {unit_of(path) for path in PACKAGE.rglob("*.py")} - {"__init__"}
    assert units == set(MAY_IMPORT)


def test_each_package_imports_only_what_it_may():
    reaching = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = unit_of(path)
        if unit == "__init__":
            continue
        for name in imports_of(path):
            parts = name.split(".")
            if parts[0] == "zquant_pipelines" and len(parts) > 1:
                target = parts[1]
                if target != unit and target not in MAY_IMPORT[unit]:
                    reaching.append(f"{path.relative_to(REPO_ROOT)} imports {name}")
            elif parts[0] == "dagster" and unit in NO_DAGSTER:
                reaching.append(f"{path.relative_to(REPO_ROOT)} imports {name}")
    assert not reaching, "\n".join(reaching)
