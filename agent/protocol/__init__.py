"""OCPP protocol adapters: thin layers over the `ocpp` library, one per version."""

from __future__ import annotations


def adapter_class(ocpp_version: str):
    """The adapter class for "1.6", "2.0.1" or "2.1", imported only when chosen."""
    if ocpp_version == "1.6":
        from agent.protocol.v16.adapter import Ocpp16Adapter

        return Ocpp16Adapter
    if ocpp_version == "2.0.1":
        from agent.protocol.v201.adapter import Ocpp201Adapter

        return Ocpp201Adapter
    if ocpp_version == "2.1":
        from agent.protocol.v21.adapter import Ocpp21Adapter

        return Ocpp21Adapter
    raise ValueError(f"unsupported OCPP version {ocpp_version!r}")
