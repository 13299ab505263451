"""Contactor contract: the interlock, feedback supervision and fault events."""

import asyncio

import pytest

from hal.errors import InterlockError
from hal.roles import Contactor
from tests.hal.helpers import faults_of


def contactor_writes(hal, evse=1):
    return hal.recorder.values(f"evse{evse}.contactor")


async def test_contactor_never_closes_without_allow_power(hal):
    contactor = hal.evses[1].contactor
    with pytest.raises(InterlockError, match="power not allowed"):
        await contactor.close()
    with pytest.raises(PermissionError):
        await contactor.close()
    assert not contactor.closed and not contactor.feedback_closed
    assert contactor_writes(hal) == []


async def test_contactor_closes_when_allowed_and_feedback_confirms(hal, events):
    contactor = hal.evses[1].contactor
    contactor.allow_power(True)
    assert await contactor.close() is True
    assert contactor.closed and contactor.feedback_closed
    assert await contactor.open() is True
    assert contactor_writes(hal) == [True, False]
    assert faults_of(events) == []


async def test_contactor_withdrawing_power_opens_at_once(hal):
    contactor = hal.evses[1].contactor
    contactor.allow_power(True)
    await contactor.close()
    contactor.allow_power(False)
    assert not contactor.closed and not contactor.feedback_closed
    assert contactor_writes(hal) == [True, False]
    with pytest.raises(InterlockError):
        await contactor.close()


async def test_contactor_weld_while_idle_raises_fault_and_clear_clears_it(hal, events):
    hal.inject_fault(1, "contactor-welded")
    assert hal.evses[1].contactor.feedback_closed
    assert faults_of(events) == [("raised", 1, "contactor-welded")]
    raised = events[-1]
    assert raised.stops_charging is True
    hal.clear_fault(1, "contactor-welded")
    assert faults_of(events)[-1] == ("cleared", 1, "contactor-welded")
    assert hal.evses[1].contactor.faults == frozenset()


async def test_contactor_weld_while_closed_detected_on_open(hal, events):
    contactor = hal.evses[1].contactor
    contactor.allow_power(True)
    await contactor.close()
    hal.inject_fault(1, "contactor-welded")
    assert faults_of(events) == []  # closed and reading closed: nothing to see yet
    assert await contactor.open() is False
    assert faults_of(events) == [("raised", 1, "contactor-welded")]
    assert await contactor.open() is False
    assert len(faults_of(events)) == 1  # a persisting fault is not reported twice


async def test_contactor_weld_not_cleared_by_closing_again(hal, events):
    contactor = hal.evses[1].contactor
    hal.inject_fault(1, "contactor-welded")
    contactor.allow_power(True)
    assert await contactor.close() is True
    assert contactor.faults == {"contactor-welded"}
    await contactor.open()
    hal.clear_fault(1, "contactor-welded")
    assert faults_of(events) == [("raised", 1, "contactor-welded"),
                                 ("cleared", 1, "contactor-welded")]


async def test_contactor_stuck_open_when_power_path_tripped(hal, events):
    contactor = hal.evses[1].contactor
    hal.inject_fault(1, "rcd-trip")
    contactor.allow_power(True)
    assert await contactor.close() is False
    assert faults_of(events) == [("raised", 1, "rcd-trip"), ("raised", 1, "contactor-stuck-open")]
    assert await contactor.open() is True
    assert faults_of(events)[-1] == ("cleared", 1, "contactor-stuck-open")


async def test_contactor_start_detects_a_weld_present_at_boot(make_hal, events):
    station = make_hal()
    station.evses[1].contactor.set_welded(True)
    await station.start()
    try:
        assert ("raised", 1, "contactor-welded") in faults_of(events)
    finally:
        await station.close()


class SlowContactor(Contactor):
    """A driver whose mirror contact follows the coil after a delay, like a real one."""

    def __init__(self, *, delay_s, **options):
        super().__init__(1, **options)
        self.delay_s = delay_s
        self.output = False
        self.feedback = False

    def _set_output(self, closed):
        self.output = closed
        asyncio.get_running_loop().call_later(self.delay_s, self._follow, closed)

    def _follow(self, closed):
        self.feedback = closed
        self._on_feedback_changed()

    def _read_feedback(self):
        return self.feedback


async def test_contactor_waits_for_slow_feedback_without_fault():
    events = []
    contactor = SlowContactor(delay_s=0.02, emit=events.append, feedback_timeout_s=0.5)
    contactor.allow_power(True)
    assert await contactor.close() is True
    assert await contactor.open() is True
    assert events == []


async def test_contactor_open_supersedes_a_pending_close_without_fault():
    events = []
    contactor = SlowContactor(delay_s=0.05, emit=events.append, feedback_timeout_s=0.2)
    contactor.allow_power(True)
    closing = asyncio.create_task(contactor.close())
    await asyncio.sleep(0.01)
    assert await contactor.open() is True  # the late "closed" edge is not judged as a weld
    assert await closing is False  # superseded: its feedback never settled on closed
    assert not contactor.output and not contactor.feedback
    assert events == []


async def test_contactor_repr_shows_live_state(hal):
    contactor = hal.evses[1].contactor
    assert repr(contactor).startswith("<MockContactor evse=1 open feedback=open power=denied")
    contactor.allow_power(True)
    await contactor.close()
    assert "closed feedback=closed power=allowed" in repr(contactor)
