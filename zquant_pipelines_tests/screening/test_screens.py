"""The screens file: the shipped one loads, a bad one is refused with every problem listed
(screen, condition, column) and nothing of it loaded."""

import pytest

from zquant_pipelines.constants import ENV_SCREENS_FILE, REPO_ROOT
from zquant_pipelines.screening.screens import (
    MAX_SCREENS_FILE_BYTES,
    ScreensError,
    find_screen,
    load_screens,
    screens_file,
)


def write(tmp_path, text: str):
    path = tmp_path / "screens.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_screens_load_and_read_the_four_tables():
    screens = load_screens(REPO_ROOT / "screens.yaml")

    assert [screen.name for screen in screens] == ["active_stocks", "liquid_mid_caps"]
    assert find_screen(screens, "liquid_mid_caps").columns == [
        "factor_daily.turnover_rate_ma_20",
        "daily_basic.total_mv",
        "stock_basic.name",
    ]
    assert "daily.amount" in find_screen(screens, "active_stocks").columns


def test_the_environment_names_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, "screens:\n  - name: cheap\n    conditions: [pe < 10]\n")
    monkeypatch.setenv(ENV_SCREENS_FILE, str(path))

    assert screens_file() == path
    assert [screen.name for screen in load_screens()] == ["cheap"]


def test_every_problem_is_listed_and_nothing_loads(tmp_path):
    path = write(
        tmp_path,
        """\
screens:
  - name: good
    conditions: [pe < 10]
  - name: typo
    conditions:
      - turnover_rate_ma_20 > 5
      - total_mvv between 500000 and 2000000
      - name > 5
  - name: good
    conditions: [pb < 1]
  - name: bad name!
    conditions: [pb < 1]
  - conditions: []
    colour: red
  - just text
""",
    )

    with pytest.raises(ScreensError) as caught:
        load_screens(path)

    assert caught.value.problems == [
        "screen 'typo', condition 2 'total_mvv between 500000 and 2000000': unknown column"
        " 'total_mvv' (did you mean total_mv, total_share?)",
        "screen 'typo', condition 3 'name > 5': type mismatch: name is a text column, compared"
        " with the number 5 (quote text values)",
        "screen 'good' at line 9: the name is already used at line 2",
        "screen 4: name 'bad name!' must be 1-64 letters, digits, '_', '.' or '-'",
        "screen 5: name is required",
        "screen 5: unknown keys ['colour'] (a screen has name, description, conditions)",
        "screen 5: conditions must be a non-empty list of conditions",
        "screen 6: must be a mapping with name and conditions",
    ]
    assert str(caught.value).startswith(f"{path} is not a valid screens file (8 problems):")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "screens:\n  - name: cheap\n    conditions: [pe < 10]\n    conditions: [pe > 0]\n",
            "YAML syntax error at line 4, column 5: found the key 'conditions' twice",
        ),
        (
            "screens:\n  - name: a\n    conditions: [pe < 10]\nscreens: []\n",
            "YAML syntax error at line 4, column 1: found the key 'screens' twice",
        ),
        ("screens: [\n", "YAML syntax error at line 2, column 1"),
        ("tasks: []\n", "the file must be a mapping with one key, screens: a list"),
        ("", "the file must be a mapping with one key, screens: a list"),
    ],
)
def test_a_file_that_is_no_screens_file_is_refused(tmp_path, text, problem):
    with pytest.raises(ScreensError) as caught:
        load_screens(write(tmp_path, text))

    assert len(caught.value.problems) == 1
    assert problem in caught.value.problems[0]


def test_a_missing_or_huge_file_is_refused(tmp_path):
    with pytest.raises(ScreensError, match="cannot read it: No such file"):
        load_screens(tmp_path / "absent.yaml")
    huge = write(tmp_path, "# " + "x" * MAX_SCREENS_FILE_BYTES)
    with pytest.raises(ScreensError, match="over the 262,144-byte limit"):
        load_screens(huge)


def test_an_unknown_screen_name_lists_the_screens():
    screens = load_screens(REPO_ROOT / "screens.yaml")

    with pytest.raises(KeyError, match="screens: active_stocks, liquid_mid_caps"):
        find_screen(screens, "nope")
