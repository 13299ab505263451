"""A meter that dies: reported, no new session while it is down, a running one goes on, and it clears by itself.

An in-process agent on the mock HAL against the CSMS simulator, on both OCPP versions, with the mock meter
(fault ``meter-offline`` injected through the ``hal.mock`` API) and with a real Modbus RTU meter (the
pymodbus SDM630 of tests/hal/modbus_sim.py on a socat pty pair) that stops answering. The meters are polled
every POLL_S, so the station notices within 3 poll intervals plus the read timeout, charging or not.

While the meter is down the connector reports Faulted (1.6 with errorCode PowerMeterFailure; 2.0.1 also
NotifyEvent on EVSE.Problem): a tap is answered on the display and refused, a remote start is Rejected. A
transaction already running keeps charging (only its metering is lost) and reports its own status with the
error code. Once the meter answers again the connector is Available and a session starts.
"""

from __future__ import annotations

import contextlib
import time

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from agent.config import parse_config
from agent.core.charging.reporting import METER_REFUSED_TEXT
from hal.meters import load_register_map
from tests.harness import FAST_RETRY, running_agent, wait_until
from tests.harness import v16, v201
from tests.hal.modbus_sim import MeterSim, PtyPair

POLL_S = 0.25  # [evse.meter] poll_interval_s: short, so the tests are
MODBUS_TIMEOUT_S = 0.1  # [evse.meter] timeout_s of the Modbus meter
REPORT_MARGIN_S = 1.0  # the report's way out to the CSMS on a loaded machine
CARD = v16.CARD

pytestmark = pytest.mark.parametrize("version", ["1.6", "2.0.1"])


def config(tmp_path, csms, version: str, *, meter: dict | None = None):
    """One EVSE whose meter (mock unless ``meter`` says otherwise) is polled every POLL_S."""
    return parse_config({
        "station": {"id": "CP1", "data_dir": str(tmp_path / "data")},
        "csms": {"url": csms.url, "ocpp_version": version, "response_timeout_s": 5.0},
        "evse": [{"id": 1, "meter": {"poll_interval_s": POLL_S, **(meter or {})}}],
        "hal": {"backend": "mock"},
        "ocpp201": {"variables": FAST_RETRY},
    })


@contextlib.asynccontextmanager
async def modbus_meter(tmp_path):
    """A simulated SDM630 (device id 1) on a pty pair; yields (sim, the ``[evse.meter]`` table for it)."""
    pair = PtyPair(tmp_path)
    await pair.start()
    sim = MeterSim(pair.meter_port, meters={1: load_register_map("sdm630")})
    await sim.start()
    try:
        yield sim, {"driver": "modbus", "model": "sdm630", "port": pair.bus_port, "baudrate": 115200,
                    "device_id": 1, "timeout_s": MODBUS_TIMEOUT_S}
    finally:
        await sim.stop()
        await pair.stop()


# ------------------------------------------------------------------ what the CSMS heard, in either version

def status(csms, version: str) -> tuple[str, str | None] | None:
    """(status, 1.6 errorCode or None) of the last StatusNotification of connector / EVSE 1."""
    if version == "1.6":
        found = [(r.payload["status"], r.payload["errorCode"]) for r in csms.calls("StatusNotification")
                 if r.payload["connectorId"] == 1]
    else:
        found = [(s, None) for s in v201.statuses(csms)]
    return found[-1] if found else None


def meter_events(csms, *, cleared: bool) -> list[dict]:
    """2.0.1 NotifyEvent items about fault meter-offline, raised or cleared."""
    return [d for r in csms.calls("NotifyEvent") for d in r.payload["eventData"]
            if d.get("techCode") == "meter-offline" and bool(d.get("cleared")) == cleared]


def reported_down(csms, version: str) -> bool:
    if version == "1.6":
        return status(csms, version) == ("Faulted", "PowerMeterFailure")
    return status(csms, version) == ("Faulted", None) and bool(meter_events(csms, cleared=False))


def reported_back(csms, version: str) -> bool:
    if version == "1.6":
        return status(csms, version) == ("Available", "NoError")
    return status(csms, version) == ("Available", None) and bool(meter_events(csms, cleared=True))


def started(csms, version: str) -> bool:
    if version == "1.6":
        return bool(csms.calls("StartTransaction"))
    return any(e["eventType"] == "Started" for e in v201.events(csms))


async def remote_start(csms, version: str) -> str:
    if version == "1.6":
        return (await csms.call("CP1", call16.RemoteStartTransaction(id_tag=CARD, connector_id=1))).status
    request = call201.RequestStartTransaction(id_token={"id_token": CARD, "type": "ISO14443"},
                                              remote_start_id=7, evse_id=1)
    return (await csms.call("CP1", request)).status


