"""Contactor, connector lock and control pilot of one EVSE on GPIO lines (any ``GpioBackend``).

The role base classes enforce the safety rules (interlock, weld detection,
no unlock while closed); these drivers only move lines. Every output is set
up at its safe level (contactor open, lock relays off) before anything else
happens, and each device releases its own lines in ``stop()``.

``build_gpio_evse`` turns one ``[evse.gpio]`` section (``GpioPinsConfig``)
into the three devices, refusing a pin set that cannot be run safely.
"""

from __future__ import annotations

import asyncio
import logging

from hal.errors import HalError
from hal.events import Emit, PilotState
from hal.gpio.backend import GpioBackend, Line
from hal.roles import ConnectorLock, Contactor, PilotController

log = logging.getLogger(__name__)

DEFAULT_DEBOUNCE_MS = 10
# A motor lock reversed mid-pulse gets this pause with both relays off, so
# the motor stops before it is driven the other way.
MOTOR_DEAD_TIME_S = 0.02


class GpioPinsError(HalError, ValueError):
    """The ``[evse.gpio]`` pins cannot make a safe EVSE: a pin is missing, unused or shared."""


# ------------------------------------------------------------------ helpers


def _idle_pull(active_high: bool) -> str:
    """Bias an input towards its inactive level, so a cut wire reads "not active"."""
    return "down" if active_high else "up"


class GpioLines:
    """The lines one device has set up, released together (also when set-up fails halfway)."""

    def __init__(self, backend: GpioBackend) -> None:
        self.backend = backend
        self.claimed: list[Line] = []

    def output(self, line: Line, *, active_high: bool) -> None:
        """Set up an output at its safe (inactive) level."""
        self.backend.setup_output(line, initial=False, active_high=active_high)
        self.claimed.append(line)

    def input(self, line: Line, *, active_high: bool, debounce_ms: int, on_edge) -> None:
        """Set up an input biased to inactive, with ``on_edge(line, value)`` on changes."""
        self.backend.setup_input(line, pull=_idle_pull(active_high), active_high=active_high,
                                 debounce_ms=debounce_ms)
        self.claimed.append(line)
        self.backend.add_edge_callback(line, on_edge)

    def release(self) -> None:
        """Release every claimed line, newest first (outputs go to their safe level)."""
        while self.claimed:
            self.backend.release(self.claimed.pop())


# ---------------------------------------------------------------- contactor


class GpioContactor(Contactor):
    """A contactor coil on one output and its mirror contact on one input.

    The mirror contact is required: without it a weld cannot be detected and
    the lock could release a cable that is still live.
    """

    def __init__(self, evse_id: int, *, emit: Emit, backend: GpioBackend, line: Line,
                 feedback_line: Line, active_high: bool = True,
                 feedback_active_high: bool = True, debounce_ms: int = DEFAULT_DEBOUNCE_MS,
                 feedback_timeout_s: float = 0.5, poll_interval_s: float = 0.01) -> None:
        super().__init__(evse_id, emit=emit, feedback_timeout_s=feedback_timeout_s,
                         poll_interval_s=poll_interval_s)
        self.line = line
        self.feedback_line = feedback_line
        self.active_high = active_high
        self.feedback_active_high = feedback_active_high
        self.debounce_ms = debounce_ms
        self._lines = GpioLines(backend)

    async def _start(self) -> None:
        try:
            self._lines.output(self.line, active_high=self.active_high)
            self._lines.input(self.feedback_line, active_high=self.feedback_active_high,
                              debounce_ms=self.debounce_ms,
                              on_edge=lambda _line, _value: self._on_feedback_changed())
        except BaseException:
            self._lines.release()
            raise

    async def _stop(self) -> None:
        self._lines.release()

    def _set_output(self, closed: bool) -> None:
        self._lines.backend.write(self.line, closed)

    def _read_feedback(self) -> bool:
        return self._lines.backend.read(self.feedback_line)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f" line={self.line} feedback_line={self.feedback_line}>"


# --------------------------------------------------------------------- locks


