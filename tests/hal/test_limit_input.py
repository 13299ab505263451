"""The external limit input: the role's contract, the GPIO driver on edges, the mock and its control."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import pytest

from agent.config import ExternalLimitConfig, GpioPinsConfig, parse_config
from hal.drivers.gpio_limit_input import GpioLimitInput, limit_input_problems
from hal.errors import SimulationError
from hal.gpio.fake import FakeGpioBackend
from hal.mock.client import UsageError, parse_sim_args, request
from hal.mock.control import MockControlServer, socket_path
from hal.mock.devices import MockEnergyMeter, MockLimitInput
from hal.registry import build_hal
from hal.roles import ExternalLimit, ExternalLimitChanged, LimitInput
from hal.roles.limit_input import check_limit

LINE = 16
BLOCK = ExternalLimit(limit_A=0.0, source="SO", grid_critical=True)
SIX_AMPS = ExternalLimit(limit_A=6.0, source="EMS", evse_id=2)


class CountingFake(FakeGpioBackend):
    """The fake backend, counting every read of a line's level: polling would show up here."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def _read(self, line):
        self.reads += 1
        return super()._read(line)


def limit_events(events: list) -> list[tuple[bool, float]]:
    return [(e.active, e.limit.limit_A) for e in events if isinstance(e, ExternalLimitChanged)]


async def settle() -> None:
    """Let the fake backend's edge (posted with call_soon_threadsafe) reach the callbacks."""
    for _ in range(3):
        await asyncio.sleep(0)


@pytest.fixture
async def gpio_input(events):
    fake = CountingFake()
    device = GpioLimitInput(emit=events.append, limit=BLOCK, backend=fake, line=LINE)
    await device.start()
    yield device, fake
    await device.stop()


# -- the role ------------------------------------------------------------------------------------------------


def test_limit_input_role_emits_only_on_a_real_change(events):
    class Contact(LimitInput):
        async def _start(self):
            pass

    contact = Contact(emit=events.append, limit=SIX_AMPS)
    assert (contact.active, contact.imposed, contact.evse_id) == (False, None, 2)
    assert contact._set_active(True) and not contact._set_active(True)
    assert contact.imposed == SIX_AMPS
    assert contact._set_active(False)
    assert events == [ExternalLimitChanged(SIX_AMPS, True), ExternalLimitChanged(SIX_AMPS, False)]
    assert "inactive limit=6A source=EMS" in repr(contact)


@pytest.mark.parametrize("limit, error", [
    (ExternalLimit(limit_A=-1.0), "limit_A must be a finite number >= 0"),
    (ExternalLimit(limit_A=float("nan")), "limit_A must be a finite number >= 0"),
    (ExternalLimit(limit_A=6.0, source="CSO"), "source must be one of EMS, SO, Other"),
    (ExternalLimit(limit_A=6.0, evse_id=0), "evse_id must be None"),
])
def test_limit_input_rejects_unusable_limits(limit, error):
    with pytest.raises(ValueError, match=error):
        check_limit(limit)


# -- the GPIO driver -----------------------------------------------------------------------------------------


async def test_limit_input_gpio_edges_raise_and_lift_the_limit(gpio_input, events):
    device, fake = gpio_input
    assert limit_events(events) == []  # inactive at start: nothing to report
    fake.set_input(LINE, True)
    await settle()
    assert device.active and limit_events(events) == [(True, 0.0)]
    fake.set_input(LINE, False)
    await settle()
    assert not device.active and limit_events(events) == [(True, 0.0), (False, 0.0)]


async def test_limit_input_gpio_uses_edges_not_polling(gpio_input, events):
    device, fake = gpio_input
    tasks = len(asyncio.all_tasks())
    reads = fake.reads
    await asyncio.sleep(0.2)  # idle: a polling driver would read the line here
    assert fake.reads == reads and len(asyncio.all_tasks()) == tasks
    assert len(fake._lines[LINE].callbacks) == 1  # watched through the backend's edge callback
    fake.set_input(LINE, True)
    await settle()
    assert device.active and fake.reads == reads + 1  # one read, to judge the edge


async def test_limit_input_gpio_reports_a_contact_active_at_start(events):
    fake = FakeGpioBackend()
    fake.stick(LINE, True)  # the receiver already blocks when the agent starts
    device = GpioLimitInput(emit=events.append, limit=BLOCK, backend=fake, line=LINE)
    await device.start()
    try:
        assert device.active and limit_events(events) == [(True, 0.0)]
    finally:
        await device.stop()
    assert fake.released == [LINE]


async def test_limit_input_gpio_active_low_contact_pulls_down(events):
    fake = FakeGpioBackend()
    device = GpioLimitInput(emit=events.append, limit=BLOCK, backend=fake, line=LINE, active_high=False)
    await device.start()
    try:
        assert fake.level(LINE) is True and not device.active  # pulled up: a cut wire reads inactive
        fake.set_input(LINE, False, physical=True)  # the relay contact closes to ground
        await settle()
        assert device.active
    finally:
        await device.stop()


