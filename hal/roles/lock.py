"""The connector lock role: holds the cable in the socket while power may flow."""

from __future__ import annotations

import abc
import asyncio
import logging

from hal.errors import LockRefused
from hal.events import Emit
from hal.faults import FaultTracker
from hal.roles._device import Device, check_positive, wait_until
from hal.roles.contactor import Contactor

log = logging.getLogger(__name__)

LOCK_FAILURE = "lock-failure"


class ConnectorLock(Device, abc.ABC):
    """Motorised connector lock of one EVSE, with a position feedback switch.

    Contract, enforced here:

    - ``unlock()`` raises ``LockRefused`` while the contactor is closed,
      commanded or as its mirror contact reads (a welded contactor keeps the
      cable locked). It is checked again before every drive attempt.
    - Each command drives the lock and waits up to ``feedback_timeout_s`` for
      the feedback to follow, retrying ``retries`` more times. If it never
      follows, fault ``lock-failure`` is raised (an event) and the command
      returns False; a later success, or the feedback reaching the commanded
      position on its own, clears it.
    - ``locked`` is what the feedback reads, not what was commanded.
    - Supervision, all the time and not only after a command: a feedback
      change that leaves the lock away from its commanded position with no
      command under way (a lock that lets go while it must hold the cable)
      raises ``lock-failure`` at once; it clears when the feedback is back
      at the commanded position. A change during a command is judged when
      the command ends.

    Drivers implement ``_drive(locked)`` (start the motor or pulse the
    solenoid) and ``_read_feedback()``, and call ``_on_feedback_changed()``
    on the event loop thread on every feedback edge (or from a timer poll
    where the input has no edge events).
    """

    def __init__(
        self,
        evse_id: int,
        *,
        emit: Emit,
        contactor: Contactor,
        retries: int = 2,
        feedback_timeout_s: float = 1.0,
        poll_interval_s: float = 0.01,
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an integer >= 0, not {retries!r}")
        self.evse_id = evse_id
        self.contactor = contactor
        self.retries = retries
        self.feedback_timeout_s = check_positive("feedback_timeout_s", feedback_timeout_s)
        self.poll_interval_s = check_positive("poll_interval_s", poll_interval_s)
        self._faults = FaultTracker(evse_id, emit=emit)
        self._commanded: bool | None = None
        self._moving = False
        self._mutex = asyncio.Lock()

    @property
    def locked(self) -> bool:
        """What the position feedback reads now (True = locked)."""
        return bool(self._read_feedback())

    @property
    def commanded(self) -> bool | None:
        """The last commanded position (None before the first command)."""
        return self._commanded

    @property
    def faults(self) -> frozenset[str]:
        """Fault codes this lock has raised and not cleared."""
        return self._faults.active

    async def lock(self) -> bool:
        """Lock the connector; True once the feedback reads locked, False after all retries."""
        return await self._move(True)

    async def unlock(self) -> bool:
        """Unlock the connector; raises LockRefused while the contactor is closed.

        Returns True once the feedback reads unlocked, False after all retries.
        """
        return await self._move(False)

    def _on_feedback_changed(self) -> None:
        """Drivers call this on a feedback edge: judges the position against the command."""
        if not self._moving:
            self._supervise()

    def _supervise(self) -> None:
        """lock-failure while the feedback disagrees with the command (none yet: nothing to judge)."""
        if self._commanded is None:
            return
        try:
            position = self.locked
        except Exception:
            log.exception("EVSE %s: cannot read the lock feedback", self.evse_id)
            return
        if position == self._commanded:
            self._faults.clear_fault(LOCK_FAILURE)
        else:
            self._faults.raise_fault(
                LOCK_FAILURE, info=f"feedback reads {_word(position)} while commanded "
                                   f"{_word(self._commanded)}, with no command under way")

    async def _move(self, locked: bool) -> bool:
        async with self._mutex:
            self._moving = True
            try:
                reached = await self._attempts(locked)
            finally:
                self._moving = False
            if reached:
                # An edge during the command was not judged: a lock that let go
                # right after reaching its position is caught here.
                self._supervise()
            return reached

    async def _attempts(self, locked: bool) -> bool:
        attempts = 1 + self.retries
        for attempt in range(1, attempts + 1):
            if not locked:
                self._check_interlock()
            self._commanded = locked
            self._drive(locked)
            if await wait_until(
                lambda: self.locked == locked,
                timeout_s=self.feedback_timeout_s,
                poll_s=self.poll_interval_s,
            ):
                self._faults.clear_fault(LOCK_FAILURE)
                return True
            log.warning("EVSE %s lock did not reach %s (attempt %d of %d)",
                        self.evse_id, _word(locked), attempt, attempts)
        self._faults.raise_fault(
            LOCK_FAILURE, info=f"feedback did not read {_word(locked)} after {attempts} attempts")
        return False

    def _check_interlock(self) -> None:
        if self.contactor.closed or self.contactor.feedback_closed:
            raise LockRefused(f"refused: EVSE {self.evse_id} contactor is closed, cable stays locked")

    @abc.abstractmethod
    def _drive(self, locked: bool) -> None:
        """Driver hook: move the lock towards ``locked`` (True = locked)."""

    @abc.abstractmethod
    def _read_feedback(self) -> bool:
        """Driver hook: read the position switch (True = locked)."""

    def __repr__(self) -> str:
        try:
            position = _word(self.locked)
        except Exception:
            position = "unreadable"
        commanded = "none" if self._commanded is None else _word(self._commanded)
        return (f"<{type(self).__name__} evse={self.evse_id} {position} commanded={commanded}"
                f" faults={sorted(self._faults.active)}>")


def _word(locked: bool) -> str:
    return "locked" if locked else "unlocked"
