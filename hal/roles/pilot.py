"""The pilot role: the EV side of an EVSE, IEC 61851 control pilot states and current offer."""

from __future__ import annotations

import abc
import logging
import math

from hal.events import Emit, PilotChanged, PilotState, deliver
from hal.roles._device import Device, check_positive

log = logging.getLogger(__name__)


class PilotController(Device, abc.ABC):
    """Control pilot of one EVSE: reports the EV's state, offers it a current limit.

    Contract:

    - ``state`` is the last pilot state the driver reported; drivers call
      ``_state_changed(new)`` and a ``PilotChanged`` event is emitted only on a
      real change. The state before the driver reports anything is A.
    - ``set_current_limit_A(amps)``: 0 suspends charging; a negative, NaN or
      non-numeric value is rejected (ValueError/TypeError) and changes
      nothing; values above ``max_current_A`` are clamped to it. IEC 61851
      PWM cannot offer less than ``min_current_A`` (6 A), so a limit between
      0 and that suspends rather than round up: offering more than the limit
      could overload the supply the limit protects.
    - The initial offer is 0 A (suspended) until the state machine sets one.

    Drivers implement ``_apply_current_limit(amps)`` (set the PWM duty cycle or
    the EVSE controller's register).
    """

    def __init__(
        self,
        evse_id: int,
        *,
        emit: Emit,
        max_current_A: float = 32.0,
        min_current_A: float = 6.0,
    ) -> None:
        self.evse_id = evse_id
        self.max_current_A = check_positive("max_current_A", max_current_A)
        self.min_current_A = check_positive("min_current_A", min_current_A)
        if self.min_current_A > self.max_current_A:
            raise ValueError(f"min_current_A {min_current_A} exceeds max_current_A {max_current_A}")
        self._emit = emit
        self._state = PilotState.A
        self._limit_A = 0.0

    @property
    def state(self) -> PilotState:
        """The current pilot state (A-F)."""
        return self._state

    @property
    def current_limit_A(self) -> float:
        """The current offered to the EV now, in amperes (0 = suspended)."""
        return self._limit_A

    async def start(self) -> None:
        """Open the device and offer 0 A: nothing is offered until the state machine says so."""
        await super().start()
        self._apply_current_limit(0.0)
        self._limit_A = 0.0

    def set_current_limit_A(self, amps: float) -> float:
        """Offer ``amps`` to the EV (0 suspends); returns the value actually applied."""
        applied = self._effective_limit(amps)
        self._apply_current_limit(applied)
        self._limit_A = applied
        return applied

    def _effective_limit(self, amps: float) -> float:
        if isinstance(amps, bool) or not isinstance(amps, (int, float)):
            raise TypeError(f"current limit must be a number, not {type(amps).__name__}")
        if math.isnan(amps) or amps < 0:
            raise ValueError(f"current limit must be >= 0 A, not {amps!r}")
        if amps < self.min_current_A:
            return 0.0
        return min(float(amps), self.max_current_A)

    def _state_changed(self, new: PilotState | str) -> bool:
        """Drivers report the measured state; emits PilotChanged and returns True on a change."""
        state = PilotState(new)
        if state == self._state:
            return False
        log.debug("EVSE %s pilot %s -> %s", self.evse_id, self._state.value, state.value)
        self._state = state
        deliver(self._emit, PilotChanged(self.evse_id, state))
        return True

    @abc.abstractmethod
    def _apply_current_limit(self, amps: float) -> None:
        """Driver hook: offer ``amps`` to the EV (0 = suspend, else min..max)."""

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} evse={self.evse_id} state={self._state.value}"
                f" limit={self._limit_A:g}A max={self.max_current_A:g}A>")
