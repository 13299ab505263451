"""Helpers for ``bench_core201``: a 2.0.1 daemon config, the GetVariables request, a bare `ocpp` 2.0.1 station.

Run as a module, this file is the bare station the GetVariables CPU benchmark
compares the agent with: the `ocpp` library's own ``v201.ChargePoint`` on a
`websockets` client, answering GetVariables from a fixed table of values::

    python -m tests.bench.core201_helpers URL STATION_ID VALUES_JSON_PATH [--sync-validation]

It is the floor for "an OCPP 2.0.1 station in Python", as ``core16_helpers`` is
for 1.6: the library validates request and response against the schemas too, so
agent/bare says what our own layers cost on top of it.

By default the library validates in a thread pool (``ocpp.messages.ASYNC_VALIDATION``);
``--sync-validation`` validates in the event loop, as the agent does.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.bench import daemon
from tests.bench.core16_helpers import bare_main, serve_bare, spawn_bare

#: What each GetVariables round trip asks for: (component, EVSE id or None, variable).
#: A mix of setting-backed values, firmware constants and live state, as a CSMS's
#: periodic configuration check would ask.
VARIABLES: tuple[tuple[str, int | None, str], ...] = (
    ("OCPPCommCtrlr", None, "HeartbeatInterval"),
    ("OCPPCommCtrlr", None, "WebSocketPingInterval"),
    ("SampledDataCtrlr", None, "TxUpdatedInterval"),
    ("AlignedDataCtrlr", None, "Interval"),
    ("TxCtrlr", None, "EVConnectionTimeOut"),
    ("AuthCtrlr", None, "LocalPreAuthorize"),
    ("AuthCacheCtrlr", None, "Enabled"),
    ("ClockCtrlr", None, "DateTime"),
    ("EVSE", 1, "AvailabilityState"),
    ("ChargingStation", None, "AvailabilityState"),
)


def get_variable_data() -> list[dict]:
    """The GetVariables request body (the library's snake_case form) for ``VARIABLES``."""
    return [
        {"component": {"name": component, **({"evse": {"id": evse_id}} if evse_id is not None else {})},
         "variable": {"name": variable}}
        for component, evse_id, variable in VARIABLES
    ]


def variable_key(component: dict, variable: dict) -> str:
    """``Component[evse].Variable``: one key for a request item or a result, for the fixed table."""
    evse = (component.get("evse") or {}).get("id")
    return f"{component['name']}{f'[{evse}]' if evse is not None else ''}.{variable['name']}"


def values_of(results: list[dict]) -> dict[str, str]:
    """The agent's GetVariables results as the bare station's fixed table; every one must be Accepted.

    A rejected variable would put the agent on a shorter path than the bare station.
    """
    refused = [f"{variable_key(r['component'], r['variable'])}: {r['attribute_status']}"
               for r in results if r["attribute_status"] != "Accepted"]
    if refused:
        raise RuntimeError("the agent did not accept every benchmark variable: " + ", ".join(refused))
    return {variable_key(r["component"], r["variable"]): r["attribute_value"] for r in results}


def write_config(directory: Path, csms_url: str, *, station_id: str, ocpp_version: str = "2.0.1") -> Path:
    """The daemon config of ``daemon.write_config`` (two EVSEs, mock HAL), speaking OCPP 2.0.1 (or 2.1)."""
    return daemon.write_config(directory, csms_url, station_id=station_id, ocpp_version=ocpp_version)


# ------------------------------------------------------------------ the bare station

async def spawn_bare_station(url: str, station_id: str, values_path: Path, log_path: Path, *,
                             sync_validation: bool = False, ocpp_version: str = "2.0.1") -> asyncio.subprocess.Process:
    """Start the bare 2.0.1 station of this module (2.1: of ``tests.bench.core21_helpers``)."""
    module = "tests.bench.core21_helpers" if ocpp_version == "2.1" else "tests.bench.core201_helpers"
    return await spawn_bare(module, url, station_id, values_path, log_path, sync_validation=sync_validation)


def _bare_station_class(ocpp_version: str = "2.0.1"):
    # Imported here so the benchmark process does not pay for it when it only imports the helpers.
    from ocpp.routing import on

    if ocpp_version == "2.1":
        from ocpp.v21 import ChargePoint, call_result
    else:
        from ocpp.v201 import ChargePoint, call_result

    class BareStation(ChargePoint):
        """The `ocpp` library's 2.0.1 (or 2.1) ChargePoint with one handler: GetVariables from a fixed table."""

        def __init__(self, station_id: str, connection, values: dict[str, str]):
            super().__init__(station_id, connection)
            self._values = values

        @on("GetVariables")
        def on_get_variables(self, get_variable_data: list[dict], **_):
            # A lookup per item, as the agent does; an unknown one is answered, not failed.
            results = []
            for item in get_variable_data:
                value = self._values.get(variable_key(item["component"], item["variable"]))
                entry = {"attribute_status": "Accepted" if value is not None else "UnknownVariable",
                         "attribute_type": item.get("attribute_type", "Actual"),
                         "component": item["component"], "variable": item["variable"]}
                if value is not None:
                    entry["attribute_value"] = value
                results.append(entry)
            return call_result.GetVariables(get_variable_result=results)

    return BareStation


async def serve_bare_station(url: str, station_id: str, values: dict[str, str]) -> None:
    """The bare 2.0.1 station answering GetVariables from ``values``."""
    cls = _bare_station_class()
    await serve_bare(url, station_id, subprotocol="ocpp2.0.1", charge_point=lambda ws: cls(station_id, ws, values))


def main(argv: list[str]) -> int:
    """Serve the bare 2.0.1 station."""
    return bare_main(argv, module="tests.bench.core201_helpers", what="bare station", serve=serve_bare_station)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
