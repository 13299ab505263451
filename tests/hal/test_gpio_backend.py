"""GPIO backends: the base contract on the fake, RPi.GPIO and gpiod on call-recording stubs."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys
import threading
import types
from datetime import timedelta
from enum import Enum
from pathlib import Path

import pytest

from hal.errors import HalError, HalStartError
from hal.gpio import (
    GpioClosed, GpioError, GpioLibraryMissing, GpioLineError, UnknownGpioBackend, open_backend,
)
from hal.gpio.fake import FakeGpioBackend

REPO = Path(__file__).resolve().parents[2]


async def settle(seconds: float = 0.0) -> None:
    """Let call_soon/call_later callbacks run."""
    await asyncio.sleep(seconds)
    await asyncio.sleep(0)


# ------------------------------------------------------------ registry


def test_open_backend_unknown_name_lists_valid_ones():
    with pytest.raises(UnknownGpioBackend, match="valid: rpi-gpio, gpiod, fake") as info:
        open_backend("gpio-d")
    assert "did you mean 'gpiod'" in str(info.value)
    assert isinstance(info.value, HalError) and isinstance(info.value, LookupError)
    assert repr(open_backend("fake")) == "<FakeGpioBackend no lines>"


def test_gpio_modules_import_without_touching_hardware_libraries():
    code = ("import sys, hal.gpio, hal.gpio.rpi_gpio, hal.gpio.gpiod_backend, hal.gpio.fake, "
            "hal.drivers.gpio_devices\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in ('RPi', 'gpiod')], "
            "sorted(sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------- base contract (fake)


def test_gpio_backend_output_starts_at_safe_level_and_history_records_it():
    fake = FakeGpioBackend()
    fake.setup_output(17, initial=False)
    fake.write(17, True)
    assert fake.values(17) == [False, True]
    assert fake.read(17) is True
    assert [w.t for w in fake.history] == sorted(w.t for w in fake.history)


def test_gpio_backend_active_low_inverts_physical_levels():
    fake = FakeGpioBackend()
    fake.setup_output(17, initial=False, active_high=False)
    assert fake.level(17) is True  # off = high on an active-low relay board
    fake.write(17, True)
    assert fake.levels(17) == [True, False]
    assert fake.values(17) == [False, True]
    fake.setup_input(27, pull="up", active_high=False)
    assert fake.read(27) is False  # pulled up = inactive
    fake.set_input(27, True)
    assert fake.level(27) is False and fake.read(27) is True


def test_gpio_backend_release_drives_output_safe_first():
    fake = FakeGpioBackend()
    fake.setup_output(17, initial=False, active_high=False)
    fake.write(17, True)
    fake.release(17)
    assert fake.history[-1].value is False and fake.history[-1].level is True
    assert fake.released == [17] and fake.lines == ()
    fake.release(17)  # twice is harmless


def test_gpio_backend_close_drives_every_output_safe_before_any_release():
    fake = FakeGpioBackend()
    fake.setup_output(17, initial=False)
    fake.setup_output(5, initial=False)
    fake.setup_input(27)
    fake.write(17, True)
    fake.write(5, True)
    fake.fail_writes.add(5)  # one broken driver does not stop the others
    seen = []
    original = fake._release

    def release(line, output):
        seen.append({line: fake._levels[line] for line in (17, 5) if line in fake._levels})
        original(line, output)

    fake._release = release
    fake.close()
    assert seen[0] == {17: False, 5: True}
    assert sorted(fake.released) == [5, 17, 27]
    assert fake.closed and repr(fake) == "<FakeGpioBackend closed>"
    fake.close()  # idempotent
    with pytest.raises(GpioClosed):
        fake.write(17, True)


def test_gpio_backend_refuses_misuse():
    fake = FakeGpioBackend()
    fake.setup_input(27)
    with pytest.raises(GpioLineError, match="is an input"):
        fake.write(27, True)
    with pytest.raises(GpioLineError, match="already set up"):
        fake.setup_output(27, initial=False)
    with pytest.raises(GpioLineError, match="not set up"):
        fake.read(4)
    with pytest.raises(ValueError, match="pull"):
        fake.setup_input(4, pull="sideways")
    with pytest.raises(ValueError, match="debounce_ms"):
        fake.setup_input(4, debounce_ms=-1)
    with pytest.raises(GpioLineError):
        fake.setup_output(True, initial=False)
    assert issubclass(GpioLineError, GpioError) and issubclass(GpioError, HalError)


def test_gpio_backend_edge_callback_needs_the_running_loop():
    fake = FakeGpioBackend()
    fake.setup_input(27)
    with pytest.raises(GpioError, match="event loop"):
        fake.add_edge_callback(27, lambda line, value: None)


async def test_gpio_backend_edge_from_another_thread_runs_on_loop_thread():
    fake = FakeGpioBackend()
    fake.setup_input(27)
    calls = []
    fake.add_edge_callback(27, lambda line, value: calls.append(
        (line, value, threading.current_thread() is threading.main_thread())))
    thread = threading.Thread(target=fake.set_input, args=(27, True))
    thread.start()
    thread.join()
    await settle()
    assert calls == [(27, True, True)]


async def test_gpio_backend_edges_ending_at_the_reported_value_are_coalesced():
    fake = FakeGpioBackend()
    fake.setup_input(27)
    calls = []
    fake.add_edge_callback(27, lambda line, value: calls.append(value))
    fake.set_input(27, True)
    fake.set_input(27, False)  # a glitch: both edges are judged after it ended
    await settle()
    assert calls == []
    fake.set_input(27, True)
    await settle()
    assert calls == [True]


async def test_gpio_backend_failing_callback_does_not_stop_the_others(caplog):
    fake = FakeGpioBackend()
    fake.setup_input(27)
    calls = []

    def broken(line, value):
        raise RuntimeError("consumer bug")

    fake.add_edge_callback(27, broken)
    fake.add_edge_callback(27, lambda line, value: calls.append(value))
    fake.set_input(27, True)
    await settle()
    assert calls == [True]
    assert "consumer bug" in caplog.text


async def test_fake_wiring_follows_after_delay_and_stick_freezes():
    fake = FakeGpioBackend()
    fake.setup_output(17, initial=False)
    fake.setup_input(27)
    fake.wire(17, 27, delay_s=0.01)
    fake.write(17, True)
    assert fake.read(27) is False
    await settle(0.03)
    assert fake.read(27) is True
    fake.stick(27, True)
    fake.write(17, False)
    await settle(0.03)
    assert fake.read(27) is True  # welded
    fake.unstick(27)
    await settle(0.03)
    assert fake.read(27) is False


# ------------------------------------------------------------ RPi.GPIO stub


@pytest.mark.parametrize("backend, module, extra", [
    ("rpi-gpio", "RPi", r"ocpp-agent\[pi\]"), ("gpiod", "gpiod", r"ocpp-agent\[pi5\]")])
def test_missing_library_gives_install_hint(monkeypatch, backend, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # the import raises ImportError
    with pytest.raises(GpioLibraryMissing, match=extra) as info:
        open_backend(backend)
    assert isinstance(info.value, HalError) and isinstance(info.value, ImportError)


class RpiStub:
    """Records RPi.GPIO calls; inputs are levels the test sets; edges are fired by the test."""

    BCM, BOARD, OUT, IN, HIGH, LOW = 11, 10, 0, 1, 1, 0
    PUD_OFF, PUD_DOWN, PUD_UP, BOTH, RISING, FALLING = 20, 21, 22, 33, 31, 32
    RECORD_ONLY = ("setwarnings", "setmode", "remove_event_detect", "cleanup")

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.levels: dict[int, int] = {}
        self.callbacks: dict[int, object] = {}
        self.fail: dict[str, Exception] = {}

    def _log(self, name, *args, **kwargs):
        self.calls.append((name, args, kwargs))
        if name in self.fail:
            raise self.fail[name]

    def setup(self, channel, direction, **kwargs):
        self._log("setup", channel, direction, **kwargs)
        self.levels[channel] = kwargs.get("initial", self.LOW)

    def output(self, channel, level):
        self._log("output", channel, level)
        self.levels[channel] = level

    def input(self, channel):
        return self.levels[channel]

    def add_event_detect(self, channel, edge, callback=None, **kwargs):
        self._log("add_event_detect", channel, edge, **kwargs)
        self.callbacks[channel] = callback

    def module(self) -> types.ModuleType:
        module = types.ModuleType("RPi.GPIO")
        for name in ("setup", "output", "input", "add_event_detect"):
            setattr(module, name, getattr(self, name))
        for name in self.RECORD_ONLY:
            setattr(module, name, lambda *a, _name=name, **k: self._log(_name, *a, **k))
        for name, value in vars(RpiStub).items():
            if name.isupper() and isinstance(value, int):
                setattr(module, name, value)
        return module


@pytest.fixture
def rpi(monkeypatch):
    stub = RpiStub()
    package = types.ModuleType("RPi")
    package.GPIO = stub.module()
    monkeypatch.setitem(sys.modules, "RPi", package)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", package.GPIO)
    return stub


async def test_rpi_gpio_call_sequence_polarity_and_cleanup(rpi):
    backend = open_backend("rpi-gpio")
    assert rpi.calls[:2] == [("setwarnings", (False,), {}), ("setmode", (rpi.BCM,), {})]
    backend.setup_output(17, initial=False, active_high=False)
    backend.setup_output(22, initial=False)
    backend.setup_input(27, pull="down", debounce_ms=15)
    backend.add_edge_callback(27, lambda line, value: None)
    backend.write(17, True)
    backend.close()
    assert rpi.calls[2:] == [
        ("setup", (17, rpi.OUT), {"initial": rpi.HIGH}),  # active-low off = HIGH, from the start
        ("setup", (22, rpi.OUT), {"initial": rpi.LOW}),
        ("setup", (27, rpi.IN), {"pull_up_down": rpi.PUD_DOWN}),
        ("add_event_detect", (27, rpi.BOTH), {"bouncetime": 15}),
        ("output", (17, rpi.LOW), {}),  # on, active low
        ("output", (17, rpi.HIGH), {}),  # close: safe level first ...
        ("output", (22, rpi.LOW), {}),
        ("remove_event_detect", (27,), {}),  # ... then release, newest first
        ("cleanup", (27,), {}),
        ("cleanup", (22,), {}),
        ("cleanup", (17,), {}),
    ]
    assert ("cleanup", (), {}) not in rpi.calls  # never the global cleanup


async def test_rpi_gpio_no_bouncetime_when_debounce_is_zero(rpi):
    backend = open_backend("rpi-gpio")
    backend.setup_input(27, pull="up")
    backend.add_edge_callback(27, lambda line, value: None)
    assert ("add_event_detect", (27, rpi.BOTH), {}) in rpi.calls
    assert ("setup", (27, rpi.IN), {"pull_up_down": rpi.PUD_UP}) in rpi.calls
    backend.close()


async def test_rpi_gpio_edge_from_library_thread_and_recheck_after_bounce(rpi):
    backend = open_backend("rpi-gpio")
    backend.setup_input(27, debounce_ms=20)
    calls = []
    backend.add_edge_callback(27, lambda line, value: calls.append(
        (value, threading.current_thread() is threading.main_thread())))
    rpi.levels[27] = rpi.HIGH

    def library_thread():
        rpi.callbacks[27](27)  # some forks pass (channel, edge): both are accepted
        rpi.callbacks[27](27, 1)

    thread = threading.Thread(target=library_thread)
    thread.start()
    thread.join()
    await settle()
    assert calls == [(True, True)]
    # The falling edge came within bouncetime: RPi.GPIO swallows it. The
    # re-read after the bounce time still reports it.
    rpi.levels[27] = rpi.LOW
    await settle(0.05)
    assert calls == [(True, True), (False, True)]
    backend.close()


def test_rpi_gpio_start_errors(rpi):
    with pytest.raises(HalStartError, match="BCM numbers"):
        open_backend("rpi-gpio").setup_output("GPIO17", initial=False)
    rpi.fail["setmode"] = RuntimeError("Cannot determine SOC peripheral base address")
    with pytest.raises(HalStartError, match="gpiod"):
        open_backend("rpi-gpio")


async def test_rpi_gpio_edge_detection_failure_points_to_gpiod(rpi):
    rpi.fail["add_event_detect"] = RuntimeError("Failed to add edge detection")
    backend = open_backend("rpi-gpio")
    backend.setup_input(27)
    with pytest.raises(HalStartError, match="kernels >= 6.6"):
        backend.add_edge_callback(27, lambda line, value: None)
    del rpi.fail["add_event_detect"]
    backend.add_edge_callback(27, lambda line, value: None)  # a retry arms it again
    assert [call[0] for call in rpi.calls].count("add_event_detect") == 2
    backend.close()


# ---------------------------------------------------------------- gpiod stub


class GpiodRequestStub:
    """One line request; its fd is a real pipe so ``loop.add_reader`` works on it."""

    def __init__(self, gpiod, offset, settings):
        self.gpiod, self.offset = gpiod, offset
        self.value = settings.kwargs.get("output_value", gpiod.line.Value.INACTIVE)
        self.fd, self._write_fd = os.pipe()
        self.released = False

    def set_value(self, offset, value):
        self.gpiod.log.append(("set_value", offset, value))
        self.value = value

    def get_value(self, offset):
        return self.value

    def edge(self, value):
        """Test side: the line moves and the kernel queues an edge event."""
        self.value = value
        os.write(self._write_fd, b"e")

    def read_edge_events(self, max_events=None):
        return list(os.read(self.fd, 64))

    def release(self):
        self.gpiod.log.append(("release", self.offset))
        self.released = True
        os.close(self.fd)
        os.close(self._write_fd)


class GpiodChipStub:
    """``gpiod.Chip``: names resolve through ``gpiod.names``; offsets in ``gpiod.busy`` are EBUSY."""

    gpiod: types.ModuleType

    def __init__(self, path):
        self.gpiod.log.append(("open", path))
        self.requests = {}
        self.gpiod.chip = self

    def line_offset_from_id(self, id):
        if isinstance(id, int):
            return id
        if id in self.gpiod.names:
            return self.gpiod.names[id]
        raise OSError(errno.ENOENT, "No such file or directory")

    def request_lines(self, config, consumer=None):
        ((offset, settings),) = config.items()
        self.gpiod.log.append(("request", offset, settings.kwargs, consumer))
        if offset in self.gpiod.busy:
            raise OSError(errno.EBUSY, "Device or resource busy")
        self.requests[offset] = GpiodRequestStub(self.gpiod, offset, settings)
        return self.requests[offset]

    def close(self):
        self.gpiod.log.append(("close",))


def make_gpiod_stub(names: dict[str, int], busy: set[int]) -> types.ModuleType:
    """A ``gpiod`` v2 look-alike: Chip, LineSettings, the ``gpiod.line`` enums, a call log."""
    gpiod = types.ModuleType("gpiod")
    gpiod.line = types.ModuleType("gpiod.line")
    gpiod.line.Direction = Enum("Direction", "AS_IS INPUT OUTPUT")
    gpiod.line.Bias = Enum("Bias", "AS_IS UNKNOWN DISABLED PULL_UP PULL_DOWN")
    gpiod.line.Edge = Enum("Edge", "NONE RISING FALLING BOTH")
    gpiod.line.Value = Enum("Value", "INACTIVE ACTIVE")
    gpiod.__version__, gpiod.log, gpiod.names, gpiod.busy = "2.3.0", [], names, busy
    gpiod.Chip = type("Chip", (GpiodChipStub,), {"gpiod": gpiod})
    gpiod.LineSettings = lambda **kwargs: types.SimpleNamespace(kwargs=kwargs)
    gpiod.request_lines = lambda path, **kwargs: None  # only its presence marks the v2 API
    return gpiod


@pytest.fixture
def gpiod(monkeypatch):
    stub = make_gpiod_stub(names={"GPIO27": 27}, busy={9})
    monkeypatch.setitem(sys.modules, "gpiod", stub)
    monkeypatch.setitem(sys.modules, "gpiod.line", stub.line)
    return stub


def test_gpiod_v1_bindings_are_refused(monkeypatch):
    v1 = types.ModuleType("gpiod")
    v1.Chip = object  # v1 has Chip but neither LineSettings nor request_lines
    v1.__version__ = "1.6.3"
    monkeypatch.setitem(sys.modules, "gpiod", v1)
    with pytest.raises(GpioLibraryMissing, match="needs gpiod >= 2.*1.6.3"):
        open_backend("gpiod")


async def test_gpiod_requests_polarity_initial_levels_and_release(gpiod):
    backend = open_backend("gpiod", chip="/dev/gpiochip4")
    line = gpiod.line
    backend.setup_output(17, initial=False, active_high=False)
    backend.setup_input("GPIO27", pull="up", active_high=False, debounce_ms=10)
    assert gpiod.log[:3] == [
        ("open", "/dev/gpiochip4"),
        ("request", 17, {"direction": line.Direction.OUTPUT,
                         "output_value": line.Value.ACTIVE,  # physical high = off, from the start
                         "active_low": False}, "ocpp-agent"),
        ("request", 27, {"direction": line.Direction.INPUT, "bias": line.Bias.PULL_UP,
                         "edge_detection": line.Edge.BOTH,
                         "debounce_period": timedelta(milliseconds=10),
                         "active_low": False}, "ocpp-agent"),
    ]
    assert backend.read("GPIO27") is True  # the stub reads physical low: active on active-low
    backend.write(17, True)
    assert gpiod.log[-1] == ("set_value", 17, line.Value.INACTIVE)
    backend.close()
    assert gpiod.log[-4:] == [("set_value", 17, line.Value.ACTIVE), ("release", 27),
                              ("release", 17), ("close",)]
    assert "chip=/dev/gpiochip4" in repr(backend)


async def test_gpiod_edges_arrive_through_the_request_fd(gpiod):
    backend = open_backend("gpiod")
    backend.setup_input(27, pull="down")
    calls = []
    backend.add_edge_callback(27, lambda line, value: calls.append(value))
    request = gpiod.chip.requests[27]
    request.edge(gpiod.line.Value.ACTIVE)
    await settle(0.01)
    assert calls == [True]
    request.edge(gpiod.line.Value.INACTIVE)
    request.edge(gpiod.line.Value.ACTIVE)  # a burst: drained, judged once, no change
    await settle(0.01)
    assert calls == [True]
    loop = asyncio.get_running_loop()
    fd = request.fd
    backend.close()
    assert request.released
    assert not loop.remove_reader(fd)  # the reader was already removed


def test_gpiod_busy_or_unknown_line_or_chip_is_a_start_error(gpiod, monkeypatch):
    backend = open_backend("gpiod")
    with pytest.raises(HalStartError, match="offset 9.*busy"):
        backend.setup_output(9, initial=False)
    with pytest.raises(HalStartError, match="no line 'GPIO99'"):
        backend.setup_input("GPIO99")
    assert backend.lines == ()
    backend.close()
    monkeypatch.setattr(gpiod, "Chip", lambda path: open(path))  # FileNotFoundError
    with pytest.raises(HalStartError, match="cannot open GPIO chip /dev/gpiochip-none"):
        open_backend("gpiod", chip="/dev/gpiochip-none")
