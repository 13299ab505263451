"""The console display (hal.display = "console"): it logs each text, and the config and registry choose it."""

import io
import logging
from types import SimpleNamespace

import pytest

from agent.config import parse_config
from agent.errors import ConfigError
from hal.drivers.console_display import ConsoleDisplay
from hal.gpio.fake import FakeGpioBackend
from hal.mock.hardware import MockHal
from hal.mock.devices import MockDisplay
from hal.registry import UnknownDriver, build_display, build_hal

PINS = {"contactor": 17, "contactor_feedback": 27, "lock_type": "solenoid", "lock_a": 22,
        "lock_feedback": 24, "pilot_plug": 5, "pilot_charge": 6}


def config(tmp_path, backend="mock", **hal):
    evse = {"id": 1}
    if backend == "raspberry-pi":
        evse.update(gpio=PINS, meter={"driver": "modbus", "model": "sdm630", "port": "/dev/null"})
        hal.setdefault("rfid", {"driver": "rdm6300", "port": "/dev/null"})
    return parse_config({"station": {"id": "CP1", "data_dir": str(tmp_path / "data")},
                         "csms": {"url": "ws://127.0.0.1:9/ocpp"}, "evse": [evse],
                         "hal": {"backend": backend, **hal}})


def test_console_display_logs_and_prints_each_change(caplog):
    stream = io.StringIO()
    display = ConsoleDisplay(stream=stream)
    with caplog.at_level(logging.INFO, logger="hal.display"):
        display.show("Cost: 4.27 EUR")
        display.show("Cost: 4.27 EUR")  # unchanged: said once
        display.show(None)
    assert display.text is None
    assert [r.getMessage() for r in caplog.records] == ["display: Cost: 4.27 EUR", "display: (blank)"]
    assert stream.getvalue() == "[display] Cost: 4.27 EUR\n[display] (blank)\n"
    assert display.formats == ("ASCII", "UTF8")
    assert repr(display) == "<ConsoleDisplay text=None>"


def test_console_display_refuses_what_is_not_text():
    with pytest.raises(TypeError):
        ConsoleDisplay().show(42)


def test_config_display_key_is_validated_with_its_path(tmp_path):
    assert config(tmp_path).hal.display is None
    assert config(tmp_path, display="console").hal.display == "console"
    assert config(tmp_path, "raspberry-pi", display="none").hal.display == "none"
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, display="lcd")
    assert [str(e) for e in caught.value.errors] == ["hal.display: expected one of 'none', 'console', got 'lcd'"]
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, display="none")  # the mock cannot be without one: `sim state` reports it
    assert [e.path for e in caught.value.errors] == ["hal.display"]
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, dispaly="console")
    assert "did you mean \"display\"" in str(caught.value.errors[0])


def test_build_display_by_name():
    assert build_display("none") is None
    assert isinstance(build_display("console"), ConsoleDisplay)
    with pytest.raises(UnknownDriver, match="valid: none, console"):
        build_display("lcd")
    with pytest.raises(UnknownDriver, match="mock always simulates"):
        build_display("none", mock=True)


async def test_registry_mock_backend_keeps_its_display_unless_console_is_named(tmp_path):
    hal = await build_hal(config(tmp_path), emit=lambda e: None)
    assert isinstance(hal, MockHal) and isinstance(hal.display, MockDisplay)
    hal = await build_hal(config(tmp_path, display="console"), emit=lambda e: None)
    assert isinstance(hal.display, ConsoleDisplay)
    await hal.start()
    hal.display.show("hello")
    assert hal.display.text == "hello"
    await hal.close()


async def test_registry_raspberry_pi_fits_the_configured_display(tmp_path, monkeypatch):
    async def no_meter(evse, emit):
        return SimpleNamespace(evse_id=evse.id), lambda: None

    monkeypatch.setattr("hal.gpio.open_backend", lambda name, **options: FakeGpioBackend())
    monkeypatch.setattr("hal.registry.build_meter", no_meter)
    for display, expected in ((None, type(None)), ("none", type(None)), ("console", ConsoleDisplay)):
        options = {} if display is None else {"display": display}
        hal = await build_hal(config(tmp_path, "raspberry-pi", **options), emit=lambda e: None)
        assert isinstance(hal.display, expected)
        await hal.close()
