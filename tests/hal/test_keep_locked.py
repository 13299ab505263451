"""``Hal.keep_locked``: the safe state leaves the cables of a restart that resumes its transactions
locked, opening their contactors all the same; anything wrong with the answer unlocks as always."""

from __future__ import annotations


async def charge(hal, evse: int) -> None:
    """Lock, offer 32 A and close the contactor of ``evse``, as a charging session would."""
    hw = hal.evses[evse]
    await hw.lock.lock()
    hw.pilot.set_current_limit_A(32)
    hw.contactor.allow_power(True)
    await hw.contactor.close()


async def test_hal_safe_state_keeps_the_asked_cables_locked_with_the_contactor_open(hal):
    await charge(hal, 1)
    await charge(hal, 2)
    hal.keep_locked = lambda: [1]
    await hal.safe_state()
    one, two = hal.evses[1], hal.evses[2]
    assert one.lock.locked and not one.contactor.closed and one.pilot.current_limit_A == 0
    assert not two.lock.locked and not two.contactor.closed


async def test_hal_safe_state_unlocks_all_when_keep_locked_fails(hal, caplog):
    await charge(hal, 1)

    def broken():
        raise RuntimeError("store gone")

    hal.keep_locked = broken
    await hal.safe_state()  # never raises
    assert not hal.evses[1].lock.locked and not hal.evses[1].contactor.closed
    assert "cannot tell which cables to keep locked" in caplog.text
