"""The JSON form of history records and of everything `zquant --json` prints: ISO 8601 UTC
times and enum values. Standard library only, so the CLI's printing loads without Dagster.
"""

import dataclasses
from datetime import UTC, datetime
from enum import Enum


def json_ready(value):
    """Dataclasses, datetimes and enums in JSON form: ISO 8601 UTC times, enum values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: json_ready(getattr(value, field.name))
            for field in dataclasses.fields(value)
        }
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value
