"""Hardware faults through the mock HAL control socket, at idle and during a transaction.

For each fault the CSMS must hear of it (1.6 StatusNotification errorCode; 2.0.1 connector status and
NotifyEvent on the Problem variable of the EVSE or the station, raised and cleared),
the outputs must be safe (no current offered, contactor commanded open where charging must stop,
the cable kept locked while the power path may be live), a transaction must end with the right
reason where charging must stop and go on where it need not, and once the fault clears the EVSE
must report itself well again and charge a new session.

The smoke test runs one fault on each version; the full-size run all five on both.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from hal.mock.client import request
from tests.harness import agent_config, running_agent, wait_until

CARD = "04A1B2C3"


@dataclass(frozen=True)
class FaultSpec:
    """What a fault must do: whether it stops charging, its 1.6 errorCode, whether it is station-wide,
    and whether it can only show when the session ends (a weld under way is indistinguishable from a
    closed contactor until it is told to open; a lock that lets go is seen at once by supervision), and
    whether an idle EVSE with it reports Faulted although a running session goes on (no new session may
    start on a dead meter)."""

    stops_charging: bool
    error_code_16: str
    station_wide: bool = False
    shows_at_stop: bool = False
    blocks_sessions: bool = False


FAULTS = {
    "contactor-welded": FaultSpec(True, "PowerSwitchFailure", shows_at_stop=True),
    "lock-failure": FaultSpec(True, "ConnectorLockFailure"),
    "meter-offline": FaultSpec(False, "PowerMeterFailure", blocks_sessions=True),
    "rcd-trip": FaultSpec(True, "GroundFailure"),
    "reader-offline": FaultSpec(False, "ReaderFailure", station_wide=True),
}
#: 1.6 has no reason for a hardware fault but Other; 2.0.1 names the ground fault.
STOP_REASON = {"1.6": {"rcd-trip": "Other"}, "2.0.1": {"rcd-trip": "GroundFault"}}


class HardwareBench:
    """An in-process agent on the mock HAL, driven through its control socket, and its CSMS."""

    def __init__(self, tmp_path, version: str):
        self.tmp_path, self.version = tmp_path, version
        self.socket = tmp_path / "data" / "mock-hal.sock"
        self.results: list[dict] = []

    async def __aenter__(self):
        self.csms = CsmsSimulator(ocpp_version=self.version, behaviour=CsmsBehaviour(heartbeat_interval=300))
        await self.csms.start()
        # Clock-aligned readings every second: a meter that stops answering is noticed at idle too.
        config = agent_config(self.tmp_path, self.csms.url, ocpp_version=self.version,
                              configuration={"MeterValueSampleInterval": 1, "ClockAlignedDataInterval": 1},
                              variables={"SampledDataCtrlr.TxUpdatedInterval": 1, "AlignedDataCtrlr.Interval": 1})
        self._agent = running_agent(config)
        self.agent = await self._agent.__aenter__()
        await self.reported("Available")
        return self

    async def __aexit__(self, *exc_info):
        await self._agent.__aexit__(*exc_info)
        await self.csms.stop()

    # ------------------------------------------------------------ driving and observing

    async def control(self, **command) -> dict:
        """One request on the mock HAL control socket (as `ocpp-agent sim` sends it)."""
        answer = await asyncio.to_thread(request, self.socket, command, timeout=5.0)
        assert answer["ok"], answer
        return answer

    async def state(self) -> dict:
        """EVSE 1 as `sim state` shows it."""
        return (await self.control(cmd="state"))["evses"][0]

    def statuses(self, connector: int = 1) -> list[tuple[str, str]]:
        """(status, 1.6 errorCode or "") of every StatusNotification for ``connector``, oldest first."""
        if self.version == "1.6":
            return [(c.payload["status"], c.payload["errorCode"]) for c in self.csms.calls("StatusNotification")
                    if c.payload["connectorId"] == connector]
        return [(c.payload["connectorStatus"], "") for c in self.csms.calls("StatusNotification")
                if c.payload["evseId"] == connector]

    async def reported(self, status: str | None, error: str = "", *, connector: int = 1, timeout=10.0) -> None:
        """Wait until the last status the CSMS heard for ``connector`` is ``status`` (and ``error`` on 1.6)."""
        def last_matches():
            last = self.statuses(connector)[-1:]
            return last and (status is None or last[0][0] == status) and (
                self.version != "1.6" or last[0][1] == (error or "NoError"))
        try:
            await self.csms.wait_for(last_matches, timeout=timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"connector {connector}: expected {status} {error}, the CSMS heard "
                                 f"{self.statuses(connector)[-4:]}; state {await self.state()}") from None

    def occupied(self, status_16: str) -> str:
        """A session status in the words of the version (2.0.1 folds them into Occupied)."""
        return status_16 if self.version == "1.6" else "Occupied"

    def ended(self) -> list[dict]:
        """(reason, transaction ref) of every transaction end the CSMS received."""
        if self.version == "1.6":
            return [{"reason": c.payload.get("reason", "Local")} for c in self.csms.calls("StopTransaction")]
        return [{"reason": c.payload["transactionInfo"].get("stoppedReason", "Local")}
                for c in self.csms.calls("TransactionEvent") if c.payload["eventType"] == "Ended"]

    def started(self) -> int:
        """How many transactions the CSMS saw start."""
        if self.version == "1.6":
            return len(self.csms.calls("StartTransaction"))
        return sum(1 for c in self.csms.calls("TransactionEvent") if c.payload["eventType"] == "Started")

    async def charge(self) -> None:
        """Plug, tap, EV asks for energy: wait until it charges with the contactor closed."""
        started = self.started()
        for command in ({"cmd": "plug", "evse": 1}, {"cmd": "tap", "id_token": CARD},
                        {"cmd": "ev", "evse": 1, "charge": True}, {"cmd": "power", "evse": 1, "watts": 7400}):
            await self.control(**command)
        await self.csms.wait_for(lambda: self.started() > started, timeout=10)
        await self.reported(self.occupied("Charging"))
        await wait_until(lambda: self.agent.hal.evse(1).contactor.closed, timeout=3)

    async def safe_outputs(self, *, must_stop: bool, keep_locked: bool) -> bool:
        """No current offered and contactor commanded open (where charging must stop); lock as required."""
        state = await self.state()
        if not must_stop:
            return True
        safe = state["current_limit_A"] == 0 and not state["contactor_closed"]
        if keep_locked:
            safe = safe and state["locked"]
        return safe

    # ------------------------------------------------------------ one fault, idle then charging

    async def idle_fault(self, name: str) -> dict:
        """Inject ``name`` with nothing plugged in; check it is reported, then clear it."""
        spec = FAULTS[name]
        connector = 0 if spec.station_wide else 1
        contactor_closes = self._contactor_closes()
        await self.control(cmd="fault", evse=1, name=name)
        if name == "lock-failure":
            # A lock is only found jammed when it is asked to move: a driver plugs in and taps.
            for command in ({"cmd": "plug", "evse": 1}, {"cmd": "ev", "evse": 1, "charge": True},
                            {"cmd": "tap", "id_token": CARD}):
                await self.control(**command)
        status = ("Faulted" if spec.stops_charging or spec.blocks_sessions
                  else ("Available" if connector == 1 or self.version == "1.6" else None))
        await self._report_of(status, spec, connector)
        at_fault = self._last(connector)
        await self.notified(name, cleared=False)
        safe = await self.safe_outputs(must_stop=spec.stops_charging, keep_locked=False)
        never_closed = self._contactor_closes() == contactor_closes or not spec.stops_charging
        await self.control(cmd="clear", evse=1, name=name)
        await self.control(cmd="unplug", evse=1)
        await self.reported("Available", connector=connector if self.version == "1.6" else 1)
        await self.notified(name, cleared=True)
        return {"phase": "idle", "reported": at_fault, "after_clear": self._last(connector),
                "outputs_safe": safe and never_closed,
                "notify_event": self._notify_figure(), "recovered": True}

    async def charging_fault(self, name: str) -> dict:
        """Inject ``name`` while charging; check the stop (or the continuation), clear, charge again."""
        spec = FAULTS[name]
        connector = 0 if spec.station_wide else 1
        await self.charge()
        ends = len(self.ended())
        await self.control(cmd="fault", evse=1, name=name)
        if spec.shows_at_stop:
            await self.control(cmd="tap", id_token=CARD)  # the driver ends the session
        status = "Faulted" if spec.stops_charging else (self.occupied("Charging") if connector == 1 else "Available")
        await self._report_of(status, spec, connector)
        at_fault = self._last(connector)
        reason = None
        if spec.stops_charging:
            await self.csms.wait_for(lambda: len(self.ended()) > ends, timeout=10)
            reason = self.ended()[-1]["reason"]
        else:
            await asyncio.sleep(1.5)  # charging goes on through a warning
            assert len(self.ended()) == ends, f"{name} ended the transaction"
            assert (await self.state())["contactor_closed"], f"{name} opened the contactor"
        # A welded contactor may keep the power path live: the cable must stay locked.
        safe = await self.safe_outputs(must_stop=spec.stops_charging, keep_locked=name == "contactor-welded")
        await self.notified(name, cleared=False)
        await self.control(cmd="clear", evse=1, name=name)
        await self.control(cmd="unplug", evse=1)
        await self.reported("Available")
        await self.notified(name, cleared=True)
        await self.charge()  # recovery: a new session charges
        await self.control(cmd="unplug", evse=1)
        await self.reported("Available")
        return {"phase": "charging", "reported": at_fault, "after_clear": self._last(connector), "stop_reason": reason,
                "outputs_safe": safe, "notify_event": self._notify_figure(), "recovered": True}

    async def _report_of(self, status: str | None, spec: FaultSpec, connector: int) -> None:
        if self.version == "1.6":
            await self.reported(status, spec.error_code_16, connector=connector)
        elif status is not None and connector == 1:
            await self.reported(status)

    def events(self, name: str) -> list[dict]:
        """2.0.1 NotifyEvent eventData about fault ``name`` (its techCode), oldest first."""
        return [data for call in self.csms.calls("NotifyEvent") for data in call.payload["eventData"]
                if data.get("techCode") == name]

    async def notified(self, name: str, *, cleared: bool) -> bool:
        """2.0.1: wait for the NotifyEvent of fault ``name`` raised (Problem true) or cleared; True on 1.6."""
        if self.version == "1.6":
            return True
        component = "ChargingStation" if FAULTS[name].station_wide else "EVSE"

        def seen():
            return any(d["component"]["name"] == component and d["variable"]["name"] == "Problem"
                       and bool(d.get("cleared")) == cleared for d in self.events(name))
        try:
            await self.csms.wait_for(seen, timeout=10)
        except asyncio.TimeoutError:
            raise AssertionError(f"no NotifyEvent for {name} {'cleared' if cleared else 'raised'}: "
                                 f"{self.events(name)}") from None
        return True

    def _last(self, connector: int) -> str:
        """The last status the CSMS heard for ``connector`` (2.0.1: of the EVSE), with its 1.6 errorCode."""
        status, error = self.statuses(connector if self.version == "1.6" else 1)[-1]
        return f"{status} {error}".strip()

    def _notify_figure(self) -> str | None:
        return "raised and cleared" if self.version == "2.0.1" else None

    def _contactor_closes(self) -> int:
        return sum(1 for _, device, value in self.agent.hal.history if device == "evse1.contactor" and value)


def expected_reason(version: str, name: str) -> str:
    """The stop reason a fault that stops charging must give (the driver's tap, where it shows at the stop)."""
    if FAULTS[name].shows_at_stop:
        return "Local"
    return STOP_REASON[version].get(name, "Other")


# Checks a dedicated xfail test pins as a known bug; the main tests still record them in the figures.
KNOWN_BUGS: dict[tuple[str, ...], str] = {}


async def exercise(tmp_path, version: str, names, figures, run: str) -> None:
    """Each fault at idle and while charging, on one agent; record, then check, every result."""
    async with HardwareBench(tmp_path, version) as bench:
        results = {}
        for name in names:
            results[name] = [await bench.idle_fault(name), await bench.charging_fault(name)]
    for name, phases in results.items():
        figures.record("hardware_faults", f"{run} {version} {name}", version=version, fault=name, phases=phases)
    for name, (idle, charging) in results.items():
        if (name, "idle", "outputs_safe") not in KNOWN_BUGS:
            assert idle["outputs_safe"], (name, idle)
        assert charging["outputs_safe"], (name, charging)
        if FAULTS[name].stops_charging and (version, name, "stop_reason") not in KNOWN_BUGS:
            assert charging["stop_reason"] == expected_reason(version, name), (name, charging)


async def test_hardware_faults_smoke(tmp_path, figures):
    await asyncio.gather(exercise(tmp_path / "v16", "1.6", ["rcd-trip"], figures, "smoke"),
                         exercise(tmp_path / "v201", "2.0.1", ["contactor-welded"], figures, "smoke"))


@pytest.mark.reliability
@pytest.mark.parametrize("name", list(FAULTS))
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_hardware_faults_full(tmp_path, figures, version, name):
    await exercise(tmp_path, version, [name], figures, "full")


@pytest.mark.parametrize("version", ["1.6", pytest.param("2.0.1", marks=pytest.mark.reliability)])
async def test_hardware_faults_jammed_lock_keeps_the_contactor_open(tmp_path, version):
    async with HardwareBench(tmp_path, version) as bench:
        before = len(bench.agent.hal.history)
        await bench.control(cmd="fault", evse=1, name="lock-failure")
        for command in ({"cmd": "plug", "evse": 1}, {"cmd": "ev", "evse": 1, "charge": True},
                        {"cmd": "tap", "id_token": CARD}):
            await bench.control(**command)
        await bench.reported("Faulted", "ConnectorLockFailure")
        energised = [(device, value) for _, device, value in bench.agent.hal.history[before:]
                     if (device == "evse1.contactor" and value) or (device == "evse1.current_limit_A" and value)]
    assert energised == [], f"energy offered through an unlocked cable: {energised}"


async def test_hardware_faults_201_rcd_trip_ends_as_a_ground_fault(tmp_path):
    async with HardwareBench(tmp_path, "2.0.1") as bench:
        await bench.charge()
        await bench.control(cmd="fault", evse=1, name="rcd-trip")
        await bench.csms.wait_for(lambda: bench.ended(), timeout=10)
    assert bench.ended()[-1]["reason"] == "GroundFault"
