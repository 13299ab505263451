"""In-memory devices behind every role, drivable and observable (gpiozero's mock pins are the model).

Each mock records its output changes in a shared ``Recorder`` and exposes
setters that simulate the physical world (a welded contact, a jammed lock,
a meter that stops answering). The role base classes do all the judging.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from hal.errors import MeterTimeout
from hal.events import Emit, MeterReading, PilotState
from hal.roles import (
    ConnectorLock, Contactor, Display, EnergyMeter, ExternalLimit, LimitInput, PilotController, TokenReader,
    normalise_uid,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class Recorder:
    """Timestamped history of output changes: ``history`` is a list of (t, device, value).

    Kept to at most ``limit`` entries (oldest dropped) so a long-running mock
    agent does not grow without bound.
    """

    def __init__(self, *, clock: Clock = time.monotonic, limit: int = 10_000) -> None:
        self.clock = clock
        self.limit = limit
        self.history: list[tuple[float, str, object]] = []

    def record(self, device: str, value: object) -> None:
        """Append (now, device, value)."""
        self.history.append((self.clock(), device, value))
        if len(self.history) > self.limit:
            del self.history[: len(self.history) - self.limit]

    def values(self, device: str) -> list[object]:
        """The recorded values of one device, oldest first."""
        return [value for _, name, value in self.history if name == device]

    def __repr__(self) -> str:
        return f"<Recorder entries={len(self.history)} limit={self.limit}>"


class MockContactor(Contactor):
    """A contactor whose mirror contact follows the output unless welded or unsupplied."""

    def __init__(self, evse_id: int, *, emit: Emit, recorder: Recorder,
                 feedback_timeout_s: float = 0.5) -> None:
        super().__init__(evse_id, emit=emit, feedback_timeout_s=feedback_timeout_s)
        self._recorder = recorder
        self._output = False
        self._welded = False
        self._supplied = True
        # The mock meter integrates energy up to "now" before the power path
        # changes, so energy before and after a switch is attributed correctly.
        self.before_change: Callable[[], None] = lambda: None

    @property
    def output(self) -> bool:
        """What the coil output is driven to."""
        return self._output

    def set_welded(self, welded: bool) -> None:
        """Simulate a weld: the contact reads (and conducts) closed whatever is commanded."""
        self.before_change()
        self._welded = bool(welded)
        self._on_feedback_changed()

    def set_supplied(self, supplied: bool) -> None:
        """Simulate the supply of the power path tripping (False) or coming back (True).

        A trip reports no feedback edge: the agent learns of it from the
        rcd-trip fault and opens the contactor, which then agrees.
        """
        self.before_change()
        self._supplied = bool(supplied)
        if supplied:
            self._on_feedback_changed()

    def _set_output(self, closed: bool) -> None:
        if closed == self._output:
            return
        self.before_change()
        self._output = closed
        self._recorder.record(f"evse{self.evse_id}.contactor", closed)

    def _read_feedback(self) -> bool:
        return self._welded or (self._output and self._supplied)


class MockConnectorLock(ConnectorLock):
    """A lock whose position follows the drive, unless jammed (fault lock-failure).

    A jam while locked is a lock that let go (a broken pin, a worn latch): its
    position switch reads unlocked at once, as a real failed lock's would, and
    the role's feedback supervision reports lock-failure from that edge.
    """

    def __init__(self, evse_id: int, *, emit: Emit, contactor: Contactor, recorder: Recorder,
                 feedback_timeout_s: float = 0.5, retries: int = 2) -> None:
        super().__init__(evse_id, emit=emit, contactor=contactor, retries=retries,
                         feedback_timeout_s=feedback_timeout_s)
        self._recorder = recorder
        self._driven: bool | None = None
        self._position = False
        self._jammed = False
        self.drive_count = 0

    def set_jammed(self, jammed: bool) -> None:
        """Simulate a failed lock: a locked one lets go (reads unlocked), an unlocked one cannot lock.

        Freeing it lets it reach the last driven position. Each position
        change is a feedback edge, judged by the role's supervision.
        """
        self._jammed = bool(jammed)
        if jammed and self._position:
            self._position = False
            self._on_feedback_changed()
        elif not jammed and self._driven is not None and self._position != self._driven:
            self._position = self._driven
            self._on_feedback_changed()

    def _drive(self, locked: bool) -> None:
        self.drive_count += 1
        if locked != self._driven:
            self._recorder.record(f"evse{self.evse_id}.lock", locked)
        self._driven = locked
        if not self._jammed:
            self._position = locked

    def _read_feedback(self) -> bool:
        return self._position


class MockEnergyMeter(EnergyMeter):
    """A meter that integrates the EV's power draw while ``flowing()`` (contactor feedback closed)."""

    def __init__(self, evse_id: int, *, emit: Emit, clock: Clock, flowing: Callable[[], bool],
                 phases: int = 3, voltage_V: float = 230.0, energy_Wh: float = 0.0,
                 poll_interval_s: float = 1.0) -> None:
        super().__init__(evse_id, emit=emit, poll_interval_s=poll_interval_s)
        self._clock = clock
        self._flowing = flowing
        self._phases = phases
        self._voltage_V = float(voltage_V)
        self._energy_Wh = float(energy_Wh)
        self._draw_W = 0.0
        self._since = clock()
        self._offline = False

    @property
    def energy_Wh(self) -> float:
        """The energy register now, integrated up to this instant."""
        self.advance()
        return self._energy_Wh

    @property
    def power_W(self) -> float:
        """The power flowing now: the EV's draw while the power path is closed, else 0."""
        return self._draw_W if self._flowing() else 0.0

    def set_voltage(self, voltage_V: float) -> None:
        """The supply voltage on every phase (a brown-out or overvoltage, for monitors)."""
        self.advance()  # the energy so far was drawn at the old voltage
        self._voltage_V = float(voltage_V)

    def set_draw(self, watts: float) -> None:
        """Set the power the EV draws while the power path is closed."""
        if isinstance(watts, bool) or not isinstance(watts, (int, float)):
            raise TypeError(f"watts must be a number, not {type(watts).__name__}")
        if not math.isfinite(watts) or watts < 0:
            raise ValueError(f"watts must be a finite number >= 0, not {watts!r}")
        self.advance()
        self._draw_W = float(watts)

    def set_offline(self, offline: bool) -> None:
        """Simulate the meter not answering: reads (the poller's too) raise MeterTimeout.

        The role notices on its own: meter-offline within ``stale_after`` poll
        intervals, cleared by the first good poll after this is undone.
        """
        self._offline = bool(offline)

    def advance(self) -> None:
        """Integrate energy from the last update to now, at the current flow state."""
        now = self._clock()
        elapsed, self._since = now - self._since, now
        if elapsed > 0 and self._draw_W and self._flowing():
            self._energy_Wh += self._draw_W * elapsed / 3600.0

    def reading(self) -> MeterReading:
        """What a read would return now (ignores the offline fault)."""
        power = self.power_W
        current = power / (self._voltage_V * self._phases)
        return MeterReading(
            energy_import_Wh=self.energy_Wh,
            power_W=power,
            voltage_V=(self._voltage_V,) * self._phases,
            current_A=(current,) * self._phases,
            timestamp=time.time(),
        )

    async def _read(self) -> MeterReading:
        if self._offline:
            raise MeterTimeout(f"EVSE {self.evse_id} mock meter offline (injected fault)")
        return self.reading()


