"""`zquant screen NAME --date D`: the day's list from the warehouse, equal to a pandas filter
of the same tables; bad input exits 2 naming it, a day without data exits 1 naming the table."""

import datetime as dt
import json

import pytest

from zquant_pipelines.cli.main import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from zquant_pipelines.constants import ENV_SCREENS_FILE, ENV_WAREHOUSE_URL
from zquant_pipelines.resources.sample_source import SampleMarketSource
from zquant_pipelines.resources.warehouse import Warehouse
from zquant_pipelines.sync import market as sync

DAY = dt.date(2026, 11, 27)
SCREENS = """\
screens:
  - name: busy_small
    conditions: [turnover_rate > 3 and circ_mv < 500000, not name like '%ST%']
"""


@pytest.fixture(scope="module")
def warehouse_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screen_cli")
    url = f"sqlite:///{folder / 'wh.db'}"
    warehouse = Warehouse(url=url)
    source = SampleMarketSource(as_of="20261127")
    sync.sync_stock_basic(source, warehouse)
    sync.sync_trade_cal(source, warehouse, dt.date(2026, 10, 1), dt.date(2026, 11, 30))
    for api_name in ("daily", "daily_basic"):
        sync.sync_trading_days(source, warehouse, api_name, [DAY])
    warehouse.dispose()
    return url


@pytest.fixture
def env(warehouse_url, tmp_path, monkeypatch):
    screens = tmp_path / "screens.yaml"
    screens.write_text(SCREENS, encoding="utf-8")
    monkeypatch.setenv(ENV_WAREHOUSE_URL, warehouse_url)
    monkeypatch.setenv(ENV_SCREENS_FILE, str(screens))
    return Warehouse(url=warehouse_url)


def expected_codes(warehouse: Warehouse) -> list[str]:
    frame = warehouse.read_frame(
        "SELECT d.ts_code, b.turnover_rate, b.circ_mv, s.name FROM daily d"
        " JOIN daily_basic b ON b.ts_code = d.ts_code AND b.trade_date = d.trade_date"
        " JOIN stock_basic s ON s.ts_code = d.ts_code WHERE d.trade_date = :d",
        {"d": DAY},
    )
    chosen = (
        (frame["turnover_rate"] > 3)
        & (frame["circ_mv"] < 500000)
        & ~frame["name"].str.contains("ST", regex=False)
    )
    return sorted(frame.loc[chosen, "ts_code"])


def test_prints_the_days_list(env, capsys):
    code = main(["screen", "busy_small", "--date", "2026-11-27"])

    lines = capsys.readouterr().out.splitlines()
    expected = expected_codes(env)
    assert code == EXIT_OK
    assert expected, "the screen must select some stocks"
    assert lines[0] == f"busy_small on 2026-11-27: {len(expected)} stocks"
    assert lines[1].split() == ["ts_code", "name", "turnover_rate", "circ_mv"]
    assert [line.split()[0] for line in lines[2:]] == expected


def test_json_holds_the_values_that_decided(env, capsys):
    code = main(["screen", "busy_small", "--date", "20261127", "--json"])

    document = json.loads(capsys.readouterr().out)
    assert code == EXIT_OK
    assert (document["screen"], document["trade_date"]) == ("busy_small", "2026-11-27")
    assert [stock["ts_code"] for stock in document["stocks"]] == expected_codes(env)
    assert all(stock["turnover_rate"] > 3 for stock in document["stocks"])


@pytest.mark.parametrize(
    ("argv", "exit_code", "message"),
    [
        (["nope"], EXIT_USAGE, "no screen named 'nope' in the screens file (screens: busy_small)"),
        (
            ["busy_small", "--date", "27/11/2026"],
            EXIT_USAGE,
            "--date '27/11/2026' is not a date YYYY-MM-DD (or YYYYMMDD)",
        ),
        (
            ["busy_small", "--date", "2026-10-05"],
            EXIT_USAGE,
            "2026-10-05 is not a trading day (the exchanges were closed)",
        ),
        (
            ["busy_small", "--date", "2026-11-26"],
            EXIT_FAILED,
            "daily holds no row for 2026-11-26: materialize daily for that day first",
        ),
    ],
)
def test_bad_input_and_missing_data_are_named(env, capsys, argv, exit_code, message):
    code = main(["screen", *argv])

    assert code == exit_code
    assert capsys.readouterr().err == f"zquant screen: {message}\n"


def test_a_broken_screens_file_lists_its_problems(env, tmp_path, monkeypatch, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("screens:\n  - name: x\n    conditions: [volume > 1]\n", encoding="utf-8")
    monkeypatch.setenv(ENV_SCREENS_FILE, str(broken))

    code = main(["screen", "x"])

    assert code == EXIT_USAGE
    assert (
        "screen 'x', condition 1 'volume > 1': unknown column 'volume'" in capsys.readouterr().err
    )