class GpioLock(ConnectorLock):
    """A connector lock on relays, with its position switch on ``feedback_line``.

    ``kind="motor"``: ``lock_line`` drives the motor towards locked,
    ``unlock_line`` towards unlocked, each for ``pulse_ms`` and then both off.
    The other relay is always switched off before one is switched on, so both
    are never on together; a reversal mid-pulse waits ``MOTOR_DEAD_TIME_S``.

    ``kind="solenoid"``: ``lock_line`` is held on while locked (energised =
    locked, so a power loss unlocks). ``unlock_line`` must be None.
    """

    fitted = True

    def __init__(self, evse_id: int, *, emit: Emit, contactor: Contactor,
                 backend: GpioBackend, kind: str, lock_line: Line, feedback_line: Line,
                 unlock_line: Line | None = None, pulse_ms: int = 300, active_high: bool = True,
                 feedback_active_high: bool = True, debounce_ms: int = DEFAULT_DEBOUNCE_MS,
                 retries: int = 2, feedback_timeout_s: float = 1.0) -> None:
        super().__init__(evse_id, emit=emit, contactor=contactor, retries=retries,
                         feedback_timeout_s=feedback_timeout_s)
        if kind not in ("motor", "solenoid"):
            raise ValueError(f"lock kind must be 'motor' or 'solenoid', not {kind!r}")
        if (kind == "motor") != (unlock_line is not None):
            raise ValueError("a motor lock needs unlock_line; a solenoid lock takes none")
        if isinstance(pulse_ms, bool) or not isinstance(pulse_ms, int) or pulse_ms <= 0:
            raise ValueError(f"pulse_ms must be an integer > 0, not {pulse_ms!r}")
        self.kind = kind
        self.lock_line = lock_line
        self.unlock_line = unlock_line
        self.feedback_line = feedback_line
        self.pulse_s = pulse_ms / 1000
        self.active_high = active_high
        self.feedback_active_high = feedback_active_high
        self.debounce_ms = debounce_ms
        self._lines = GpioLines(backend)
        self._pulse_end: asyncio.TimerHandle | None = None
        self._pulse_start: asyncio.TimerHandle | None = None

    @property
    def driving(self) -> Line | None:
        """The relay line energised right now (None = motor stopped / solenoid off)."""
        backend = self._lines.backend
        for line in self._relays():
            if line in backend.lines and backend.read(line):
                return line
        return None

    async def _start(self) -> None:
        try:
            for line in self._relays():
                self._lines.output(line, active_high=self.active_high)
            self._lines.input(self.feedback_line, active_high=self.feedback_active_high,
                              debounce_ms=self.debounce_ms,
                              on_edge=lambda _line, _value: self._on_feedback_changed())
        except BaseException:
            self._lines.release()
            raise

    async def _stop(self) -> None:
        self._cancel_timers()
        self._lines.release()

    def _drive(self, locked: bool) -> None:
        if self.kind == "solenoid":
            self._lines.backend.write(self.lock_line, locked)
            return
        relay = self.lock_line if locked else self.unlock_line
        moving = self._pulse_end is not None or self._pulse_start is not None
        self._stop_motor()
        if moving:
            loop = asyncio.get_running_loop()
            self._pulse_start = loop.call_later(MOTOR_DEAD_TIME_S, self._start_pulse, relay)
        else:
            self._start_pulse(relay)

    def _start_pulse(self, relay: Line) -> None:
        self._pulse_start = None
        backend = self._lines.backend
        for line in self._relays():
            if line != relay:
                backend.write(line, False)  # the other direction first: never both on
        backend.write(relay, True)
        self._pulse_end = asyncio.get_running_loop().call_later(self.pulse_s, self._stop_motor)

    def _stop_motor(self) -> None:
        self._cancel_timers()
        for line in self._relays():
            try:
                self._lines.backend.write(line, False)
            except Exception:
                # Runs from a timer too: log rather than lose the error in the loop.
                log.exception("EVSE %s: cannot switch lock relay %r off", self.evse_id, line)

    def _cancel_timers(self) -> None:
        for handle in (self._pulse_end, self._pulse_start):
            if handle is not None:
                handle.cancel()
        self._pulse_end = self._pulse_start = None

    def _relays(self) -> tuple[Line, ...]:
        return (self.lock_line,) if self.unlock_line is None else (self.lock_line, self.unlock_line)

    def _read_feedback(self) -> bool:
        return self._lines.backend.read(self.feedback_line)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f" kind={self.kind} driving={self._repr_driving()}>"

    def _repr_driving(self) -> str:
        try:
            return str(self.driving)
        except Exception:
            return "unreadable"


class NoLock(ConnectorLock):
    """The lock of an EVSE that has none (``lock_type = "none"``, e.g. a tethered cable).

    ``lock()`` and ``unlock()`` succeed without moving anything, but ``locked``
    is always False: nothing here may claim the cable is held. ``unlock()``
    still refuses while the contactor is closed, so the core sees the same
    contract from every lock. ``fitted`` is False so the core can answer
    UnlockConnector with "not supported"/"unknown connector" honestly.
    """

    fitted = False

    async def lock(self) -> bool:
        """Nothing to lock: returns True, ``locked`` stays False."""
        self._commanded = True
        return True

    async def unlock(self) -> bool:
        """Nothing to unlock: True, but LockRefused while the contactor is closed."""
        self._check_interlock()
        self._commanded = False
        return True

    def _drive(self, locked: bool) -> None:
        """No actuator."""

    def _read_feedback(self) -> bool:
        return False