class MockPilotController(PilotController):
    """A pilot whose state is set by the simulation; the offered current is recorded."""

    def __init__(self, evse_id: int, *, emit: Emit, recorder: Recorder,
                 max_current_A: float = 32.0) -> None:
        super().__init__(evse_id, emit=emit, max_current_A=max_current_A)
        self._recorder = recorder

    def set_state(self, state: PilotState | str) -> bool:
        """Simulate the EV moving the pilot to ``state``; True if it changed."""
        return self._state_changed(state)

    def _apply_current_limit(self, amps: float) -> None:
        if amps != self.current_limit_A:
            self._recorder.record(f"evse{self.evse_id}.current_limit_A", amps)


class MockTokenReader(TokenReader):
    """A reader cards are tapped on (present, then removed) or held on (repeated sightings)."""

    def __init__(self, *, emit: Emit, repeat_interval_s: float = 2.0,
                 clock: Clock = time.monotonic) -> None:
        super().__init__(emit=emit, repeat_interval_s=repeat_interval_s, clock=clock)
        self._offline = False

    async def _start(self) -> None:
        """Nothing to open: cards arrive through ``tap`` and ``hold``."""

    def tap(self, uid: str, evse_id: int | None = None) -> bool:
        """A card presented and taken away; True if delivered (False while offline)."""
        delivered = self.hold(uid, evse_id)
        self._card_removed(evse_id)
        return delivered

    def hold(self, uid: str, evse_id: int | None = None) -> bool:
        """One sighting of a card left on the reader; repeats are suppressed."""
        normalise_uid(uid)  # a bad UID is an error even while the reader is offline
        if self._offline:
            return False
        return self._present(uid, evse_id)

    def set_offline(self, offline: bool) -> None:
        """Simulate the reader disappearing (fault reader-offline) or coming back."""
        self._offline = bool(offline)
        self._set_online(not offline, info="injected fault" if offline else "")


class MockDisplay(Display):
    """A display whose text changes are recorded as device ``display``."""

    def __init__(self, *, recorder: Recorder) -> None:
        super().__init__()
        self._recorder = recorder

    def _render(self, text: str | None) -> None:
        if text != self.text:
            self._recorder.record("display", text)


class MockLimitInput(LimitInput):
    """An external limit contact switched by the simulation; its changes are recorded as ``external_limit``."""

    def __init__(self, *, emit: Emit, limit: ExternalLimit, recorder: Recorder) -> None:
        super().__init__(emit=emit, limit=limit)
        self._recorder = recorder

    async def _start(self) -> None:
        """Nothing to open: the contact starts open (inactive) and moves through ``set_active``."""

    def set_active(self, active: bool) -> bool:
        """Simulate the contact closing (the limit applies) or opening; True if it changed."""
        changed = self._set_active(active)
        if changed:
            self._recorder.record("external_limit", self.active)
        return changed


class EnergyRegisterFile:
    """The mock meters' energy registers on disk, so they survive restarts like a real meter's.

    Written atomically (temporary file, fsync, ``os.replace``): a crash leaves
    the old or the new register, never half a file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[int, float]:
        """Registers by EVSE id; a missing or unreadable file gives {} (logged)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("ignoring unreadable mock meter file %s: %s", self.path, exc)
            return {}
        registers = data.get("energy_Wh") if isinstance(data, dict) else None
        if not isinstance(registers, dict):
            log.error("ignoring mock meter file %s: no energy_Wh table", self.path)
            return {}
        return {int(k): float(v) for k, v in registers.items() if _valid_register(k, v)}

    def save(self, registers: Mapping[int, float]) -> None:
        """Replace the file with ``registers`` atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"version": 1, "energy_Wh": {str(k): registers[k] for k in sorted(registers)}}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __repr__(self) -> str:
        return f"<EnergyRegisterFile {str(self.path)!r}>"


def _valid_register(key: object, value: object) -> bool:
    try:
        ok = int(key) > 0 and math.isfinite(float(value)) and float(value) >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        log.warning("ignoring mock meter register %r: %r", key, value)
    return ok
