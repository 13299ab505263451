"""Config loading: every error at once, with key paths and hints."""

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_config, parse_config
from agent.errors import ConfigError
from agent.runtime.settings import Settings
from hal import gpio, registry
from hal.meters import available_models, load_register_map

REPO = Path(__file__).resolve().parents[2]
MAPS = REPO / "hal"

MINIMAL = """
[station]
id = "CP1"
data_dir = "/tmp/x"
[csms]
url = "ws://127.0.0.1:9000/ocpp"
[[evse]]
id = 1
"""


def write(tmp_path, text):
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def problems_of(tmp_path, text):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return [str(p) for p in info.value.errors]


@pytest.mark.parametrize("name", ["default.toml", "desktop-mock.toml", "raspberry-pi.toml"])
def test_config_shipped_examples_are_valid(name):
    config = load_config(REPO / "config" / name)
    assert config.station.id == "CP001"


def test_config_minimal_file_gets_defaults(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.csms.ocpp_version == "1.6"
    assert config.hal.backend == "mock"
    assert config.evse[0].max_current_A == 32.0
    assert config.endpoint_url == "ws://127.0.0.1:9000/ocpp/CP1"


def test_config_five_mistakes_all_reported(tmp_path):
    text = """
[station]
id = "CP1"
data_dir = 5
[csms]
url = "http://example.com"
ocpp_version = "1.5"
secruity_profile = 1
[[evse]]
id = 1
max_current_A = "32"
[hal]
backend = "mock"
"""
    found = problems_of(tmp_path, text)
    assert len(found) == 5, found
    joined = "\n".join(found)
    assert "station.data_dir: expected a path string" in joined
    assert "csms.ocpp_version: expected one of '1.6', '2.0.1'" in joined
    assert 'csms.secruity_profile: unknown key (did you mean "security_profile"?)' in joined
    assert "evse[0].max_current_A: expected a number" in joined
    assert "csms.url: expected a ws:// or wss:// URL" in joined


def test_config_missing_required_keys(tmp_path):
    found = problems_of(tmp_path, "[station]\n")
    assert "station.id: required key is missing" in found
    assert "csms: required key is missing" in found
    assert "evse: required key is missing" in found


def test_config_security_profile_rules(tmp_path):
    text = MINIMAL.replace('url = "ws://127.0.0.1:9000/ocpp"', 'url = "ws://h/ocpp"\nsecurity_profile = 2')
    found = problems_of(tmp_path, text)
    assert any("needs a wss:// URL" in p for p in found)
    assert any(p.startswith("csms.password") for p in found)
    text = MINIMAL.replace('url = "ws://127.0.0.1:9000/ocpp"', 'url = "wss://h/ocpp"\nsecurity_profile = 3\nca_file = "/nonexistent.pem"')
    found = problems_of(tmp_path, text)
    assert "csms.client_cert_file: security_profile 3 needs a client certificate and key" in found
    assert "csms.ca_file: file not found: /nonexistent.pem" in found


def test_config_evse_ids_must_be_contiguous(tmp_path):
    found = problems_of(tmp_path, MINIMAL + "[[evse]]\nid = 3\n")
    assert any("EVSE ids must be 1..2" in p for p in found)


def test_config_nested_unknown_key_and_type(tmp_path):
    found = problems_of(tmp_path, MINIMAL + '[evse.meter]\ndriver = "modbus"\nbaud = 9600\n')
    assert 'evse[0].meter.baud: unknown key (did you mean "baudrate"?)' in found
    assert "evse[0].meter.port: the modbus meter driver needs a port" in found


def test_config_ocpp_settings_are_checked(tmp_path):
    text = MINIMAL + '[ocpp16.configuration]\nHeartbeatIntervall = 30\nMeterValueSampleInterval = "soon"\n'
    text += '[ocpp201.variables]\n"OCPPCommCtrlr.HeartbeatInterval" = -1\n'
    found = problems_of(tmp_path, text)
    assert 'ocpp16.configuration.HeartbeatIntervall: unknown setting (did you mean "HeartbeatInterval"?)' in found
    assert "ocpp16.configuration.MeterValueSampleInterval: expected an integer, got 'soon'" in found
    assert 'ocpp201.variables."OCPPCommCtrlr.HeartbeatInterval": must be at least 1, got -1' in found


def test_config_invalid_toml_is_one_clear_error(tmp_path):
    found = problems_of(tmp_path, "[station\n")
    assert len(found) == 1 and "not valid TOML" in found[0]


def test_config_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")


class MemoryStore(dict):
    def put(self, key, value):
        self[key] = value


def test_settings_precedence_persisted_over_file_over_default(tmp_path):
    config = parse_config(
        {
            "station": {"id": "CP1"},
            "csms": {"url": "ws://h/ocpp"},
            "evse": [{"id": 1}],
            "ocpp16": {"configuration": {"HeartbeatInterval": "120"}},
        }
    )
    store = MemoryStore()
    settings = Settings(store, initial=config.initial_settings)
    assert settings["heartbeat_interval_s"] == 120
    assert settings["websocket_ping_interval_s"] == 30
    settings.set("heartbeat_interval_s", "45")
    assert Settings(store, initial=config.initial_settings)["heartbeat_interval_s"] == 45
    with pytest.raises(ValueError):
        settings.set("heartbeat_interval_s", "0")


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=60, **kwargs)