# --------------------------------------------------------------------- pilot


def decode_pilot(plug: bool, charge: bool) -> PilotState | None:
    """Two pilot-board inputs to a state: A, B, C, or None when they disagree (charge w/o plug)."""
    if not plug:
        return None if charge else PilotState.A
    return PilotState.C if charge else PilotState.B


class GpioPilot(PilotController):
    """Control pilot read from a pilot board's two comparator outputs.

    ``plug_line`` is active when an EV is connected (pilot <= 9 V: B or C),
    ``charge_line`` when it asks for energy (pilot <= 6 V: C). The board must
    present steady levels (it measures the PWM's positive peak), not the
    1 kHz PWM itself. Two comparators cannot tell D from C nor see E/F, so
    D reads as C. "Charge without plug" that persists for ``settle_s`` (a
    broken comparator or wire) is reported as F; shorter, it is the two
    inputs settling one after the other and is ignored.

    Such a board generates the PWM itself: ``set_current_limit_A`` is
    recorded (``current_limit_A``) but changes nothing electrically
    (``controls_current`` is False). The core must therefore open the
    contactor itself for a 0 A limit and must not rely on the EV reducing
    its draw to a lower limit.
    """

    controls_current = False

    def __init__(self, evse_id: int, *, emit: Emit, backend: GpioBackend, plug_line: Line,
                 charge_line: Line, active_high: bool = True,
                 debounce_ms: int = DEFAULT_DEBOUNCE_MS, settle_s: float = 0.05,
                 max_current_A: float = 32.0) -> None:
        super().__init__(evse_id, emit=emit, max_current_A=max_current_A)
        self.plug_line = plug_line
        self.charge_line = charge_line
        self.active_high = active_high
        self.debounce_ms = debounce_ms
        self.settle_s = settle_s
        self._lines = GpioLines(backend)
        self._recheck: asyncio.TimerHandle | None = None

    async def _start(self) -> None:
        try:
            for line in (self.plug_line, self.charge_line):
                self._lines.input(line, active_high=self.active_high,
                                  debounce_ms=self.debounce_ms, on_edge=self._on_edge)
        except BaseException:
            self._lines.release()
            raise
        self._refresh()  # an EV already plugged in at start-up is reported now

    async def _stop(self) -> None:
        self._cancel_recheck()
        self._lines.release()

    def _apply_current_limit(self, amps: float) -> None:
        # Nothing to drive: the board's PWM is fixed. See the class docstring.
        if amps != self.current_limit_A:
            log.debug("EVSE %s GPIO pilot cannot offer %g A electrically", self.evse_id, amps)

    def _on_edge(self, _line: Line, _value: bool) -> None:
        self._refresh()

    def _refresh(self) -> None:
        state = self._decode()
        if state is None:
            if self._recheck is None:
                loop = asyncio.get_running_loop()
                self._recheck = loop.call_later(self.settle_s, self._judge_disagreement)
            return
        self._cancel_recheck()
        self._state_changed(state)

    def _judge_disagreement(self) -> None:
        self._recheck = None
        state = self._decode()
        if state is None:
            log.error("EVSE %s pilot inputs disagree (charge without plug): reporting F",
                      self.evse_id)
        self._state_changed(state or PilotState.F)

    def _decode(self) -> PilotState | None:
        backend = self._lines.backend
        return decode_pilot(backend.read(self.plug_line), backend.read(self.charge_line))

    def _cancel_recheck(self) -> None:
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None

    def __repr__(self) -> str:
        return (super().__repr__()[:-1]
                + f" plug_line={self.plug_line} charge_line={self.charge_line}>")


# ------------------------------------------------------------------ factory

_REQUIRED = {
    "contactor": "the contactor coil output is required",
    "contactor_feedback": "required: without the mirror contact a weld goes unnoticed",
    "pilot_plug": "required: the pilot board's 'EV connected' input",
    "pilot_charge": "required: the pilot board's 'EV requests energy' input",
}
_LOCK_PINS = {
    "motor": ("lock_a", "lock_b", "lock_feedback"),
    "solenoid": ("lock_a", "lock_feedback"),
    "none": (),
}


