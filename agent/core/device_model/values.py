"""Values as OCPP 2.0.1 strings: rendering what a supplier returns, checking what the CSMS sends."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from agent.runtime.clock import format_iso
from agent.core.device_model.datatypes import LIST_TYPES, Characteristics, DataType


def render_value(data_type: DataType, raw: Any) -> str | None:
    """A supplied value as its 2.0.1 string ("true", "3", "230.5", ISO date-time, "a,b"); None stays None."""
    if raw is None:
        return None
    if isinstance(raw, enum.Enum):
        raw = raw.value
    if data_type is DataType.BOOLEAN and isinstance(raw, bool):
        return "true" if raw else "false"
    if data_type is DataType.INTEGER and isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return str(int(raw))
    if data_type is DataType.DECIMAL and isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return _decimal(float(raw))
    if data_type is DataType.DATE_TIME:
        return _date_time(raw)
    if isinstance(raw, (list, tuple)):
        return ",".join(str(item.value if isinstance(item, enum.Enum) else item) for item in raw)
    return str(raw)


def _decimal(value: float) -> str:
    # Fixed notation: "1e+04" is a valid JSON number but not what a CSMS expects in a string.
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _date_time(raw: Any) -> str:
    if isinstance(raw, datetime):
        return format_iso(raw.timestamp())
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return format_iso(float(raw))  # Unix time
    return str(raw)


def check_value(characteristics: Characteristics, value: str) -> str | None:
    """What is wrong with a value for these characteristics, or None.

    Only the checks the settings cannot make: string length and list members
    against ``values_list`` (what this station declares it supports). Types and
    numeric bounds are the setting's own checks.
    """
    if characteristics.data_type is DataType.STRING:
        return _check_length(characteristics, value)
    if characteristics.data_type in LIST_TYPES and characteristics.values_list is not None:
        return _check_members(characteristics, value)
    return None


def _check_length(characteristics: Characteristics, value: str) -> str | None:
    if characteristics.min_limit is not None and len(value) < characteristics.min_limit:
        return f"shorter than {characteristics.min_limit:g} characters"
    if characteristics.max_limit is not None and len(value) > characteristics.max_limit:
        return f"longer than {characteristics.max_limit:g} characters"
    return None


def _check_members(characteristics: Characteristics, value: str) -> str | None:
    items = [item.strip() for item in value.split(",")] if value.strip() else []
    if characteristics.data_type is DataType.OPTION_LIST and len(items) != 1:
        return "an OptionList takes exactly one value"
    unknown = [item for item in items if item not in characteristics.values_list]
    if unknown:
        return f"not in the values list: {', '.join(unknown)}"
    return None