def test_check_config_cli_exit_codes(tmp_path):
    good = run_cli("check-config", str(REPO / "config" / "default.toml"))
    assert good.returncode == 0, good.stderr
    bad = run_cli("check-config", str(write(tmp_path, MINIMAL.replace("[[evse]]\nid = 1", "[[evse]]\nid = 1\nphase = 3"))))
    assert bad.returncode == 1
    assert 'evse[0].phase: unknown key (did you mean "phases"?)' in bad.stderr


def test_run_cli_rejects_bad_config_naming_key_path(tmp_path):
    path = write(tmp_path, MINIMAL.replace('id = "CP1"', 'id = "CP1"\nvendr = "x"'))
    result = run_cli("run", "--config", str(path))
    assert result.returncode == 1
    assert "station.vendr" in result.stderr


def test_config_raspberry_pi_pins_checked_at_load(tmp_path):
    text = MINIMAL + '[evse.gpio]\ncontactor = 17\nlock_type = "motor"\nlock_a = 17\n[hal]\nbackend = "raspberry-pi"\n'
    found = problems_of(tmp_path, text)
    assert any(p.startswith("evse[0].gpio.contactor_feedback: required") for p in found), found
    assert any(p.startswith("evse[0].gpio.lock_b") for p in found), found


def test_config_connection_and_201_only_settings_are_refused_where_they_do_not_belong(tmp_path):
    text = MINIMAL + ('[ocpp16.configuration]\nSecurityProfile = 2\n'
                      '[ocpp201.variables]\n"TxCtrlr.TxStartPoint" = "EVConnected"\n'
                      '"SecurityCtrlr.BasicAuthPassword" = "0123456789abcdef"\n')
    found = "\n".join(problems_of(tmp_path, text))
    assert "ocpp16.configuration.SecurityProfile: set csms.security_profile instead" in found
    assert 'ocpp201.variables."SecurityCtrlr.BasicAuthPassword": set csms.password instead' in found
    assert 'ocpp201.variables."TxCtrlr.TxStartPoint": changes what a transaction is' in found
    # The same start point is fine for a 2.0.1 station.
    ok = text.replace('url = "ws://127.0.0.1:9000/ocpp"', 'url = "ws://127.0.0.1:9000/ocpp"\nocpp_version = "2.0.1"')
    assert "TxStartPoint" not in "\n".join(problems_of(tmp_path, ok))


def test_config_ocpp_21_is_a_version_with_the_201_device_model(tmp_path):
    text = MINIMAL.replace('url = "ws://127.0.0.1:9000/ocpp"',
                           'url = "ws://127.0.0.1:9000/ocpp"\nocpp_version = "2.1"')
    config = load_config(write(tmp_path, text + '[ocpp201.variables]\n"TxCtrlr.TxStartPoint" = "EVConnected"\n'))
    assert config.csms.ocpp_version == "2.1"
    assert "expected one of '1.6', '2.0.1', '2.1', got '2.2'" in "\n".join(
        problems_of(tmp_path, text.replace('"2.1"', '"2.2"')))


# -- names come from the HAL: driver tables and register-map files, never a list in the config --------------


def config_with(*, evse=None, hal=None):
    """A parsed-TOML document with one EVSE (its sub-tables from ``evse``) and the ``[hal]`` table ``hal``."""
    return {"station": {"id": "CP1"}, "csms": {"url": "ws://h/ocpp"},
            "evse": [{"id": 1, **(evse or {})}], "hal": hal or {}}


def config_problems(raw) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return [str(p) for p in info.value.errors]