def test_limit_input_gpio_problems_name_the_key():
    pins = GpioPinsConfig(contactor=17, contactor_feedback=27, pilot_plug=5, pilot_charge=6)
    evse = type("Evse", (), {"gpio": pins})()
    assert limit_input_problems(ExternalLimitConfig(), [evse]) == [
        ("gpio", 'required with hal.backend = "raspberry-pi": the input line of the contact')]
    assert limit_input_problems(ExternalLimitConfig(gpio=27), [evse]) == [
        ("gpio", "line 27 is already used by evse[0].gpio.contactor_feedback")]
    assert limit_input_problems(ExternalLimitConfig(gpio=LINE), [evse]) == []


async def test_limit_input_registry_builds_the_gpio_driver(tmp_path, monkeypatch, events):
    fake = FakeGpioBackend()
    monkeypatch.setattr("hal.gpio.open_backend", lambda name, **options: fake)

    async def mock_meter(evse, emit):  # the meter is not under test here
        return MockEnergyMeter(evse.id, emit=emit, clock=time.monotonic, flowing=lambda: False), lambda: None

    monkeypatch.setattr("hal.registry.build_meter", mock_meter)
    monkeypatch.setattr("hal.registry.build_token_reader", lambda rfid, emit: None)
    config = parse_config({
        "station": {"id": "CP1", "data_dir": str(tmp_path)}, "csms": {"url": "ws://127.0.0.1:9/ocpp"},
        "evse": [{"id": 1, "gpio": {"contactor": 17, "contactor_feedback": 27, "pilot_plug": 5, "pilot_charge": 6},
                  "meter": {"driver": "modbus", "port": "/dev/null"}}],
        "hal": {"backend": "raspberry-pi", "rfid": {"driver": "rdm6300", "port": "/dev/null"},
                "external_limit": {"gpio": LINE, "active_high": False, "limit_A": 6.0, "source": "SO"}},
    })
    hal = await build_hal(config, emit=events.append)
    try:
        device = hal.limit_input
        assert isinstance(device, GpioLimitInput) and device in list(hal.devices())
        assert (device.line, device.active_high, device.limit) == (LINE, False, ExternalLimit(6.0, "SO"))
        await hal.start(only=[device])
        fake.set_input(LINE, True)
        await settle()
        assert limit_events(events) == [(True, 6.0)]
    finally:
        await hal.close()
    assert LINE in fake.released


# -- the mock and its control socket -------------------------------------------------------------------------


async def test_limit_input_mock_hal_drives_and_records(make_hal, events):
    hal = make_hal(external_limit=SIX_AMPS)
    await hal.start()
    try:
        assert isinstance(hal.limit_input, MockLimitInput)
        assert hal.set_external_limit(True) and not hal.set_external_limit(True)
        assert hal.external_limit_snapshot() == {"active": True, "limit_A": 6.0, "source": "EMS", "evse": 2}
        hal.set_external_limit(False)
        assert limit_events(events) == [(True, 6.0), (False, 6.0)]
        assert hal.recorder.values("external_limit") == [True, False]
    finally:
        await hal.close()


async def test_limit_input_mock_hal_without_one(hal):
    assert hal.limit_input is None and hal.external_limit_snapshot() is None
    with pytest.raises(SimulationError, match=r"configure \[hal.external_limit\]"):
        hal.set_external_limit(True)
    with pytest.raises(ValueError, match="unknown EVSE 3"):
        type(hal)(evse_ids=[1], data_dir=hal._registers.path.parent, emit=lambda e: None,
                  external_limit=dataclasses.replace(SIX_AMPS, evse_id=3))


async def test_limit_input_control_socket_command_and_state(make_hal, short_dir, events):
    hal = make_hal(external_limit=BLOCK)
    await hal.start()
    control = MockControlServer(hal, socket_path(short_dir))
    await control.start()
    try:
        answer = await asyncio.to_thread(request, control.path, {"cmd": "external_limit", "active": True})
        assert answer == {"ok": True, "external_limit": {"active": True, "limit_A": 0.0, "source": "SO",
                                                         "evse": None}}
        assert limit_events(events) == [(True, 0.0)]
        state = await asyncio.to_thread(request, control.path, {"cmd": "state"})
        assert state["external_limit"]["active"] is True
        bad = control.answer(json.dumps({"cmd": "external_limit", "active": "yes"}))
        assert bad == {"ok": False, "error": '"active" must be true or false, not "yes"'}
        assert "unknown field(s)" in control.answer(b'{"cmd": "external_limit", "active": true, "evse": 1}')["error"]
    finally:
        await control.close()
        await hal.close()


async def test_limit_input_control_without_input_is_an_error(hal, short_dir):
    control = MockControlServer(hal, socket_path(short_dir))
    answer = control.answer(b'{"cmd": "external_limit", "active": true}')
    assert answer["ok"] is False and "no external limit input" in answer["error"]
    assert control.answer(b'{"cmd": "state"}')["external_limit"] is None


def test_limit_input_sim_grammar():
    assert parse_sim_args(["external-limit", "on"]) == {"cmd": "external_limit", "active": True}
    assert parse_sim_args(["external-limit", "off"]) == {"cmd": "external_limit", "active": False}
    with pytest.raises(UsageError, match="expected 'on' or 'off'"):
        parse_sim_args(["external-limit", "maybe"])
    with pytest.raises(UsageError, match="expected 'external-limit on|off'"):
        parse_sim_args(["external-limit"])
