"""The mock HAL: every role in memory, driven by tests and the control socket, observed through history.

``MockHal`` wires the mock devices of ``hal.mock.devices`` into a ``Hal`` and
adds the simulation verbs (plug, tap, power, faults) and ``snapshot()``.
The meters' energy registers persist in ``data_dir/mock-meter.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from hal.hardware import EvseHardware, Hal
from hal.errors import SimulationError
from hal.events import Emit, PilotState
from hal.faults import FaultTracker
from hal.mock.devices import (
    Clock,
    EnergyRegisterFile,
    MockConnectorLock,
    MockContactor,
    MockDisplay,
    MockEnergyMeter,
    MockLimitInput,
    MockPilotController,
    MockTokenReader,
    Recorder,
)
from hal.roles import ExternalLimit

log = logging.getLogger(__name__)

REGISTER_FILE = "mock-meter.json"
INJECTABLE_FAULTS = ("contactor-welded", "lock-failure", "meter-offline", "rcd-trip",
                     "reader-offline")
# The reader is one device for the whole station: its fault shows on every EVSE.
STATION_FAULTS = frozenset({"reader-offline"})
PERSIST_INTERVAL_S = 1.0

T = TypeVar("T")


class MockHal(Hal):
    """A whole station in memory: mock devices per EVSE, one token reader, one display.

    Drive it with ``plug``/``unplug``/``ev_charge``/``tap``/``set_power`` and
    ``inject_fault``/``clear_fault``; observe it with ``snapshot()`` and
    ``history`` (every output change as (monotonic t, device, value)).
    ``max_current_A``, ``phases`` and ``meter_poll_interval_s`` may be one
    value or a mapping by EVSE id. Started, each meter is polled on its
    interval like a real one, so ``meter-offline`` shows whatever the agent does.
    ``external_limit`` fits a simulated limit contact (``set_external_limit``).
    """

    def __init__(
        self,
        *,
        evse_ids: Iterable[int],
        data_dir: Path,
        emit: Emit,
        max_current_A: float | Mapping[int, float] = 32.0,
        phases: int | Mapping[int, int] = 3,
        voltage_V: float = 230.0,
        feedback_timeout_s: float = 0.5,
        repeat_interval_s: float = 2.0,
        clock: Clock = time.monotonic,
        history_limit: int = 10_000,
        external_limit: ExternalLimit | None = None,
        meter_poll_interval_s: float | Mapping[int, float] = 1.0,
    ) -> None:
        ids = _check_evse_ids(evse_ids)
        if external_limit is not None and external_limit.evse_id not in (None, *ids):
            raise ValueError(f"external limit on unknown EVSE {external_limit.evse_id} (known: {ids})")
        if not math.isfinite(voltage_V) or voltage_V <= 0:
            raise ValueError(f"voltage_V must be > 0, not {voltage_V!r}")
        self.recorder = Recorder(clock=clock, limit=history_limit)
        self.history = self.recorder.history
        self._registers = EnergyRegisterFile(Path(data_dir) / REGISTER_FILE)
        self._saved = self._registers.load()
        self._rcd = {i: FaultTracker(i, emit=emit) for i in ids}
        self._injected: dict[int, set[str]] = {i: set() for i in ids}
        self._station_injected: set[str] = set()
        self._ticker: asyncio.Task | None = None
        # Set whenever energy may start flowing, so an idle mock saves nothing and never wakes.
        self._flow_changed = asyncio.Event()
        evses = [
            self._build_evse(i, emit=emit, clock=clock, voltage_V=voltage_V,
                             feedback_timeout_s=feedback_timeout_s,
                             max_current_A=_per_evse(max_current_A, i),
                             phases=_check_phases(_per_evse(phases, i)),
                             poll_interval_s=_per_evse(meter_poll_interval_s, i))
            for i in ids
        ]
        super().__init__(
            evses=evses,
            token_reader=MockTokenReader(emit=emit, repeat_interval_s=repeat_interval_s,
                                         clock=clock),
            display=MockDisplay(recorder=self.recorder),
            limit_input=None if external_limit is None else MockLimitInput(
                emit=emit, limit=external_limit, recorder=self.recorder),
        )

    def _build_evse(self, evse_id: int, *, emit: Emit, clock: Clock, voltage_V: float,
                    feedback_timeout_s: float, max_current_A: float, phases: int,
                    poll_interval_s: float) -> EvseHardware:
        contactor = MockContactor(evse_id, emit=emit, recorder=self.recorder,
                                  feedback_timeout_s=feedback_timeout_s)
        meter = MockEnergyMeter(evse_id, emit=emit, clock=clock, phases=phases,
                                voltage_V=voltage_V, energy_Wh=self._saved.get(evse_id, 0.0),
                                flowing=lambda: contactor.feedback_closed, poll_interval_s=poll_interval_s)
        def before_contactor_change() -> None:
            meter.advance()
            self._flow_changed.set()

        contactor.before_change = before_contactor_change
        lock = MockConnectorLock(evse_id, emit=emit, contactor=contactor, recorder=self.recorder,
                                 feedback_timeout_s=feedback_timeout_s)
        pilot = MockPilotController(evse_id, emit=emit, recorder=self.recorder,
                                    max_current_A=max_current_A)
        return EvseHardware(evse_id, contactor, lock, meter, pilot)

    # -- driving -----------------------------------------------------------

    def plug(self, evse: int) -> None:
        """Connect the cable: pilot B (no change if already plugged)."""
        pilot = self._evse(evse).pilot
        if not pilot.state.plugged:
            pilot.set_state(PilotState.B)

    def unplug(self, evse: int) -> None:
        """Remove the cable: pilot A."""
        self._evse(evse).pilot.set_state(PilotState.A)

    def ev_charge(self, evse: int, charge: bool) -> None:
        """The plugged EV requests energy (C) or stops requesting (B); SimulationError if unplugged."""
        pilot = self._evse(evse).pilot
        if not pilot.state.plugged:
            raise SimulationError(f"no EV plugged into EVSE {evse} (pilot {pilot.state.value})")
        pilot.set_state(PilotState.C if charge else PilotState.B)

    def set_pilot(self, evse: int, state: PilotState | str) -> None:
        """Force any pilot state A-F (e.g. E for a shorted pilot)."""
        self._evse(evse).pilot.set_state(state)

    def tap(self, id_token: str, evse: int | None = None) -> bool:
        """Tap a card on the station reader (or EVSE ``evse``'s); False if the reader is offline."""
        if evse is not None:
            self._evse(evse)
        return self._reader.tap(id_token, evse)

    def set_power(self, evse: int, watts: float) -> None:
        """Power the EV draws while the contactor feedback is closed (0 W otherwise)."""
        self._mock_meter(evse).set_draw(watts)
        self._flow_changed.set()

    def set_voltage(self, evse: int, volts: float) -> None:
        """The supply voltage the EVSE's meter measures, on every phase."""
        self._mock_meter(evse).set_voltage(volts)

    def inject_fault(self, evse: int, name: str) -> None:
        """Make fault ``name`` physically present; the role base classes notice and report it."""
        self._set_fault(evse, name, True)

    def clear_fault(self, evse: int, name: str) -> None:
        """Remove fault ``name``; the base classes report FaultCleared when they see it gone."""
        self._set_fault(evse, name, False)

    def set_external_limit(self, active: bool) -> bool:
        """Close (True) or open the external limit contact; True if it changed.

        SimulationError if the station has none (no ``[hal.external_limit]``).
        """
        if not isinstance(self.limit_input, MockLimitInput):
            raise SimulationError("this station has no external limit input; configure [hal.external_limit]")
        return self.limit_input.set_active(active)

    def _set_fault(self, evse: int, name: str, present: bool) -> None:
        hw = self._evse(evse)
        if name not in INJECTABLE_FAULTS:
            raise SimulationError(
                f"unknown fault {name!r}; injectable: {', '.join(INJECTABLE_FAULTS)}")
        if name == "contactor-welded":
            hw.contactor.set_welded(present)
        elif name == "lock-failure":
            hw.lock.set_jammed(present)
        elif name == "meter-offline":
            self._mock_meter(evse).set_offline(present)
        elif name == "rcd-trip":
            self._set_rcd(evse, hw, present)
        else:
            self._reader.set_offline(present)
        injected = self._station_injected if name in STATION_FAULTS else self._injected[evse]
        (injected.add if present else injected.discard)(name)

    def _set_rcd(self, evse: int, hw: EvseHardware, tripped: bool) -> None:
        hw.contactor.set_supplied(not tripped)
        if tripped:
            self._rcd[evse].raise_fault("rcd-trip", info="injected fault")
        else:
            self._rcd[evse].clear_fault("rcd-trip")

    # -- observing ---------------------------------------------------------

    def snapshot(self) -> list[dict]:
        """One dict per EVSE (by id): the simulated hardware as it is now.

        ``faults`` lists the injected faults still present (station-wide ones
        on every EVSE); ``raised`` lists the faults the devices have reported
        to the agent and not yet cleared.
        """
        return [self._snapshot_evse(i) for i in sorted(self.evses)]

    def external_limit_snapshot(self) -> dict | None:
        """The limit contact as it is now (None when none is fitted): active, limit_A, source, evse."""
        if self.limit_input is None:
            return None
        limit = self.limit_input.limit
        return {"active": self.limit_input.active, "limit_A": limit.limit_A, "source": limit.source,
                "evse": limit.evse_id}

    def _snapshot_evse(self, evse_id: int) -> dict:
        hw = self._evse(evse_id)
        raised = (hw.contactor.faults | hw.lock.faults | hw.meter.faults
                  | self._rcd[evse_id].active | self._reader.faults)
        return {
            "id": evse_id,
            "pilot": hw.pilot.state.value,
            "contactor_closed": hw.contactor.closed,
            "contactor_feedback": hw.contactor.feedback_closed,
            "locked": hw.lock.locked,
            "current_limit_A": hw.pilot.current_limit_A,
            **_meter_figures(hw.meter),
            "faults": sorted(self._injected[evse_id] | self._station_injected),
            "raised": sorted(raised),
        }

    # -- life cycle --------------------------------------------------------

    async def start(self, *, only=None) -> None:
        """Start the devices and the once-a-second persistence of the energy registers."""
        await super().start(only=only)
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._persist_periodically())

    async def close(self) -> None:
        """Safe state, release the devices, then save the energy registers a last time."""
        await super().close()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self._persist_logged()

    def persist_energy(self) -> bool:
        """Save the energy registers if they changed since the last save; True if written."""
        registers = dict(self._saved)  # keeps registers of EVSEs not configured this time
        registers.update({i: meter.energy_Wh for i, meter in self._mock_meters().items()})
        if registers == self._saved:
            return False
        self._registers.save(registers)
        self._saved = registers
        return True

    async def _persist_periodically(self) -> None:
        while True:
            if not any(meter.power_W > 0 for meter in self._mock_meters().values()):
                self._persist_logged()  # the last energy before the flow stopped
                self._flow_changed.clear()
                await self._flow_changed.wait()
            await asyncio.sleep(PERSIST_INTERVAL_S)
            self._persist_logged()

    def _persist_logged(self) -> None:
        try:
            self.persist_energy()
        except OSError as exc:
            log.error("cannot save the mock meter registers to %s: %s", self._registers.path, exc)

    # -- helpers -----------------------------------------------------------

    @property
    def _reader(self) -> MockTokenReader:
        return self.token_reader  # type: ignore[return-value]

    def _mock_meters(self) -> dict[int, MockEnergyMeter]:
        """The simulated meters (a real meter configured beside the mock GPIO is left out)."""
        return {i: hw.meter for i, hw in self.evses.items() if isinstance(hw.meter, MockEnergyMeter)}

    def _mock_meter(self, evse: int) -> MockEnergyMeter:
        meter = self._evse(evse).meter
        if not isinstance(meter, MockEnergyMeter):
            raise SimulationError(f"EVSE {evse} has a real meter ({type(meter).__name__}); it cannot be simulated")
        return meter

    def _evse(self, evse: int) -> EvseHardware:
        if isinstance(evse, bool) or not isinstance(evse, int) or evse not in self.evses:
            raise SimulationError(f"unknown EVSE {evse!r} (known: {sorted(self.evses)})")
        return self.evses[evse]

    def __repr__(self) -> str:
        parts = " ".join(
            f"evse{i}={hw.pilot.state.value}/{'closed' if hw.contactor.closed else 'open'}"
            f"/{'locked' if hw.lock.locked else 'unlocked'}/{_meter_figures(hw.meter)['energy_Wh']}Wh"
            for i, hw in sorted(self.evses.items()))
        running = "started" if self.started else "stopped"
        return f"<MockHal {running} {parts} display={self.display.text!r}>"


def _check_evse_ids(evse_ids: Iterable[int]) -> list[int]:
    ids = list(evse_ids)
    if not ids:
        raise ValueError("a station needs at least one EVSE")
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int) or i < 1:
            raise ValueError(f"EVSE ids are integers >= 1, not {i!r}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate EVSE ids in {ids}")
    return ids


def _check_phases(phases: int) -> int:
    if phases not in (1, 2, 3):
        raise ValueError(f"phases must be 1, 2 or 3, not {phases!r}")
    return phases


def _per_evse(value: T | Mapping[int, T], evse_id: int) -> T:
    if isinstance(value, Mapping):
        try:
            return value[evse_id]
        except KeyError:
            raise ValueError(f"no value given for EVSE {evse_id}") from None
    return value


def _meter_figures(meter) -> dict:
    """Energy and power as the state shows them: live for the mock meter, the published reading of a real one.

    A real meter's stale reading shows as None, never as the present value.
    """
    if isinstance(meter, MockEnergyMeter):
        return {"energy_Wh": round(meter.energy_Wh, 3), "power_W": meter.power_W}
    reading = meter.latest
    return {"energy_Wh": None if reading is None else round(reading.energy_import_Wh, 3),
            "power_W": None if reading is None else reading.power_W}