def test_config_meter_model_dropped_in_as_a_register_map_file_is_accepted(tmp_path, monkeypatch):
    raw = config_with(evse={"meter": {"model": "acme-m1"}})
    assert any(p.startswith("evse[0].meter.model:") for p in config_problems(raw))
    # A new meter is one data file: a copy of a shipped map under the new model's name, nothing else.
    for shipped in ("sdm630", "sdm120"):
        (tmp_path / f"{shipped}.toml").write_text((MAPS / "meters" / f"{shipped}.toml").read_text())
    text = (MAPS / "meters" / "sdm630.toml").read_text().replace('model = "sdm630"', 'model = "acme-m1"')
    (tmp_path / "acme-m1.toml").write_text(text)
    monkeypatch.setattr("hal.meters.registers.MAPS_DIR", tmp_path)
    assert parse_config(raw).evse[0].meter.model == "acme-m1"
    assert load_register_map("acme-m1").model == "acme-m1"  # and the driver can load it
    assert config_problems(config_with(evse={"meter": {"model": "em24"}})) == [
        "evse[0].meter.model: expected one of 'acme-m1', 'sdm120', 'sdm630', got 'em24'"]


def test_config_unknown_meter_model_lists_the_register_map_files():
    found = config_problems(config_with(evse={"meter": {"model": "sdm603"}}))
    models = ", ".join(repr(m) for m in available_models())
    assert found == [f"evse[0].meter.model: expected one of {models}, got 'sdm603' (did you mean \"sdm630\"?)"]
    assert "'abb-b23'" in models and "'em24'" in models


def test_config_pilot_model_comes_from_the_pilot_map_files(tmp_path, monkeypatch):
    raw = config_with(evse={"pilot": {"driver": "modbus-evse", "port": "/dev/ttyUSB0", "model": "acme-evse"}})
    assert config_problems(raw) == [
        "evse[0].pilot.model: expected one of 'evse-wb-din', got 'acme-evse'"]
    text = (MAPS / "pilots" / "evse-wb-din.toml").read_text().replace('model = "evse-wb-din"', 'model = "acme-evse"')
    (tmp_path / "acme-evse.toml").write_text(text)
    monkeypatch.setattr("hal.pilots.MAPS_DIR", tmp_path)
    assert parse_config(raw).evse[0].pilot.model == "acme-evse"
    assert config_problems(config_with(evse={"pilot": {"model": "acme-evze"}})) == [
        "evse[0].pilot.model: expected one of 'acme-evse', got 'acme-evze' (did you mean \"acme-evse\"?)"]


# (where the name goes in the document, the HAL table the config must accept exactly)
DRIVER_CHOICES = [
    ("hal.rfid.driver", lambda name: config_with(hal={"rfid": {"driver": name, "port": "/dev/ttyUSB0"}}),
     registry.RFID_DRIVERS),
    ("evse[0].meter.driver", lambda name: config_with(evse={"meter": {"driver": name, "port": "/dev/ttyUSB0"}}),
     registry.METER_DRIVERS),
    ("evse[0].pilot.driver", lambda name: config_with(evse={"pilot": {"driver": name, "port": "/dev/ttyUSB0"}}),
     registry.PILOT_DRIVERS),
    ("hal.display", lambda name: config_with(hal={"display": name, "backend": "raspberry-pi"},
                                             evse={"gpio": PI_PINS, "meter": {"driver": "modbus", "port": "/dev/x"}}),
     registry.DISPLAY_DRIVERS),
    ("hal.backend", lambda name: config_with(hal={"backend": name}), registry.BACKENDS),
    ("hal.gpio", lambda name: config_with(hal={"gpio": name}), registry.GPIO_BACKENDS),
]
PI_PINS = {"contactor": 17, "contactor_feedback": 27, "pilot_plug": 5, "pilot_charge": 6}


@pytest.mark.parametrize(("key", "document", "table"), DRIVER_CHOICES, ids=[c[0] for c in DRIVER_CHOICES])
def test_config_accepted_driver_names_are_the_hal_tables_keys(key, document, table):
    for name in table:
        raw = document(name)
        try:
            parse_config(raw)
        except ConfigError as exc:  # other sections may object to the combination, never this key
            assert not [p for p in map(str, exc.errors) if p.startswith(key + ":")], exc
    names = ", ".join(repr(name) for name in table)
    assert f"{key}: expected one of {names}, got 'acme'" in config_problems(document("acme"))


def test_config_a_driver_added_to_the_hal_table_is_accepted(monkeypatch):
    raw = config_with(hal={"rfid": {"driver": "acme-reader", "port": "/dev/ttyUSB0"}})
    assert any(p.startswith("hal.rfid.driver:") for p in config_problems(raw))
    monkeypatch.setitem(registry.RFID_DRIVERS, "acme-reader", registry.DriverRef("acme.reader:Reader"))
    assert parse_config(raw).hal.rfid.driver == "acme-reader"


def test_config_gpio_choices_leave_out_the_tests_fake_backend():
    assert "fake" in gpio.BACKENDS
    assert registry.GPIO_BACKENDS == tuple(name for name in gpio.BACKENDS if name != "fake")
    assert "hal.gpio: expected one of 'rpi-gpio', 'gpiod', got 'fake'" in config_problems(config_with(hal={"gpio": "fake"}))
