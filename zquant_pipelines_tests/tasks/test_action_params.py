"""Action parameter models: defaults, conversions, and one clear message per bad parameter."""

import datetime as dt

import pytest

from zquant_pipelines.constants import CALENDAR_EXCHANGES
from zquant_pipelines.tasks.action_params import (
    ACTION_PARAMS,
    DEFAULT_SCRIPT_TIMEOUT_SECONDS,
    ActionParamsError,
    CalculateFactorParams,
    ExampleTaskParams,
    RunScriptParams,
    SyncAllDailyDataParams,
    SyncDailyDataParams,
    SyncTradingCalendarParams,
    normalize_ts_code,
    parse_action_params,
)


def problems_of(action, params, where="config"):
    with pytest.raises(ActionParamsError) as caught:
        parse_action_params(action, params, where)
    assert str(caught.value).splitlines() == caught.value.problems
    return caught.value.problems


@pytest.mark.parametrize(
    ("code", "ts_code"),
    [
        ("600000", "600000.SH"),
        ("601318", "601318.SH"),
        ("688981", "688981.SH"),  # STAR market
        ("900901", "900901.SH"),  # Shanghai B share
        ("000001", "000001.SZ"),
        ("002594", "002594.SZ"),
        ("300750", "300750.SZ"),  # ChiNext
        ("200011", "200011.SZ"),  # Shenzhen B share
        ("430047", "430047.BJ"),
        ("830799", "830799.BJ"),
        ("920001", "920001.BJ"),  # BSE new code range, not Shanghai
        ("600000.SH", "600000.SH"),
        ("000001.sz", "000001.SZ"),
        (" 430047.BJ ", "430047.BJ"),
    ],
)
def test_normalize_ts_code_follows_the_exchange_rules(code, ts_code):
    assert normalize_ts_code(code) == ts_code


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("60000", "'60000' is not a 6-digit stock code or a ts_code like 600000.SH"),
        ("6000001", "'6000001' is not a 6-digit stock code or a ts_code like 600000.SH"),
        ("600000.SS", "'600000.SS' is not a 6-digit stock code or a ts_code like 600000.SH"),
        ("SH600000", "'SH600000' is not a 6-digit stock code or a ts_code like 600000.SH"),
        (
            "510300",
            "cannot tell the exchange of '510300' (no A-share stock code starts with 5):"
            " write it as a ts_code such as 510300.SH",
        ),
        (600000, "stock code 600000 must be text (quote it in YAML: '000001')"),
    ],
)
def test_normalize_ts_code_refuses_what_is_not_a_stock_code(code, message):
    with pytest.raises(ValueError) as caught:
        normalize_ts_code(code)
    assert str(caught.value) == message


def test_registry_holds_one_model_per_action():
    assert sorted(ACTION_PARAMS) == sorted(
        [
            "sync_stock_list",
            "sync_trading_calendar",
            "sync_daily_data",
            "sync_all_daily_data",
            "sync_financial_data",
            "sync_daily_basic_data",
            "sync_factor_data",
            "sync_stkfactorpro_data",
            "calculate_factor",
            "batch_stock_filter",
            "statistics_table_data",
            "run_script",
            "example_task",
        ]
    )


def test_defaults():
    calendar = parse_action_params("sync_trading_calendar", {})
    script = parse_action_params("run_script", {"script": "hello_pipes.py"})
    example = parse_action_params("example_task", {})
    factors = parse_action_params("calculate_factor", {})

    assert isinstance(calendar, SyncTradingCalendarParams)
    assert (calendar.start_date, calendar.end_date) == (None, None)
    assert calendar.exchanges == list(CALENDAR_EXCHANGES)
    assert isinstance(script, RunScriptParams)
    assert (script.args, script.timeout_seconds) == ([], DEFAULT_SCRIPT_TIMEOUT_SECONDS)
    assert isinstance(example, ExampleTaskParams)
    assert (example.message, example.fail, example.fail_attempts, example.sleep_seconds) == (
        None,
        False,
        0,
        0.0,
    )
    assert isinstance(factors, CalculateFactorParams)
    assert factors.codes is None


@pytest.mark.parametrize("written", ["20240102", 20240102])
def test_dates_written_yyyymmdd_as_text_or_number_become_dates(written):
    params = parse_action_params("sync_daily_basic_data", {"start_date": written})

    assert params.start_date == dt.date(2024, 1, 2)


def test_a_codelist_string_becomes_ts_codes_without_repeats():
    params = parse_action_params(
        "sync_daily_data", {"codelist": "600000, 000001,430047.BJ,600000.SH"}
    )

    assert isinstance(params, SyncDailyDataParams)
    assert params.codelist == ["600000.SH", "000001.SZ", "430047.BJ"]


def test_a_codelist_list_becomes_ts_codes():
    params = parse_action_params("sync_all_daily_data", {"codelist": ["688981", "300750.SZ"]})

    assert isinstance(params, SyncAllDailyDataParams)
    assert params.codelist == ["688981.SH", "300750.SZ"]


