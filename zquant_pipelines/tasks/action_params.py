"""The parameters each task action takes: one pydantic model per action, and their registry.

A task's ``config`` is ``{task_action: <name>, **params}``; ``ACTION_PARAMS[name]`` validates
the params (unknown names, types, value rules), at catalog load and again when the action's
op runs. Models are strict: YAML gives ints, floats, bools and strings their own types, and a
number where text belongs (``symbol: 000001`` is the octal number 1 in YAML) must be an
error, not a silent conversion.

Dates are written ``YYYYMMDD`` (text or an 8-digit number) and become ``datetime.date``.
Defaults that depend on the day (today, the latest trading day) are resolved when the
action runs, and so is "end_date is not in the future": a catalog must not turn invalid
overnight. Stock codes become ts_codes (``600000.SH``) through ``normalize_ts_code``.
"""

import datetime as dt
import re
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from zquant_pipelines.constants import CALENDAR_EXCHANGES, REPORT_PERIOD_APIS
from zquant_pipelines.dates import is_quarter_end
from zquant_pipelines.safe_yaml import show_value
from zquant_pipelines.sync.factors import select_factors

TS_CODE_PATTERN = re.compile(r"[0-9]{6}\.(SH|SZ|BJ)")
SYMBOL_PATTERN = re.compile(r"[0-9]{6}")
DATE_PATTERN = re.compile(r"[0-9]{8}")
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Exchanges tushare's trade_cal knows.
TRADE_CAL_EXCHANGES = ("SSE", "SZSE", "CFFEX", "SHFE", "CZCE", "DCE", "INE")
DEFAULT_SCRIPT_TIMEOUT_SECONDS = 3600.0
# A codelist's errors name this many bad codes (then say how many more).
SHOWN_CODE_PROBLEMS = 5


def normalize_ts_code(code: str) -> str:
    """A stock code as a ts_code: ``600000`` -> ``600000.SH``; a ts_code is kept (upper-cased).

    The exchange of a bare code follows its first digits: 6 and 9 are Shanghai (688 is the
    STAR market, 900 B shares), 0, 2 and 3 Shenzhen, 4, 8 and 92 Beijing (920 is the BSE's
    new code range). Other codes are not A-share stocks and need an explicit suffix.
    """
    if not isinstance(code, str):
        raise ValueError(f"stock code {show_value(code)} must be text (quote it in YAML: '000001')")
    text = code.strip().upper()
    if TS_CODE_PATTERN.fullmatch(text):
        return text
    if not SYMBOL_PATTERN.fullmatch(text):
        raise ValueError(
            f"{show_value(code)} is not a 6-digit stock code or a ts_code like 600000.SH"
        )
    if text.startswith("92") or text[0] in "48":
        return f"{text}.BJ"
    if text[0] in "69":
        return f"{text}.SH"
    if text[0] in "023":
        return f"{text}.SZ"
    raise ValueError(
        f"cannot tell the exchange of {show_value(code)} (no A-share stock code starts with"
        f" {text[0]}): write it as a ts_code such as 510300.SH"
    )


def _yyyymmdd(value: object) -> object:
    if value is None:
        return None
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not DATE_PATTERN.fullmatch(text):
        raise ValueError("must be a date written YYYYMMDD, e.g. 20240102")
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise ValueError("is not a real calendar date") from None


def _ts_code(value: str) -> str:
    if not TS_CODE_PATTERN.fullmatch(value):
        raise ValueError("must be a ts_code like 600000.SH (6 digits, '.', SH, SZ or BJ)")
    return value


