"""Parsed `zquant` arguments turned into what the operations take: the --config JSON, the
sync-daily params (codes with their exchange suffix, dates no later than today) and the
--since day.

Bad input raises ``UsageProblem`` naming the option as typed and its value (exit 2).
"""

import datetime as dt
import json
import re
import sys

from zquant_pipelines.cli.parser import SYNC_DAILY_OPTIONS
from zquant_pipelines.dates import MARKET_ZONE
from zquant_pipelines.operations.base import SYNC_DAILY_ACTION, UsageProblem
from zquant_pipelines.tasks.action_params import (
    ActionParamsError,
    normalize_ts_code,
    parse_action_params,
)
from zquant_pipelines.tasks.catalog_yaml import (
    MAX_CATALOG_BYTES,
    CatalogFileError,
    read_catalog_text,
)


def parse_config_json(text: str | None) -> dict:
    """The --config argument: a JSON object, or an error naming the text."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageProblem(f"--config {text!r} is not JSON: {error.msg}") from None
    if not isinstance(value, dict):
        raise UsageProblem(f"--config {text!r} must be a JSON object such as '{{\"fail\": true}}'")
    return value


def sync_daily_params(
    today: dt.date,
    codelist: str | None = None,
    ts_code: str | None = None,
    symbol: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
) -> dict:
    """The sync_daily_data params of zquant's script arguments, validated; problems name
    the option and its value. Bare codes get their exchange suffix. Missing bounds take
    the action's defaults (end today, start the end); no date may lie after ``today``."""
    given = {
        "codelist": codelist,
        "ts_code": ts_code,
        "symbol": symbol,
        "start_date": start_date,
        "end_date": end_date,
    }
    params = {name: value for name, value in given.items() if value is not None}
    problems = []
    if ts_code is not None:
        try:
            params["ts_code"] = normalize_ts_code(ts_code)
        except ValueError as error:
            problems.append(f"ts_code {ts_code!r}: {error}")
    if not problems:
        try:
            parse_action_params(SYNC_DAILY_ACTION, params)
        except ActionParamsError as error:
            problems += error.problems
    for name in ("start_date", "end_date"):
        value = params.get(name)
        if value and re.fullmatch(r"[0-9]{8}", value) and value > f"{today:%Y%m%d}":
            problems.append(f"{name} {value} is in the future (today is {today:%Y%m%d})")
    if problems:
        # The params' names where they name the value at fault, as the options were typed.
        names = re.compile(r"(^|after )(" + "|".join(SYNC_DAILY_OPTIONS) + r")\b")
        raise UsageProblem(
            "\n".join(
                names.sub(lambda match: match[1] + SYNC_DAILY_OPTIONS[match[2]], problem)
                for problem in problems
            )
        )
    return params


def since_day(text: str | None) -> dt.datetime | None:
    """--since YYYY-MM-DD: the start of that day on the exchanges' clock."""
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise UsageProblem(f"--since {text!r} is not a date YYYY-MM-DD") from None
    return dt.datetime.combine(day, dt.time(), MARKET_ZONE)


def spec_text(file_argument: str) -> tuple[str, str]:
    """--file's text and how messages name it: a file (read as tasks.yaml is: size cap,
    UTF-8), or stdin for ``-``."""
    if file_argument == "-":
        text = sys.stdin.read(MAX_CATALOG_BYTES + 1)
        if len(text) > MAX_CATALOG_BYTES:
            raise UsageProblem(f"--file -: stdin holds over {MAX_CATALOG_BYTES:,} characters")
        return text, "stdin"
    try:
        return read_catalog_text(file_argument, f"--file {file_argument}"), file_argument
    except CatalogFileError as error:
        raise UsageProblem(str(error)) from None
