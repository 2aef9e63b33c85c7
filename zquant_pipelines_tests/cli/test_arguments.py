"""The --config JSON and zquant's sync-daily arguments as the operations take them
(cli/arguments.py)."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from zquant_pipelines.cli.arguments import parse_config_json, since_day, sync_daily_params
from zquant_pipelines.operations.base import UsageProblem

TODAY = dt.date(2024, 3, 1)


@pytest.mark.parametrize("text", ["{", "[]", '"text"'])
def test_config_json_must_be_an_object(text):
    with pytest.raises(UsageProblem) as raised:
        parse_config_json(text)
    assert repr(text) in str(raised.value)


def test_sync_daily_params_normalise_codes():
    params = sync_daily_params(TODAY, ts_code="430047", start_date="20240102", end_date="20240301")
    assert params == {"ts_code": "430047.BJ", "start_date": "20240102", "end_date": "20240301"}
    assert sync_daily_params(TODAY, codelist="600000,000001") == {"codelist": "600000,000001"}


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"symbol": "600000", "end_date": "20240302"}, "--end-date 20240302 is in the future"),
        ({"symbol": "600000", "start_date": "20240302"}, "--start-date 20240302 is in the future"),
        (
            {"codelist": "600000", "start_date": "20240201", "end_date": "20240101"},
            "--start-date 20240201 is after --end-date 20240101",
        ),
        ({"codelist": "600000,700000"}, "'700000'"),
        ({"symbol": "6000"}, "--symbol '6000'"),
    ],
)
def test_sync_daily_params_refuse_with_the_option_and_value(arguments, message):
    with pytest.raises(UsageProblem) as raised:
        sync_daily_params(TODAY, **arguments)
    assert message in str(raised.value)


def test_since_is_the_start_of_the_market_day():
    since = since_day("2024-03-01")
    assert since == dt.datetime(2024, 3, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert since_day(None) is None


def test_since_must_be_a_date():
    with pytest.raises(UsageProblem, match=r"--since '2024-13-01' is not a date YYYY-MM-DD"):
        since_day("2024-13-01")
