"""Connector status words: a core ConnectorStatus as each OCPP version reports it."""

from __future__ import annotations

_OCCUPIED = {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"}


def status_word(ocpp_version: str, status) -> str:
    """A core ConnectorStatus as the version reports it (2.0.1 and 2.1 fold the session states into Occupied)."""
    value = status.value
    if ocpp_version != "1.6" and value in _OCCUPIED:
        return "Occupied"
    return value
