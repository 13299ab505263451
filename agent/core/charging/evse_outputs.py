"""The outputs of one EVSE (offered current, contactor, connector lock), always switched in the safe order.

``EvseMachine`` decides what the outputs should be; this module is the only
place that switches them, so the order lives here once:

- Energy off: the offered current goes to 0 A first (the EV stops drawing),
  then the contactor's interlock is withdrawn and it opens, and only after
  that may the lock release the cable. The HAL refuses ``unlock()`` while the
  contactor is closed as well, so a welded contactor keeps the cable locked.
- Energy on: only through a held cable (locked, or tethered with no lock).
  Current is offered first, then the interlock allows power and the contactor
  closes. That the transaction is authorized is the machine's decision; that
  the cable is held is checked here again, so no caller can get it wrong.
"""

from __future__ import annotations

import logging

from hal.errors import InterlockError, LockRefused

log = logging.getLogger("agent.evse")


class EvseOutputs:
    """The output side of one EVSE's hardware (``hal.hardware.EvseHardware``), in the safe order."""

    def __init__(self, evse_id: int, *, hardware) -> None:
        self.evse_id = evse_id
        self.hw = hardware

    def __repr__(self) -> str:
        return f"<EvseOutputs {self.evse_id} {self.hw.contactor!r} {self.hw.lock!r}>"

    @property
    def cable_held(self) -> bool:
        """The cable is locked, or this EVSE has no lock to hold it (a tethered cable).

        Safety: no current is offered and the contactor stays open through a socket
        whose lock did not engage; the driver could pull a live plug.
        """
        return not getattr(self.hw.lock, "fitted", True) or self.hw.lock.locked

    async def lock_cable(self) -> bool:
        """Lock the cable in; True once the lock reads locked (False: it did not engage, fault raised)."""
        return await self.hw.lock.lock()

    async def release_cable(self) -> bool:
        """Unlock the cable; False if it did not move, or was refused because the contactor is (welded) closed."""
        try:
            return await self.hw.lock.unlock()
        except LockRefused as exc:
            log.error("EVSE %d: cable stays locked: %s", self.evse_id, exc)
            return False

    async def apply(self, *, offered_A: float, energy: bool) -> None:
        """Offer ``offered_A`` to the EV, and close the contactor if ``energy`` (open it otherwise).

        Both are withheld while the cable is not held, whatever the caller asks.
        """
        held = self.cable_held
        energy = energy and held
        self.hw.pilot.set_current_limit_A(offered_A if held else 0.0)
        if energy:
            self.hw.contactor.allow_power(True)
            if not self.hw.contactor.closed:
                try:
                    await self.hw.contactor.close()
                except InterlockError:
                    log.error("EVSE %d: interlock refused to close", self.evse_id)
        else:
            self.hw.contactor.allow_power(False)
            if self.hw.contactor.closed:
                await self.hw.contactor.open()

    async def make_safe(self, *, unlock: bool = False) -> None:
        """0 A, contactor open (and only then, if ``unlock``, release the cable)."""
        try:
            self.hw.pilot.set_current_limit_A(0)
        except Exception:
            # The contactor must still open even if the pilot cannot be told.
            log.exception("EVSE %d: cannot withdraw the current offer", self.evse_id)
        self.hw.contactor.allow_power(False)
        await self.hw.contactor.open()
        if unlock:
            await self.release_cable()
