"""The screens file (ZQUANT_SCREENS_FILE, default screens.yaml): read, checked, compiled.

```yaml
screens:
  - name: active_mid_caps
    description: optional text
    conditions:            # all must hold; each one may use and / or / not itself
      - turnover_rate_ma_20 > 5
      - total_mv between 500000 and 2000000
```

Conditions name columns of factor_daily, daily_basic, daily and stock_basic (bare, or
``table.column`` where two tables share a name, as daily.close and daily_basic.close do).
``load_screens`` returns every screen compiled (``screening.expressions``) or raises
``ScreensError`` listing every problem, each naming the screen, the condition and the
column: a file is never half loaded. The YAML is read as tasks.yaml is (``safe_yaml``): a
key given twice is an error at its line, not a silent override, and a screen name used twice
is told by both its lines.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
import yaml

from zquant_pipelines.constants import DEFAULT_SCREENS_FILE, ENV_SCREENS_FILE, REPO_ROOT
from zquant_pipelines.resources.warehouse_schema import TABLES
from zquant_pipelines.safe_yaml import YamlFileError, parse_yaml_document
from zquant_pipelines.screening.expressions import (
    DATE,
    NUMBER,
    TEXT,
    ColumnCatalog,
    ConditionError,
    catalog_of,
    columns_of,
    compile_condition,
)

# The tables a condition may read, in the order a bare column name is looked up.
SCREEN_INPUT_TABLES = ("factor_daily", "daily_basic", "daily", "stock_basic")
# Keys that mean the same in every table, so a bare name is not ambiguous.
SHARED_KEYS = ("ts_code", "trade_date")
SCREEN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
SCREEN_KEYS = ("name", "description", "conditions")
# A screens file holds a few screens; a large one is a mistake, refused before it is read.
MAX_SCREENS_FILE_BYTES = 256 * 1024


class ScreensError(Exception):
    """A screens file that cannot load; ``problems`` lists every problem."""

    def __init__(self, problems: list[str], source: str):
        self.problems = list(problems)
        self.source = source
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__("\n".join([f"{source} is not a valid screens file ({count}):", *problems]))


@dataclass(frozen=True)
class Screen:
    name: str
    description: str
    conditions: tuple[str, ...]
    trees: tuple

    @property
    def columns(self) -> list[str]:
        """The qualified columns the conditions read: the values that decided."""
        found: dict[str, None] = {}
        for tree in self.trees:
            found |= dict.fromkeys(columns_of(tree))
        return list(found)


def screens_file() -> Path:
    return Path(os.environ.get(ENV_SCREENS_FILE) or REPO_ROOT / DEFAULT_SCREENS_FILE)


def column_kind(column: sa.Column) -> str:
    if isinstance(column.type, sa.Date):
        return DATE
    if isinstance(column.type, sa.String):
        return TEXT
    return NUMBER


def screen_catalog() -> ColumnCatalog:
    """The input tables' columns as the warehouse schema declares them today (a column
    added to factor_daily is a column screens may name)."""
    return catalog_of(
        {
            table: {column.name: column_kind(column) for column in TABLES[table].columns}
            for table in SCREEN_INPUT_TABLES
        },
        SHARED_KEYS,
    )


def load_screens(path: str | Path | None = None) -> list[Screen]:
    path = Path(path) if path is not None else screens_file()
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_SCREENS_FILE_BYTES:
            raise ScreensError(
                [f"the file is {size:,} bytes, over the {MAX_SCREENS_FILE_BYTES:,}-byte limit"],
                source,
            )
        data, node = parse_yaml_document(path.read_text(encoding="utf-8"), "screens file")
    except OSError as error:
        raise ScreensError([f"cannot read it: {error.strerror or error}"], source) from None
    except UnicodeDecodeError as error:
        raise ScreensError([f"not UTF-8 text (offset {error.start:,})"], source) from None
    except YamlFileError as error:
        raise ScreensError([str(error)], source) from None
    return parse_screens(data, source, name_lines(node))


def name_lines(node: yaml.Node | None) -> list[int | None]:
    """The line of each screen's name in the file, in the screens' order (None where an
    entry has no name), so a name used twice can be told by its lines."""
    if not isinstance(node, yaml.MappingNode):
        return []
    entries = next((value for key, value in node.value if key.value == "screens"), None)
    if not isinstance(entries, yaml.SequenceNode):
        return []
    return [
        next(
            (
                value.start_mark.line + 1
                for key, value in entry.value
                if isinstance(key, yaml.ScalarNode) and key.value == "name"
            ),
            None,
        )
        if isinstance(entry, yaml.MappingNode)
        else None
        for entry in entries.value
    ]


def parse_screens(
    data: object, source: str = DEFAULT_SCREENS_FILE, lines: list[int | None] = ()
) -> list[Screen]:
    """Screens from the file's YAML data, or ScreensError listing every problem. ``lines``
    (``name_lines``) lets a name used twice be told by its lines."""
    if (
        not isinstance(data, dict)
        or set(data) != {"screens"}
        or not isinstance(data["screens"], list)
    ):
        raise ScreensError(["the file must be a mapping with one key, screens: a list"], source)
    catalog = screen_catalog()
    problems: list[str] = []
    screens: list[Screen] = []
    first_positions: dict[str, int] = {}
    for position, entry in enumerate(data["screens"], start=1):
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name in first_positions:
            problems.append(
                f"screen {name!r} at {where(lines, position)}: the name is already used at"
                f" {where(lines, first_positions[name])}"
            )
        elif isinstance(name, str):
            first_positions[name] = position
        screen = parse_screen(entry, f"screen {position}", catalog, problems)
        if screen is not None:
            screens.append(screen)
    if problems:
        raise ScreensError(problems, source)
    return screens


def where(lines: list[int | None], position: int) -> str:
    line = lines[position - 1] if position <= len(lines) else None
    return f"line {line}" if line is not None else f"screen {position}"


def parse_screen(entry, label: str, catalog: ColumnCatalog, problems: list[str]):
    if not isinstance(entry, dict):
        problems.append(f"{label}: must be a mapping with name and conditions")
        return None
    count = len(problems)
    name = entry.get("name")
    if isinstance(name, str) and SCREEN_NAME.fullmatch(name):
        label = f"screen {name!r}"
    else:
        problems.append(
            f"{label}: name {name!r} must be 1-64 letters, digits, '_', '.' or '-'"
            if name is not None
            else f"{label}: name is required"
        )
    unknown = [key for key in entry if key not in SCREEN_KEYS]
    if unknown:
        problems.append(f"{label}: unknown keys {unknown} (a screen has {', '.join(SCREEN_KEYS)})")
    description = entry.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{label}: description must be text")
    conditions = entry.get("conditions")
    if isinstance(conditions, str):
        conditions = [conditions]
    if not isinstance(conditions, list) or not conditions:
        problems.append(f"{label}: conditions must be a non-empty list of conditions")
        return None
    trees = []
    for number, text in enumerate(conditions, start=1):
        shown = f"{text!r}" if isinstance(text, str) and len(text) <= 200 else "(not shown)"
        try:
            trees.append(compile_condition(text, catalog))
        except ConditionError as error:
            problems.append(f"{label}, condition {number} {shown}: {error}")
    if len(problems) > count:
        return None
    return Screen(name, description, tuple(conditions), tuple(trees))


def find_screen(screens: list[Screen], name: str) -> Screen:
    for screen in screens:
        if screen.name == name:
            return screen
    known = ", ".join(screen.name for screen in screens) or "none"
    raise KeyError(f"no screen named {name!r} in the screens file (screens: {known})")
