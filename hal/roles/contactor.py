"""The contactor role: switches the power path of one EVSE and watches its mirror contact."""

from __future__ import annotations

import abc
import asyncio

from hal.errors import InterlockError
from hal.events import Emit
from hal.faults import FaultTracker
from hal.roles._device import Device, check_positive, wait_until

WELDED = "contactor-welded"
STUCK_OPEN = "contactor-stuck-open"


class Contactor(Device, abc.ABC):
    """Power contactor of one EVSE, with feedback from its mirror (auxiliary) contact.

    Contract, enforced here and not left to callers or drivers:

    - ``close()`` raises ``InterlockError`` unless ``allow_power(True)`` is in
      force; the output is not touched when refused.
    - ``allow_power(False)`` while closed opens the output at once.
    - ``open()`` is always allowed and takes effect immediately, even while an
      earlier command is still waiting for its feedback.
    - After each command the mirror contact must agree within
      ``feedback_timeout_s``. Still closed after open raises fault
      ``contactor-welded``; still open after close raises
      ``contactor-stuck-open``. Agreement again clears them (a weld clears
      only once the contact reads open). Faults are events, never exceptions.
    - Feedback is supervised all the time, not only after a command: a
      change with no command in progress (a weld while idle, a contactor
      that drops out while charging) is judged the same way at once.
      Drivers call ``_on_feedback_changed()`` from their input edge callback
      (or a timer poll where the input has no edge events), on the event
      loop thread; a change during a command is judged when it settles.

    Drivers implement ``_set_output(closed)`` and ``_read_feedback()``; both
    are synchronous and quick (a GPIO write and read).
    """

    def __init__(
        self,
        evse_id: int,
        *,
        emit: Emit,
        feedback_timeout_s: float = 0.5,
        poll_interval_s: float = 0.01,
    ) -> None:
        self.evse_id = evse_id
        self.feedback_timeout_s = check_positive("feedback_timeout_s", feedback_timeout_s)
        self.poll_interval_s = check_positive("poll_interval_s", poll_interval_s)
        self._faults = FaultTracker(evse_id, emit=emit)
        self._power_allowed = False
        self._closed = False
        # Each command bumps the generation; a waiter whose command was
        # superseded leaves the verdict to the newer command.
        self._generation = 0
        self._settling = 0
        self._tasks: set[asyncio.Task] = set()

    @property
    def power_allowed(self) -> bool:
        """Whether the interlock currently permits closing."""
        return self._power_allowed

    @property
    def closed(self) -> bool:
        """The commanded state: True when the output is driven closed."""
        return self._closed

    @property
    def feedback_closed(self) -> bool:
        """What the mirror contact reads now (True = power path closed)."""
        return bool(self._read_feedback())

    @property
    def faults(self) -> frozenset[str]:
        """Fault codes this contactor has raised and not cleared."""
        return self._faults.active

    def allow_power(self, allowed: bool) -> None:
        """Set the interlock (the EVSE state machine owns it); False while closed opens at once."""
        self._power_allowed = bool(allowed)
        if not allowed and self._closed:
            # Withdrawing permission must cut power now, not when the caller
            # gets round to open(); the verdict on the feedback follows async.
            generation = self._command(False)
            self._verify_later(generation)

    async def close(self) -> bool:
        """Close the power path; True if the feedback confirmed it in time.

        Raises InterlockError (and leaves the output alone) unless power is allowed.
        """
        if not self._power_allowed:
            raise InterlockError(f"refused: power not allowed on EVSE {self.evse_id}")
        return await self._settle(self._command(True))

    async def open(self) -> bool:
        """Open the power path (always allowed); True if the feedback confirmed it in time."""
        return await self._settle(self._command(False))

    async def start(self) -> None:
        """Open the device, drive the output open and check the mirror contact agrees."""
        await super().start()
        await self.open()

    async def stop(self) -> None:
        """Cancel pending feedback checks and release the device."""
        for task in list(self._tasks):
            task.cancel()
        await super().stop()

    def _on_feedback_changed(self) -> None:
        """Drivers call this on a feedback input edge; judges changes made without a command."""
        if self._settling:
            return  # a command is waiting for its feedback and will judge it
        self._check_feedback()

    def _command(self, closed: bool) -> int:
        self._generation += 1
        self._closed = closed
        self._set_output(closed)
        return self._generation

    async def _settle(self, generation: int) -> bool:
        target = self._closed  # called right after _command(): what this command asked for
        self._settling += 1
        try:
            await wait_until(
                lambda: self.feedback_closed == self._closed,
                timeout_s=self.feedback_timeout_s,
                poll_s=self.poll_interval_s,
                abandon=lambda: generation != self._generation,
            )
        finally:
            self._settling -= 1
        if generation != self._generation:
            return self.feedback_closed == target  # superseded: the newer command judges
        return self._check_feedback()

    def _verify_later(self, generation: int) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._settle(generation))
        except RuntimeError:
            self._check_feedback()  # no loop (plain sync use): judge what reads now
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _check_feedback(self) -> bool:
        feedback = self.feedback_closed
        if not feedback:
            # A weld is only over once the contact is seen open.
            self._faults.clear_fault(WELDED)
        if feedback == self._closed:
            self._faults.clear_fault(STUCK_OPEN)
            return True
        if feedback:
            self._faults.raise_fault(WELDED, info="mirror contact reads closed, commanded open")
        else:
            self._faults.raise_fault(STUCK_OPEN, info="mirror contact reads open, commanded closed")
        return False

    @abc.abstractmethod
    def _set_output(self, closed: bool) -> None:
        """Driver hook: drive the contactor coil (True = closed)."""

    @abc.abstractmethod
    def _read_feedback(self) -> bool:
        """Driver hook: read the mirror contact (True = power path closed)."""

    def __repr__(self) -> str:
        try:
            feedback = "closed" if self.feedback_closed else "open"
        except Exception:
            feedback = "unreadable"
        return (
            f"<{type(self).__name__} evse={self.evse_id} {'closed' if self._closed else 'open'}"
            f" feedback={feedback} power={'allowed' if self._power_allowed else 'denied'}"
            f" faults={sorted(self._faults.active)}>"
        )
