"""GPIO contactor, locks and pilot on the fake backend, assembled into a Hal like the agent does."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from agent.config import GpioPinsConfig
from hal.hardware import EvseHardware, Hal
from hal.drivers.gpio_devices import (
    MOTOR_DEAD_TIME_S, GpioLock, GpioPinsError, GpioPilot, NoLock, build_gpio_evse,
    decode_pilot, gpio_pin_problems,
)
from hal.errors import HalError, HalStartError, InterlockError, LockRefused
from hal.events import PilotChanged, PilotState
from hal.gpio.fake import FakeGpioBackend
from hal.mock.devices import MockEnergyMeter
from tests.hal.helpers import faults_of

CONTACTOR, FEEDBACK, LOCK_A, LOCK_B, LOCK_FB, PLUG, CHARGE = 17, 27, 5, 6, 13, 20, 21
PULSE_MS = 40

MOTOR = GpioPinsConfig(
    contactor=CONTACTOR, contactor_feedback=FEEDBACK, lock_type="motor", lock_a=LOCK_A,
    lock_b=LOCK_B, lock_pulse_ms=PULSE_MS, lock_feedback=LOCK_FB, pilot_plug=PLUG,
    pilot_charge=CHARGE)
SOLENOID = dataclasses.replace(MOTOR, lock_type="solenoid", lock_b=None)
NO_LOCK = dataclasses.replace(MOTOR, lock_type="none", lock_a=None, lock_b=None,
                              lock_feedback=None)


def wire_healthy(fake: FakeGpioBackend, pins: GpioPinsConfig) -> None:
    """A contactor whose mirror contact follows after 5 ms and a lock that moves in 10 ms."""
    fake.wire(pins.contactor, pins.contactor_feedback, delay_s=0.005)
    if pins.lock_type == "motor":
        fake.wire(pins.lock_a, pins.lock_feedback, delay_s=0.01, latch=True)
        fake.wire(pins.lock_b, pins.lock_feedback, delay_s=0.01, latch=True, invert=True)
    elif pins.lock_type == "solenoid":
        fake.wire(pins.lock_a, pins.lock_feedback, delay_s=0.01)


@pytest.fixture
def fake() -> FakeGpioBackend:
    return FakeGpioBackend()


@pytest.fixture
async def make_station(fake, events):
    stations: list[Hal] = []

    async def make(pins: GpioPinsConfig = MOTOR, *, healthy: bool = True, **options) -> Hal:
        options.setdefault("contactor_feedback_timeout_s", 0.05)
        options.setdefault("lock_feedback_timeout_s", 0.1)
        contactor, lock, pilot = build_gpio_evse(1, pins, backend=fake, emit=events.append,
                                                 **options)
        if healthy:
            wire_healthy(fake, pins)
        meter = MockEnergyMeter(1, emit=events.append, clock=time.monotonic,
                                flowing=lambda: contactor.feedback_closed)
        station = Hal(evses=[EvseHardware(1, contactor, lock, meter, pilot)])
        await station.start()
        stations.append(station)
        return station

    yield make
    for station in stations:
        await station.close()


async def power_on(station: Hal) -> None:
    evse = station.evse(1)
    assert await evse.lock.lock()
    evse.contactor.allow_power(True)
    assert await evse.contactor.close()


def both_relays_on_ever(fake: FakeGpioBackend) -> bool:
    state = {LOCK_A: False, LOCK_B: False}
    for write in fake.history:
        if write.line in state:
            state[write.line] = write.value
            if all(state.values()):
                return True
    return False


def assert_outputs_safe(fake: FakeGpioBackend) -> None:
    for line in (CONTACTOR, LOCK_A, LOCK_B):
        values = fake.values(line)
        assert values and values[-1] is False, (line, values)


# ---------------------------------------------------------------- contactor


async def test_gpio_contactor_never_closes_without_interlock(make_station, fake):
    station = await make_station()
    with pytest.raises(InterlockError):
        await station.evse(1).contactor.close()
    assert True not in fake.values(CONTACTOR)
    assert fake.values(CONTACTOR)[0] is False  # set up open


async def test_gpio_contactor_closes_and_opens_with_healthy_feedback(make_station, fake, events):
    station = await make_station()
    contactor = station.evse(1).contactor
    contactor.allow_power(True)
    assert await contactor.close() is True
    assert contactor.feedback_closed
    contactor.allow_power(False)  # withdrawing permission opens at once
    assert fake.values(CONTACTOR)[-1] is False
    await asyncio.sleep(0.02)
    assert not contactor.feedback_closed and faults_of(events) == []
    assert "line=17 feedback_line=27" in repr(contactor)


async def test_gpio_contactor_welded_feedback_raises_fault(make_station, fake, events):
    station = await make_station()
    contactor = station.evse(1).contactor
    contactor.allow_power(True)
    await contactor.close()
    fake.stick(FEEDBACK, True)  # the contacts weld
    assert await contactor.open() is False
    assert faults_of(events) == [("raised", 1, "contactor-welded")]
    fake.unstick(FEEDBACK)
    await asyncio.sleep(0.02)  # the edge of the contact opening clears it
    assert faults_of(events)[-1] == ("cleared", 1, "contactor-welded")


async def test_gpio_contactor_weld_while_idle_is_seen_on_the_edge(make_station, fake, events):
    await make_station()
    fake.stick(FEEDBACK, True)
    await asyncio.sleep(0.01)
    assert faults_of(events) == [("raised", 1, "contactor-welded")]


async def test_gpio_contactor_stuck_open_raises_fault(make_station, fake, events):
    station = await make_station(healthy=False)
    contactor = station.evse(1).contactor
    contactor.allow_power(True)
    assert await contactor.close() is False
    assert faults_of(events) == [("raised", 1, "contactor-stuck-open")]


async def test_gpio_contactor_active_low_inverts_physical_levels(make_station, fake):
    pins = dataclasses.replace(MOTOR, contactor_active_high=False,
                               contactor_feedback_active_high=False)
    station = await make_station(pins)
    assert fake.levels(CONTACTOR)[0] is True  # open = high on an active-low relay board
    assert fake.level(FEEDBACK) is True  # pulled up = open
    await power_on(station)
    assert fake.level(CONTACTOR) is False and fake.level(FEEDBACK) is False


# --------------------------------------------------------------------- locks


async def test_gpio_lock_never_unlocks_while_contactor_closed(make_station, fake):
    station = await make_station()
    await power_on(station)
    writes = len(fake.history)
    with pytest.raises(LockRefused):
        await station.evse(1).lock.unlock()
    assert True not in fake.values(LOCK_B)
    assert fake.history[writes:] == []


async def test_gpio_lock_stays_locked_when_contactor_welded_at_safe_state(make_station, fake):
    station = await make_station()
    await power_on(station)
    fake.stick(FEEDBACK, True)
    await station.safe_state()
    assert fake.values(CONTACTOR)[-1] is False
    assert True not in fake.values(LOCK_B)
    assert station.evse(1).lock.locked


async def test_gpio_motor_lock_pulses_one_relay_then_releases(make_station, fake):
    station = await make_station()
    lock = station.evse(1).lock
    assert await lock.lock() is True
    assert lock.driving == LOCK_A and "driving=5" in repr(lock)
    await asyncio.sleep(PULSE_MS / 1000 + 0.02)
    assert lock.driving is None and lock.locked
    on = next(w for w in fake.history if w.line == LOCK_A and w.value)
    off = next(w for w in fake.history if w.line == LOCK_A and not w.value and w.t > on.t)
    assert off.t - on.t >= PULSE_MS / 1000 * 0.9
    assert await lock.unlock() is True
    await asyncio.sleep(PULSE_MS / 1000 + 0.02)
    assert fake.values(LOCK_B).count(True) == 1 and fake.values(LOCK_B)[-1] is False
    assert not both_relays_on_ever(fake)


async def test_gpio_motor_lock_reversal_mid_pulse_never_drives_both(make_station, fake):
    station = await make_station(dataclasses.replace(MOTOR, lock_pulse_ms=500))
    lock = station.evse(1).lock
    assert await lock.lock() is True  # feedback after 10 ms, pulse still running
    assert lock.driving == LOCK_A
    assert await lock.unlock() is True
    assert lock.driving == LOCK_B
    assert not both_relays_on_ever(fake)
    a_on = next(w for w in fake.history if w.line == LOCK_A and w.value)
    a_off = next(w for w in fake.history if w.line == LOCK_A and not w.value and w.t > a_on.t)
    b_on = next(w for w in fake.history if w.line == LOCK_B and w.value)
    assert b_on.t - a_off.t >= MOTOR_DEAD_TIME_S * 0.9


async def test_gpio_lock_jammed_raises_lock_failure(make_station, fake, events):
    station = await make_station(lock_feedback_timeout_s=0.02)
    fake.stick(LOCK_FB, False)
    assert await station.evse(1).lock.lock() is False
    assert faults_of(events) == [("raised", 1, "lock-failure")]
    assert fake.values(LOCK_A).count(True) == 3  # 1 + 2 retries


async def test_gpio_solenoid_lock_holds_its_output_while_locked(make_station, fake):
    station = await make_station(SOLENOID)
    lock = station.evse(1).lock
    assert isinstance(lock, GpioLock) and lock.kind == "solenoid"
    assert await lock.lock() is True
    await asyncio.sleep(0.05)
    assert fake.read(LOCK_A) is True and lock.locked
    assert await lock.unlock() is True
    assert fake.values(LOCK_A) == [False, True, False]


async def test_no_lock_succeeds_but_never_claims_locked(make_station, fake):
    station = await make_station(NO_LOCK)
    lock = station.evse(1).lock
    assert isinstance(lock, NoLock) and lock.fitted is False
    assert await lock.lock() is True and lock.locked is False
    station.evse(1).contactor.allow_power(True)
    await station.evse(1).contactor.close()
    with pytest.raises(LockRefused):
        await lock.unlock()
    await station.evse(1).contactor.open()
    assert await lock.unlock() is True
    assert set(fake.lines) == {CONTACTOR, FEEDBACK, PLUG, CHARGE}


# --------------------------------------------------------------- safe state


async def test_gpio_outputs_safe_after_exception_mid_session(make_station, fake):
    station = await make_station()
    with pytest.raises(RuntimeError, match="session crashed"):
        try:
            await power_on(station)
            raise RuntimeError("session crashed")
        finally:
            await station.close()
    assert_outputs_safe(fake)
    assert fake.lines == () and not station.started
    assert set(fake.released) == {CONTACTOR, FEEDBACK, LOCK_A, LOCK_B, LOCK_FB, PLUG, CHARGE}


async def test_gpio_safe_state_opens_contactor_then_unlocks(make_station, fake):
    station = await make_station()
    await power_on(station)
    await station.safe_state()
    assert fake.read(CONTACTOR) is False and fake.read(FEEDBACK) is False
    assert not station.evse(1).lock.locked
    contactor_off = [w for w in fake.history if w.line == CONTACTOR][-1]
    unlock_on = next(w for w in fake.history if w.line == LOCK_B and w.value)
    assert contactor_off.t <= unlock_on.t
    await asyncio.sleep(PULSE_MS / 1000 + 0.02)
    assert_outputs_safe(fake)


async def test_gpio_safe_state_opens_contactor_even_if_lock_driver_fails(make_station, fake):
    station = await make_station()
    await power_on(station)
    fake.fail_writes.update({LOCK_A, LOCK_B})
    await station.safe_state()
    assert fake.read(CONTACTOR) is False


async def test_gpio_close_releases_outputs_at_safe_level(make_station, fake):
    station = await make_station(dataclasses.replace(MOTOR, lock_active_high=False))
    await power_on(station)
    await station.close()
    assert fake.levels(LOCK_A)[-1] is True  # active-low relay off
    assert set(fake.released) == {CONTACTOR, FEEDBACK, LOCK_A, LOCK_B, LOCK_FB, PLUG, CHARGE}


async def test_gpio_start_failure_releases_what_was_set_up(fake, events):
    fake.setup_input(FEEDBACK)  # someone else holds the feedback line
    contactor, lock, pilot = build_gpio_evse(1, MOTOR, backend=fake, emit=events.append)
    meter = MockEnergyMeter(1, emit=events.append, clock=time.monotonic, flowing=lambda: False)
    station = Hal(evses=[EvseHardware(1, contactor, lock, meter, pilot)])
    with pytest.raises(HalStartError, match="already set up"):
        await station.start()
    assert CONTACTOR in fake.released and fake.values(CONTACTOR) == [False, False]
    assert fake.lines == (FEEDBACK,)


# --------------------------------------------------------------------- pilot


def test_decode_pilot_table():
    assert decode_pilot(False, False) is PilotState.A
    assert decode_pilot(True, False) is PilotState.B
    assert decode_pilot(True, True) is PilotState.C
    assert decode_pilot(False, True) is None


async def test_gpio_pilot_maps_inputs_and_emits_only_on_change(make_station, fake, events):
    station = await make_station()
    pilot = station.evse(1).pilot
    for plug, charge in [(True, False), (True, False), (True, True), (True, True), (False, False)]:
        fake.set_input(PLUG, plug)
        fake.set_input(CHARGE, charge)
        await asyncio.sleep(0.005)
    changes = [e.state for e in events if isinstance(e, PilotChanged)]
    assert changes == [PilotState.B, PilotState.C, PilotState.A]
    assert pilot.state is PilotState.A


async def test_gpio_pilot_active_low_inputs(make_station, fake, events):
    station = await make_station(dataclasses.replace(MOTOR, pilot_active_high=False))
    assert fake.level(PLUG) is True  # pulled up = inactive
    fake.set_input(PLUG, False, physical=True)
    await asyncio.sleep(0.005)
    assert station.evse(1).pilot.state is PilotState.B


async def test_gpio_pilot_reports_an_ev_plugged_before_start(fake, events):
    pilot = GpioPilot(1, emit=events.append, backend=fake, plug_line=PLUG, charge_line=CHARGE)
    fake.stick(PLUG, True)
    await pilot.start()
    assert pilot.state is PilotState.B
    assert events == [PilotChanged(1, PilotState.B)]
    await pilot.stop()


async def test_gpio_pilot_disagreement_is_F_only_when_it_persists(make_station, fake, events):
    station = await make_station()
    pilot = station.evse(1).pilot
    fake.set_input(CHARGE, True)  # charge edge first, plug follows 10 ms later
    await asyncio.sleep(0.01)
    fake.set_input(PLUG, True)
    await asyncio.sleep(0.08)
    assert [e.state for e in events if isinstance(e, PilotChanged)] == [PilotState.C]
    fake.set_input(PLUG, False)  # a broken plug comparator: charge without plug
    await asyncio.sleep(0.08)
    assert pilot.state is PilotState.F


async def test_gpio_pilot_current_limit_is_recorded_not_driven(make_station, fake):
    station = await make_station()
    pilot = station.evse(1).pilot
    writes = len(fake.history)
    assert pilot.set_current_limit_A(16) == 16 and pilot.current_limit_A == 16
    assert pilot.set_current_limit_A(0) == 0
    assert pilot.controls_current is False
    assert fake.history[writes:] == []


# ------------------------------------------------------------------- factory


def test_build_gpio_evse_refuses_missing_feedback_naming_the_key():
    pins = dataclasses.replace(MOTOR, contactor_feedback=None)
    with pytest.raises(GpioPinsError, match=r"EVSE 3: gpio\.contactor_feedback: required") as info:
        build_gpio_evse(3, pins, backend=FakeGpioBackend(), emit=lambda e: None)
    assert isinstance(info.value, HalError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("pins, key", [
    (dataclasses.replace(MOTOR, lock_b=None), "lock_b"),
    (dataclasses.replace(MOTOR, lock_feedback=None), "lock_feedback"),
    (dataclasses.replace(MOTOR, lock_pulse_ms=0), "lock_pulse_ms"),
    (dataclasses.replace(SOLENOID, lock_b=6), "lock_b"),
    (dataclasses.replace(NO_LOCK, lock_a=5), "lock_a"),
    (dataclasses.replace(MOTOR, pilot_charge=None), "pilot_charge"),
    (dataclasses.replace(MOTOR, lock_feedback=FEEDBACK), "lock_feedback"),
    (GpioPinsConfig(), "contactor"),
])
def test_gpio_pin_problems_name_the_key(pins, key):
    assert key in [k for k, _ in gpio_pin_problems(pins)]
    with pytest.raises(GpioPinsError, match=f"gpio.{key}"):
        build_gpio_evse(1, pins, backend=FakeGpioBackend(), emit=lambda e: None)


def test_build_gpio_evse_touches_no_line_before_start():
    fake = FakeGpioBackend()
    build_gpio_evse(1, MOTOR, backend=fake, emit=lambda e: None)
    assert fake.lines == () and fake.history == []


# ------------------------------------------------- feedback supervision on edge events

async def test_gpio_lock_letting_go_while_locked_raises_lock_failure_on_the_edge(make_station, fake, events):
    station = await make_station()
    await power_on(station)
    fake.stick(LOCK_FB, False)  # the position switch opens while the cable must be held
    let_go = time.monotonic()
    while not faults_of(events):
        assert time.monotonic() - let_go < 1.0, "no lock-failure within 1 s"
        await asyncio.sleep(0.001)
    assert faults_of(events) == [("raised", 1, "lock-failure")]
    assert fake.values(LOCK_A).count(True) == 1  # noticed without driving the lock again
    fake.unstick(LOCK_FB)
    fake.set_input(LOCK_FB, True)  # back in place
    await asyncio.sleep(0.01)
    assert faults_of(events)[-1] == ("cleared", 1, "lock-failure")


async def test_gpio_contactor_dropping_out_while_closed_raises_stuck_open_on_the_edge(make_station, fake, events):
    station = await make_station()
    await power_on(station)
    fake.stick(FEEDBACK, False)  # the mirror contact opens with no command (coil supply lost)
    dropped = time.monotonic()
    while not faults_of(events):
        assert time.monotonic() - dropped < 1.0, "no contactor fault within 1 s"
        await asyncio.sleep(0.001)
    assert faults_of(events) == [("raised", 1, "contactor-stuck-open")]
    assert station.evse(1).contactor.closed  # the role reports; the EVSE machine decides what to do
