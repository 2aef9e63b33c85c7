"""Checks of single values in a task catalog, shared by the task and workflow validation:
task names usable as Dagster names, and field checks that return None when a value is fine,
else what is wrong with it.
"""

import keyword
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping
from functools import cache

from zquant_pipelines.safe_yaml import show_value

# A retry waits in the run worker (time.sleep, which overflows on huge values); a retry a
# day later is the next scheduled run's job.
MAX_RETRY_INTERVAL_SECONDS = 86_400

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Names Dagster refuses for jobs and ops, besides Python keywords.
DAGSTER_RESERVED_NAMES = frozenset(
    {"context", "conf", "config", "meta", "arg_dict", "dict", "input_arg_dict"}
    | {"output_arg_dict", "int", "str", "float", "bool", "input", "output", "type"}
)
# Tag prefixes our runs and Dagster set themselves.
RESERVED_TAG_PREFIXES = ("dagster/", ".dagster/", "zquant/")
# Zone keys that are not a place: they follow the host or are placeholders.
NON_GEOGRAPHIC_ZONES = frozenset({"localtime", "posixrules", "Factory"})


def quote_hint(value: object) -> str:
    if isinstance(value, bool):
        return " (YAML reads unquoted yes/no/on/off as true/false: quote the name)"
    return ""


def name_problem(name: object) -> str | None:
    if name is None:
        return "name is required"
    if not isinstance(name, str):
        return f"name {show_value(name)} must be text" + quote_hint(name)
    if not NAME_PATTERN.fullmatch(name):
        return (
            f"name {show_value(name)} is not an identifier (letters, digits and _, not starting"
            " with a digit)"
        )
    if keyword.iskeyword(name) or name in DAGSTER_RESERVED_NAMES:
        return f"name {show_value(name)} is reserved (a Python keyword or a name Dagster refuses)"
    return None


def is_text(value: object) -> str | None:
    return None if isinstance(value, str) else "must be text"


def is_choice(options: tuple[str, ...]) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        return None if value in options else f"must be one of {', '.join(options)}"

    return check


def is_whole(minimum: int) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        return None if value >= minimum else f"must be at least {minimum}"

    return check


def is_seconds(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number of seconds"
    if isinstance(value, float) and not math.isfinite(value):  # YAML reads .inf and .nan
        return "must be a finite number of seconds"
    if value > MAX_RETRY_INTERVAL_SECONDS:
        return f"must be at most {MAX_RETRY_INTERVAL_SECONDS} (a day)"
    return None if value >= 0 else "must be at least 0"


def is_flag(value: object) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


@cache
def _zone_keys() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - NON_GEOGRAPHIC_ZONES


def is_zone(value: object) -> str | None:
    if not isinstance(value, str):
        return "must be text"
    if value not in _zone_keys():
        return "is not a time zone name (IANA, e.g. Asia/Shanghai, Europe/Berlin, UTC)"
    return None


def are_tags(value: object) -> str | None:
    if not isinstance(value, Mapping):
        return "must be a mapping of text to text"
    for key, text in value.items():
        if not isinstance(key, str) or not isinstance(text, str):
            return f"tag {show_value(key)}: {show_value(text)} must be text: text"
        if key.startswith(RESERVED_TAG_PREFIXES):
            return (
                f"tag {show_value(key)} uses a reserved prefix ({', '.join(RESERVED_TAG_PREFIXES)})"
            )
    return None