def shown(agent) -> list[str]:
    """Every text the station's display showed, oldest first."""
    return [value for _, device, value in agent.hal.history if device == "display"]


# ------------------------------------------------------------------ the story, for any meter

async def dies_refuses_and_comes_back(agent, csms, version: str, *, die, revive, bound_s: float) -> float:
    """The meter dies while idle: reported within ``bound_s``; a tap and a remote start are refused;
    it answers again: Available, and a session starts. Returns how long the report took."""
    await wait_until(lambda: status(csms, version) is not None and agent.hal.evse(1).meter.latest is not None,
                     timeout=5)
    assert status(csms, version)[0] == "Available"
    died = time.monotonic()
    await die()
    await wait_until(lambda: reported_down(csms, version), timeout=bound_s + 2, interval=0.005)
    noticed = time.monotonic() - died
    # A tap on the station's only EVSE: told on the display, nothing authorized, nothing started.
    agent.hal.tap(CARD)
    await wait_until(lambda: METER_REFUSED_TEXT in shown(agent), timeout=2)
    assert await remote_start(csms, version) == "Rejected"
    agent.hal.plug(1)  # the driver plugs in anyway: still no session, still Faulted
    await wait_until(lambda: agent.hal.evse(1).pilot.state.plugged, timeout=1)
    assert agent.station.evses[1].authorization is None and not started(csms, version)
    await revive()
    await wait_until(lambda: status(csms, version) is not None and status(csms, version)[0] != "Faulted",
                     timeout=3 * POLL_S + 2)
    assert status(csms, version)[0] in ("Preparing", "Occupied")  # back, with the cable in
    agent.hal.unplug(1)
    await wait_until(lambda: reported_back(csms, version), timeout=2)
    agent.hal.plug(1)
    agent.hal.tap(CARD)
    await csms.wait_for(lambda: started(csms, version), timeout=5)
    return noticed


async def test_meter_supervision_dead_mock_meter_while_idle(tmp_path, csms_factory, version):
    csms = await csms_factory(version)
    hal_meter_down = 3 * POLL_S  # the mock fails its reads at once: no read timeout to wait for

    async with running_agent(config(tmp_path, csms, version)) as agent:
        async def die():
            agent.hal.inject_fault(1, "meter-offline")

        async def revive():
            agent.hal.clear_fault(1, "meter-offline")

        noticed = await dies_refuses_and_comes_back(agent, csms, version, die=die, revive=revive,
                                                    bound_s=hal_meter_down + REPORT_MARGIN_S)
    assert noticed <= hal_meter_down + REPORT_MARGIN_S, noticed


async def test_meter_supervision_dead_modbus_meter_while_idle(tmp_path, csms_factory, version):
    csms = await csms_factory(version)
    bound = 3 * POLL_S + MODBUS_TIMEOUT_S + REPORT_MARGIN_S
    async with modbus_meter(tmp_path) as (sim, meter):
        async with running_agent(config(tmp_path, csms, version, meter=meter)) as agent:
            noticed = await dies_refuses_and_comes_back(agent, csms, version, die=sim.stop, revive=sim.start,
                                                        bound_s=bound)
            assert sim.requests, "the meter must have been asked over the wire"
    assert noticed <= bound, noticed


async def test_meter_supervision_running_transaction_keeps_charging(tmp_path, csms_factory, version):
    csms = await csms_factory(version)
    async with running_agent(config(tmp_path, csms, version)) as agent:
        await wait_until(lambda: status(csms, version) is not None, timeout=5)
        if version == "1.6":
            await v16.charge_session(agent, csms)
        else:
            await v201.charge(agent, csms)
        agent.hal.inject_fault(1, "meter-offline")
        # Reported with the session's own status: it goes on, only its metering is lost.
        if version == "1.6":
            await wait_until(lambda: status(csms, version) == ("Charging", "PowerMeterFailure"), timeout=3)
        else:
            await wait_until(lambda: meter_events(csms, cleared=False), timeout=3)
            assert status(csms, version) == ("Occupied", None)
        hw = agent.hal.evse(1)
        assert hw.contactor.closed and hw.pilot.current_limit_A > 0
        assert agent.station.evses[1].transaction is not None
        # The driver stops with the card and leaves: the connector is Faulted until the meter answers.
        agent.hal.tap(CARD)
        agent.hal.unplug(1)
        await wait_until(lambda: status(csms, version)[0] == "Faulted", timeout=3)
        assert agent.station.evses[1].transaction is None
        agent.hal.clear_fault(1, "meter-offline")
        await wait_until(lambda: reported_back(csms, version), timeout=3 * POLL_S + 2)