def test_calculate_factor_codes_become_ts_codes():
    params = parse_action_params("calculate_factor", {"codes": ["000001"]})

    assert params.codes == ["000001.SZ"]


@pytest.mark.parametrize(
    "selector", [{"ts_code": "600000.SH"}, {"symbol": "600000"}, {"codelist": ["600000"]}]
)
def test_sync_daily_data_takes_any_one_stock_selector(selector):
    params = parse_action_params("sync_daily_data", {**selector, "start_date": "20240102"})

    assert params.start_date == dt.date(2024, 1, 2)


def test_params_are_read_only():
    params = parse_action_params("example_task", {"message": "hi"})

    with pytest.raises(ValueError, match="frozen"):
        params.message = "changed"


@pytest.mark.parametrize(
    ("action", "params", "problems"),
    [
        (
            "no_such_action",
            {},
            [
                "config.task_action 'no_such_action' is not an action (known: sync_stock_list,"
                " sync_trading_calendar, sync_daily_data, sync_all_daily_data,"
                " sync_daily_basic_data, sync_factor_data, sync_stkfactorpro_data,"
                " calculate_factor, batch_stock_filter, statistics_table_data, sync_financial_data,"
                " run_script,"
                " example_task)"
            ],
        ),
        (
            "sync_stock_list",
            {"start_date": "20240102"},
            ["config.start_date: sync_stock_list has no parameter of that name (it takes: none)"],
        ),
        (
            "sync_daily_basic_data",
            {"start": "20240102"},
            [
                "config.start: sync_daily_basic_data has no parameter of that name"
                " (it takes: start_date, end_date)"
            ],
        ),
        (
            "sync_daily_basic_data",
            {"start_date": "2024-01-02"},
            ["config.start_date '2024-01-02': must be a date written YYYYMMDD, e.g. 20240102"],
        ),
        (
            "sync_daily_basic_data",
            {"start_date": dt.date(2024, 1, 2)},
            ["config.start_date 2024-01-02: must be a date written YYYYMMDD, e.g. 20240102"],
        ),
        (
            "sync_daily_basic_data",
            {"end_date": "2024012"},
            ["config.end_date '2024012': must be a date written YYYYMMDD, e.g. 20240102"],
        ),
        (
            "sync_daily_basic_data",
            {"end_date": 20230229},
            ["config.end_date 20230229: is not a real calendar date"],
        ),
        (
            "sync_daily_basic_data",
            {"start_date": "20240301", "end_date": "20240201"},
            ["config: start_date 20240301 is after end_date 20240201"],
        ),
        (
            "sync_daily_data",
            {},
            ["config: exactly one of ts_code, symbol or codelist is required, got none"],
        ),
        (
            "sync_daily_data",
            {"ts_code": "600000.SH", "symbol": "600000"},
            [
                "config: exactly one of ts_code, symbol or codelist is required,"
                " got ts_code and symbol"
            ],
        ),
        (
            "sync_daily_data",
            {"ts_code": "600000"},
            [
                "config.ts_code '600000': must be a ts_code like 600000.SH"
                " (6 digits, '.', SH, SZ or BJ)"
            ],
        ),
        (
            "sync_daily_data",
            {"symbol": 1},
            ["config.symbol 1: must be 6 digits written as text (quote it in YAML: '000001')"],
        ),
        (
            "sync_daily_data",
            {"symbol": "60000A"},
            ["config.symbol '60000A': must be 6 digits, e.g. '600000'"],
        ),
        (
            "sync_daily_data",
            {"codelist": "600000,12"},
            [
                "config.codelist '600000,12': '12' is not a 6-digit stock code or a ts_code"
                " like 600000.SH"
            ],
        ),
        (
            "sync_daily_data",
            {"codelist": []},
            ["config.codelist []: must name at least one stock code"],
        ),
        (
            "sync_all_daily_data",
            {"codelist": {"a": 1}},
            [
                "config.codelist {'a': 1}: must be a list of stock codes or one"
                " comma-separated string"
            ],
        ),
        (
            "sync_trading_calendar",
            {"exchanges": ["SSE", "NYSE"]},
            [
                "config.exchanges[1] 'NYSE': Input should be 'SSE', 'SZSE', 'CFFEX', 'SHFE',"
                " 'CZCE', 'DCE' or 'INE'"
            ],
        ),
        (
            "sync_trading_calendar",
            {"exchanges": []},
            ["config.exchanges []: List should have at least 1 item after validation," " not 0"],
        ),
        (
            "calculate_factor",
            {"factor_id": "alpha"},
            ["config.factor_id 'alpha': Input should be a valid integer"],
        ),
        ("run_script", {}, ["config.script is required by run_script"]),
        (
            "run_script",
            {"script": "../etc/evil.py"},
            [
                "config.script '../etc/evil.py': must not contain '..': scripts run only from"
                " the scripts folder"
            ],
        ),
        (
            "run_script",
            {"script": "/usr/bin/env"},
            [
                "config.script '/usr/bin/env': must be a path relative to the scripts folder,"
                " not an absolute path"
            ],
        ),
        (
            "run_script",
            {"script": "C:\\tools\\x.py"},
            [
                "config.script 'C:\\\\tools\\\\x.py': must be a path relative to the scripts"
                " folder, not an absolute path"
            ],
        ),
        (
            "run_script",
            {"script": "sub\\..\\..\\x.py"},
            [
                "config.script 'sub\\\\..\\\\..\\\\x.py': must not contain '..': scripts run"
                " only from the scripts folder"
            ],
        ),
        (
            "run_script",
            {"script": "x.py", "args": "--all"},
            ["config.args '--all': Input should be a valid list"],
        ),
        (
            "run_script",
            {"script": "x.py", "args": ["--days", 5]},
            ["config.args[1] 5: Input should be a valid string"],
        ),
        (
            "run_script",
            {"script": "x.py", "timeout_seconds": 0},
            ["config.timeout_seconds 0: Input should be greater than 0"],
        ),
        (
            "run_script",
            {"script": "x.py", "timeout_seconds": "60"},
            ["config.timeout_seconds '60': Input should be a valid number"],
        ),
        (
            "example_task",
            {"fail": "yes", "fail_attempts": -1, "sleep_seconds": -0.5},
            [
                "config.fail 'yes': Input should be a valid boolean",
                "config.fail_attempts -1: Input should be greater than or equal to 0",
                "config.sleep_seconds -0.5: Input should be greater than or equal to 0",
            ],
        ),
    ],
)
def test_each_bad_parameter_gets_a_message_naming_it_and_its_value(action, params, problems):
    assert problems_of(action, params) == problems


