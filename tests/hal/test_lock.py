"""Connector lock contract: the contactor interlock, bounded retries, lock-failure events."""

import asyncio

import pytest

from hal.errors import LockRefused
from tests.hal.helpers import FEEDBACK_TIMEOUT_S, faults_of


async def test_lock_locks_and_unlocks_with_feedback(hal, events):
    lock = hal.evses[1].lock
    assert await lock.lock() is True and lock.locked
    assert await lock.unlock() is True and not lock.locked
    assert hal.recorder.values("evse1.lock") == [True, False]
    assert faults_of(events) == []


async def test_lock_unlock_refused_while_contactor_commanded_closed(hal):
    evse = hal.evses[1]
    await evse.lock.lock()
    evse.contactor.allow_power(True)
    await evse.contactor.close()
    with pytest.raises(LockRefused, match="contactor is closed"):
        await evse.lock.unlock()
    with pytest.raises(PermissionError):
        await evse.lock.unlock()
    assert evse.lock.locked
    assert hal.recorder.values("evse1.lock") == [True]


async def test_lock_unlock_refused_while_contactor_welded(hal):
    evse = hal.evses[1]
    await evse.lock.lock()
    hal.inject_fault(1, "contactor-welded")
    assert not evse.contactor.closed and evse.contactor.feedback_closed
    with pytest.raises(LockRefused):
        await evse.lock.unlock()
    assert evse.lock.locked


async def test_lock_failure_emitted_once_after_bounded_retries(hal, events):
    lock = hal.evses[1].lock
    hal.inject_fault(1, "lock-failure")
    assert await lock.lock() is False
    assert lock.drive_count == 1 + lock.retries == 3
    assert not lock.locked and lock.commanded is True
    assert faults_of(events) == [("raised", 1, "lock-failure")]
    assert events[-1].stops_charging is True


async def test_lock_failure_takes_bounded_time(hal):
    hal.inject_fault(1, "lock-failure")
    loop_time = asyncio.get_running_loop().time
    started = loop_time()
    await hal.evses[1].lock.lock()
    elapsed = loop_time() - started
    assert 3 * FEEDBACK_TIMEOUT_S * 0.9 <= elapsed < 3 * FEEDBACK_TIMEOUT_S + 0.5


async def test_lock_failure_clear_emits_fault_cleared(hal, events):
    lock = hal.evses[1].lock
    hal.inject_fault(1, "lock-failure")
    await lock.lock()
    hal.clear_fault(1, "lock-failure")
    assert lock.locked  # freed, it reaches the driven position
    assert faults_of(events) == [("raised", 1, "lock-failure"), ("cleared", 1, "lock-failure")]


async def test_lock_success_after_failure_clears_fault(hal, events):
    lock = hal.evses[1].lock
    hal.inject_fault(1, "lock-failure")
    await lock.unlock()  # already unlocked: the feedback agrees, no fault
    assert faults_of(events) == []
    assert await lock.lock() is False
    lock._jammed = False  # freed, as seen by a driver with no feedback edge callback
    assert await lock.lock() is True
    assert faults_of(events) == [("raised", 1, "lock-failure"), ("cleared", 1, "lock-failure")]


async def test_lock_repr_shows_position_and_command(hal):
    lock = hal.evses[1].lock
    assert "unlocked commanded=none" in repr(lock)
    await lock.lock()
    assert "locked commanded=locked" in repr(lock)


# -- supervision: the lock is watched all the time, not only while it moves ------------

async def test_lock_letting_go_while_locked_is_a_fault_at_once(hal, events):
    lock = hal.evses[1].lock
    assert await lock.lock() is True
    hal.inject_fault(1, "lock-failure")  # a lock that lets go: its switch reads unlocked
    assert not lock.locked and lock.commanded is True
    assert faults_of(events) == [("raised", 1, "lock-failure")]
    assert "reads unlocked while commanded locked" in events[-1].info  # judged from the feedback
    assert lock.drive_count == 1  # found by supervision, not by a command
    hal.clear_fault(1, "lock-failure")
    assert lock.locked
    assert faults_of(events) == [("raised", 1, "lock-failure"), ("cleared", 1, "lock-failure")]


async def test_lock_failure_injected_while_unlocked_shows_at_the_next_lock(hal, events):
    lock = hal.evses[1].lock
    await lock.unlock()
    hal.inject_fault(1, "lock-failure")  # nothing moves: the feedback agrees with the command
    assert faults_of(events) == []
    assert await lock.lock() is False
    assert faults_of(events) == [("raised", 1, "lock-failure")]


async def test_lock_feedback_before_any_command_is_not_judged(hal, events):
    lock = hal.evses[1].lock
    lock._position = True  # e.g. a cable left locked over a restart
    lock._on_feedback_changed()
    assert faults_of(events) == []