def _symbol(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be 6 digits written as text (quote it in YAML: '000001')")
    if not SYMBOL_PATTERN.fullmatch(value):
        raise ValueError("must be 6 digits, e.g. '600000'")
    return value


def _codelist(value: object) -> object:
    """A list of codes, or one comma-separated string, as ts_codes without repeats."""
    if isinstance(value, str):
        value = [code for code in value.split(",") if code.strip()]
    if not isinstance(value, list):
        raise ValueError("must be a list of stock codes or one comma-separated string")
    if not value:
        raise ValueError("must name at least one stock code")
    codes, problems = [], []
    for code in value:
        try:
            codes.append(normalize_ts_code(code))
        except ValueError as error:
            problems.append(str(error))
    if problems:
        more = len(problems) - SHOWN_CODE_PROBLEMS
        shown = problems[:SHOWN_CODE_PROBLEMS] + ([f"and {more:,} more"] if more > 0 else [])
        raise ValueError("; ".join(shown))
    return list(dict.fromkeys(codes))


def _script_path(value: str) -> str:
    if not value.strip():
        raise ValueError("must name a script in the scripts folder")
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute():
        raise ValueError("must be a path relative to the scripts folder, not an absolute path")
    if ".." in PurePosixPath(value.replace("\\", "/")).parts:
        raise ValueError("must not contain '..': scripts run only from the scripts folder")
    return value


def _env_name(value: str) -> str:
    if not ENV_NAME_PATTERN.fullmatch(value):
        raise ValueError("must be the name of an environment variable (letters, digits, _)")
    return value


Date = Annotated[dt.date | None, BeforeValidator(_yyyymmdd)]
EnvName = Annotated[str, AfterValidator(_env_name)]
TsCode = Annotated[str, AfterValidator(_ts_code)]
Symbol = Annotated[str, BeforeValidator(_symbol)]
CodeList = Annotated[list[str], BeforeValidator(_codelist)]


class ActionParams(BaseModel):
    """Base of every action's parameters: strict types, no unknown names, read-only."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NoParams(ActionParams):
    """An action that takes no parameters."""


class DateRangeParams(ActionParams):
    """An optional [start_date, end_date]; what a missing bound means is the action's call."""

    start_date: Date = None
    end_date: Date = None

    @model_validator(mode="after")
    def _start_not_after_end(self):
        if self.start_date and self.end_date and self.start_date > self.end_date:
            raise ValueError(
                f"start_date {self.start_date:%Y%m%d} is after end_date {self.end_date:%Y%m%d}"
            )
        return self


class SyncTradingCalendarParams(DateRangeParams):
    """Missing bounds default to today - 365 days .. today + 365 days (zquant's window)."""

    exchanges: list[Literal[TRADE_CAL_EXCHANGES]] = Field(
        default_factory=lambda: list(CALENDAR_EXCHANGES), min_length=1
    )


class SyncDailyDataParams(DateRangeParams):
    """Daily bars of chosen stocks: exactly one of ts_code, symbol, codelist.

    Missing bounds default to the latest trading day.
    """

    ts_code: TsCode | None = None
    symbol: Symbol | None = None
    codelist: CodeList | None = None

    @model_validator(mode="after")
    def _exactly_one_selector(self):
        given = [name for name in ("ts_code", "symbol", "codelist") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(
                "exactly one of ts_code, symbol or codelist is required, got "
                + (" and ".join(given) if given else "none")
            )
        return self


class SyncAllDailyDataParams(DateRangeParams):
    """Daily bars of the whole market, or of ``codelist``; bounds default to the latest
    trading day."""

    codelist: CodeList | None = None


def _known_factor(item: int | str | None) -> int | str | None:
    if item is not None:
        select_factors([item])  # raises naming the factor when no factor has that name
    return item


class CalculateFactorParams(DateRangeParams):
    """The chosen factors over the range (bounds default to the latest trading day), for
    ``codes`` or every stock.

    ``factor_id`` (zquant's: 1 turnover_rate, 2 hyper_activity) or ``factors``: zquant's
    factor ids or names, factor_daily columns, or a column with another window
    (``ma120_tr``); neither: every factor_daily column. ``zquant_literal`` stores zquant
    v0.4's literal behaviour instead of its documented intent (docs/factors.md)."""

    codes: CodeList | None = None
    factor_id: Annotated[int | None, AfterValidator(_known_factor)] = None
    factors: list[Annotated[int | str, AfterValidator(_known_factor)]] | None = Field(
        default=None, min_length=1
    )
    zquant_literal: bool = False

    @model_validator(mode="after")
    def _one_selection(self):
        if self.factor_id is not None and self.factors:
            raise ValueError("give factor_id or factors, not both")
        return self

    @property
    def selection(self) -> list[int | str] | None:
        """The factor selection as ``select_factors`` takes it (None: every factor)."""
        return [self.factor_id] if self.factor_id is not None else self.factors


class BatchStockFilterParams(DateRangeParams):
    """Every screen of the screens file (ZQUANT_SCREENS_FILE) over the range; bounds default
    to the latest trading day. zquant's ``strategy_id`` is not taken: a day's screens are
    written together, so the day's stock_screen rows always match the file."""


# sync_financial_data's statement types: zquant's (income, balance, cashflow), our table
# names, and ``all``; each names the report-period APIs it syncs.
STATEMENT_TYPES: dict[str, tuple[str, ...]] = {
    "all": REPORT_PERIOD_APIS,
    "income": ("income",),
    "balance": ("balancesheet",),
    "balancesheet": ("balancesheet",),
    "cashflow": ("cashflow",),
    "fina_indicator": ("fina_indicator",),
}
# Report periods sync_financial_data re-syncs when no period is given: the last two quarter
# ends cover every period whose regular reports are still due (an annual report by April 30,
# when Q1 has ended; Q1 by April 30, H1 by August 31, Q3 by October 31). Older restatements
# are the weekly financial_revisions_schedule's (the last four).
DEFAULT_FINANCIAL_PERIODS = 2


def _quarter_end(value: dt.date | None) -> dt.date | None:
    if value is not None and not is_quarter_end(value):
        raise ValueError("is not a report period: give a quarter end (0331, 0630, 0930 or 1231)")
    return value


class SyncFinancialDataParams(ActionParams):
    """The financial statements of one report period (``period``, a quarter end) or of the
    last ``recent_periods`` quarter ends (default 2), whole market.

    ``statement_type``: zquant's income, balance or cashflow, or balancesheet,
    fina_indicator, or ``all`` (the default: the four statements, as the report-period
    assets keep them). zquant's ``symbol`` and date range are not taken: a period is synced
    for the whole market, every version kept."""

    statement_type: Literal[tuple(STATEMENT_TYPES)] = "all"
    period: Annotated[Date, AfterValidator(_quarter_end)] = None
    recent_periods: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_period_choice(self):
        if self.period is not None and self.recent_periods is not None:
            raise ValueError("give period or recent_periods, not both")
        return self

    @property
    def apis(self) -> tuple[str, ...]:
        return STATEMENT_TYPES[self.statement_type]


class RunScriptParams(ActionParams):
    """A script inside the scripts folder, run with an argv list (no shell) and a timeout.

    ``env`` names the variables of ours the script gets on top of PATH, HOME, LANG, TZ and
    the dagster-pipes ones: names only, never values; a secret reaches a script only when
    named here."""

    script: Annotated[str, AfterValidator(_script_path)]
    args: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(default=DEFAULT_SCRIPT_TIMEOUT_SECONDS, gt=0)
    env: list[EnvName] = Field(default_factory=list)


class ExampleTaskParams(ActionParams):
    """A demo action: logs ``message``, sleeps, and fails when asked (to show retries)."""

    message: str | None = None
    fail: bool = False
    fail_attempts: int = Field(default=0, ge=0)
    sleep_seconds: float = Field(default=0.0, ge=0)


ACTION_PARAMS: dict[str, type[ActionParams]] = {
    "sync_stock_list": NoParams,
    "sync_trading_calendar": SyncTradingCalendarParams,
    "sync_daily_data": SyncDailyDataParams,
    "sync_all_daily_data": SyncAllDailyDataParams,
    "sync_daily_basic_data": DateRangeParams,
    "sync_factor_data": DateRangeParams,
    "sync_stkfactorpro_data": DateRangeParams,
    "calculate_factor": CalculateFactorParams,
    "batch_stock_filter": BatchStockFilterParams,
    "statistics_table_data": DateRangeParams,
    "sync_financial_data": SyncFinancialDataParams,
    "run_script": RunScriptParams,
    "example_task": ExampleTaskParams,
}


class ActionParamsError(ValueError):
    """Invalid action parameters; ``problems`` holds one message per faulty parameter."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def parse_action_params(action: str, params: Mapping, where: str = "") -> ActionParams:
    """Validate ``params`` for ``action``; every problem names the parameter and its value.

    ``where`` prefixes each parameter's name (``config`` gives ``config.start_date``).
    """
    prefix = f"{where}." if where else ""
    model = ACTION_PARAMS.get(action) if isinstance(action, str) else None
    if model is None:
        raise ActionParamsError(
            [
                f"{prefix}task_action {show_value(action)} is not an action"
                f" (known: {', '.join(ACTION_PARAMS)})"
            ]
        )
    try:
        return model.model_validate(dict(params))
    except ValidationError as error:
        raise ActionParamsError(
            [_describe(detail, action, model, prefix, where) for detail in error.errors()]
        ) from None


def _describe(detail, action: str, model: type[ActionParams], prefix: str, where: str) -> str:
    location = prefix + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in detail["loc"]
    ).lstrip(".")
    if detail["type"] == "extra_forbidden":
        known = ", ".join(model.model_fields) or "none"
        return f"{location}: {action} has no parameter of that name (it takes: {known})"
    if detail["type"] == "missing":
        return f"{location} is required by {action}"
    message = str(detail["ctx"]["error"]) if detail["type"] == "value_error" else detail["msg"]
    if not detail["loc"]:
        return f"{where}: {message}" if where else message
    return f"{location} {show_value(detail['input'])}: {message}"