def test_without_a_location_problems_start_at_the_parameter():
    assert problems_of("example_task", {"sleep_seconds": -1}, where="") == [
        "sleep_seconds -1: Input should be greater than or equal to 0"
    ]
    assert problems_of("sync_daily_data", {}, where="") == [
        "exactly one of ts_code, symbol or codelist is required, got none"
    ]


def test_the_models_validate_op_config_directly():
    # The action's op validates its run config with the same model.
    params = RunScriptParams.model_validate({"script": "hello_pipes.py", "args": ["-v"]})

    assert (params.script, params.args) == ("hello_pipes.py", ["-v"])


def test_calculate_factor_takes_zquant_s_factor_selection():
    by_id = parse_action_params("calculate_factor", {"factor_id": 2})
    by_names = parse_action_params(
        "calculate_factor", {"factors": ["turnover_rate", "ma120_tr"], "zquant_literal": True}
    )

    assert by_id.selection == [2] and not by_id.zquant_literal
    assert by_names.selection == ["turnover_rate", "ma120_tr"] and by_names.zquant_literal
    assert parse_action_params("calculate_factor", {}).selection is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"factors": ["ma5_tr", "hsl"]}, r"factors.*factor 'hsl' is not known"),
        ({"factor_id": 9}, r"factor 9 is not known.*1 \(turnover_rate\), 2 \(hyper_activity\)"),
        ({"factor_id": 1, "factors": ["ma5_tr"]}, "give factor_id or factors, not both"),
        ({"factors": ["turnover_rate_model_ma90"]}, "window 90 is outside zquant's 1..60"),
    ],
)
def test_calculate_factor_names_a_bad_factor_selection(params, message):
    with pytest.raises(ActionParamsError, match=message):
        parse_action_params("calculate_factor", params)


@pytest.mark.parametrize(
    ("statement_type", "apis"),
    [
        ("income", ("income",)),
        ("balance", ("balancesheet",)),  # zquant's name
        ("balancesheet", ("balancesheet",)),
        ("cashflow", ("cashflow",)),
        ("fina_indicator", ("fina_indicator",)),
        ("all", ("income", "balancesheet", "cashflow", "fina_indicator")),
    ],
)
def test_sync_financial_data_takes_zquants_statement_types_and_ours(statement_type, apis):
    params = parse_action_params("sync_financial_data", {"statement_type": statement_type})

    assert params.apis == apis


def test_sync_financial_data_defaults_to_every_statement_of_the_recent_periods():
    params = parse_action_params("sync_financial_data", {})

    assert (params.apis, params.period, params.recent_periods) == (
        ("income", "balancesheet", "cashflow", "fina_indicator"),
        None,
        None,
    )


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"statement_type": "balance_sheet"}, "config.statement_type 'balance_sheet': Input"),
        (
            {"period": "20260615"},
            "config.period '20260615': is not a report period: give a quarter end",
        ),
        ({"recent_periods": 0}, "config.recent_periods 0: Input should be greater than"),
        (
            {"period": "20260630", "recent_periods": 2},
            "config: give period or recent_periods, not both",
        ),
    ],
)
def test_sync_financial_data_names_the_bad_field_and_value(params, problem):
    (found,) = problems_of("sync_financial_data", params)

    assert found.startswith(problem)
