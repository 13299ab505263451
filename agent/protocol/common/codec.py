"""What the 1.6 and 2.0.1 codecs share: the shape of a MeterValue element and reading an expiry dateTime.

Each version's ``codec`` module words one sampled value its own way (1.6 writes the
value as a decimal string and the unit flat, 2.0.1 a number and a ``unitOfMeasure``);
the element around the values, and how a dateTime the CSMS sends as an expiry is
read, are the same in both and live here.
"""

from __future__ import annotations

from typing import Callable

from agent.core.charging.model import MeterSample, Sample
from agent.runtime.clock import format_iso, unix_time


def meter_value(sample: MeterSample, *, sampled_value: Callable[[Sample], dict]) -> dict:
    """A core MeterSample as a MeterValue element (snake_case), each value worded by ``sampled_value``.

    The phase is added only where the sample names one: a total has none.
    """
    values = []
    for value in sample.values:
        entry = sampled_value(value)
        if value.phase:
            entry["phase"] = value.phase
        values.append(entry)
    return {"timestamp": format_iso(sample.timestamp), "sampled_value": values}


def expiry_time(value: str | None) -> float | None:
    """An expiry dateTime from the CSMS as unix time; an unreadable one counts as no expiry, as none was given.

    Read by ``unix_time``: a dateTime without an offset is UTC.
    """
    try:
        return unix_time(value)
    except ValueError:
        return None