def gpio_pin_problems(pins, *, pilot_on_gpio: bool = True) -> list[tuple[str, str]]:
    """Every problem of a ``GpioPinsConfig`` as (key, message); empty when it is safe to build.

    ``pilot_on_gpio`` False: the pilot is read elsewhere (a Modbus EVSE controller), so its pins are optional.
    """
    required = {k: v for k, v in _REQUIRED.items() if pilot_on_gpio or not k.startswith("pilot_")}
    problems = [(key, why) for key, why in required.items() if getattr(pins, key) is None]
    problems += _lock_problems(pins)
    problems += _shared_line_problems(pins)
    return problems


def _lock_problems(pins) -> list[tuple[str, str]]:
    kind = pins.lock_type
    if kind not in _LOCK_PINS:
        return [("lock_type", f"must be one of {', '.join(_LOCK_PINS)}, not {kind!r}")]
    needed = _LOCK_PINS[kind]
    problems = [(key, f"required by lock_type {kind!r}")
                for key in needed if getattr(pins, key) is None]
    problems += [(key, f"not used by lock_type {kind!r}; remove it or change lock_type")
                 for key in ("lock_a", "lock_b", "lock_feedback")
                 if key not in needed and getattr(pins, key) is not None]
    if kind == "motor" and not (isinstance(pins.lock_pulse_ms, int) and pins.lock_pulse_ms > 0):
        problems.append(("lock_pulse_ms", "must be an integer > 0"))
    return problems


def _shared_line_problems(pins) -> list[tuple[str, str]]:
    keys = ("contactor", "contactor_feedback", "lock_a", "lock_b", "lock_feedback",
            "pilot_plug", "pilot_charge")
    owner: dict[object, str] = {}
    problems = []
    for key in keys:
        line = getattr(pins, key)
        if line is None:
            continue
        if line in owner:
            problems.append((key, f"line {line!r} is already used by {owner[line]}"))
        else:
            owner[line] = key
    return problems


def build_gpio_evse(evse_id: int, pins, *, backend: GpioBackend, emit: Emit,
                    max_current_A: float = 32.0, debounce_ms: int = DEFAULT_DEBOUNCE_MS,
                    contactor_feedback_timeout_s: float = 0.5,
                    lock_feedback_timeout_s: float = 1.0, pilot_on_gpio: bool = True,
                    ) -> tuple[GpioContactor, ConnectorLock, GpioPilot | None]:
    """The contactor, lock and pilot of EVSE ``evse_id`` from its ``GpioPinsConfig``.

    Raises GpioPinsError naming every bad key. Nothing touches the backend
    until the devices are started (``Hal.start``). The pilot is None when
    ``pilot_on_gpio`` is False (a Modbus EVSE controller provides it).
    """
    problems = gpio_pin_problems(pins, pilot_on_gpio=pilot_on_gpio)
    if problems:
        detail = "; ".join(f"gpio.{key}: {why}" for key, why in problems)
        raise GpioPinsError(f"EVSE {evse_id}: {detail}")
    contactor = GpioContactor(
        evse_id, emit=emit, backend=backend, line=pins.contactor,
        feedback_line=pins.contactor_feedback, active_high=pins.contactor_active_high,
        feedback_active_high=pins.contactor_feedback_active_high, debounce_ms=debounce_ms,
        feedback_timeout_s=contactor_feedback_timeout_s)
    lock = _build_lock(evse_id, pins, backend=backend, emit=emit, contactor=contactor,
                       debounce_ms=debounce_ms, feedback_timeout_s=lock_feedback_timeout_s)
    if not pilot_on_gpio:
        return contactor, lock, None
    pilot = GpioPilot(
        evse_id, emit=emit, backend=backend, plug_line=pins.pilot_plug,
        charge_line=pins.pilot_charge, active_high=pins.pilot_active_high,
        debounce_ms=debounce_ms, max_current_A=max_current_A)
    return contactor, lock, pilot


def _build_lock(evse_id: int, pins, *, backend: GpioBackend, emit: Emit,
                contactor: Contactor, debounce_ms: int,
                feedback_timeout_s: float) -> ConnectorLock:
    if pins.lock_type == "none":
        return NoLock(evse_id, emit=emit, contactor=contactor)
    return GpioLock(
        evse_id, emit=emit, contactor=contactor, backend=backend, kind=pins.lock_type,
        lock_line=pins.lock_a, unlock_line=pins.lock_b if pins.lock_type == "motor" else None,
        feedback_line=pins.lock_feedback, pulse_ms=pins.lock_pulse_ms,
        active_high=pins.lock_active_high, feedback_active_high=pins.lock_feedback_active_high,
        debounce_ms=debounce_ms, feedback_timeout_s=feedback_timeout_s)
