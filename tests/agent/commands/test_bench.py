"""`ocpp-agent bench`: one device at a time, real frames, never while the agent runs."""

import asyncio
import json
import sys
import textwrap

import pytest

from agent.runtime.lockfile import DataDirLock
from hal.meters import load_register_map
from tests.hal.modbus_sim import MeterSim, PtyPair


def mock_config(tmp_path, extra=""):
    path = tmp_path / "agent.toml"
    path.write_text(textwrap.dedent(f"""
        [station]
        id = "CP1"
        data_dir = "{tmp_path / 'data'}"
        [csms]
        url = "ws://127.0.0.1:9/ocpp"
        [[evse]]
        id = 1
        """) + extra + '[hal]\nbackend = "mock"\n')
    return path


async def bench(config_path, *args):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "bench", "--config", str(config_path), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, out.decode(), err.decode()


async def test_bench_meter_json_reads_the_mock_register(tmp_path):
    config = mock_config(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mock-meter.json").write_text('{"version": 1, "energy_Wh": {"1": 1234.5}}')
    code, out, err = await bench(config, "meter", "1", "--json")
    assert code == 0, err
    reading = json.loads(out)
    assert reading["energy_import_Wh"] == 1234.5
    assert set(reading) >= {"energy_import_Wh", "power_W", "voltage_V", "current_A"}
    assert isinstance(reading["voltage_V"], list) and len(reading["current_A"]) == 3


async def test_bench_meter_json_over_modbus_rtu(tmp_path):
    pair = PtyPair(tmp_path)
    await pair.start()
    sim = MeterSim(pair.meter_port, meters={7: load_register_map("sdm630")})
    sim.set_reading(7, energy_Wh=98765.4, power_W=7200.0, voltage_V=(230.1, 231.2, 229.3), current_A=(10.4, 10.5, 10.6))
    await sim.start()
    try:
        extra = f'[evse.meter]\ndriver = "modbus"\nmodel = "sdm630"\nport = "{pair.bus_port}"\nbaudrate = 115200\ndevice_id = 7\n'
        code, out, err = await bench(mock_config(tmp_path, extra), "meter", "1", "--json")
        assert code == 0, err
        reading = json.loads(out)
        assert reading["energy_import_Wh"] == pytest.approx(98765.4, abs=0.1)
        assert reading["power_W"] == pytest.approx(7200.0, abs=0.5)
        assert reading["voltage_V"] == pytest.approx([230.1, 231.2, 229.3], abs=0.01)
        assert sim.requests, "the meter must have been asked over the wire"
    finally:
        await sim.stop()
        await pair.stop()


async def test_bench_meter_without_a_meter_fails_clearly(tmp_path):
    pair = PtyPair(tmp_path)
    await pair.start()
    try:
        extra = f'[evse.meter]\ndriver = "modbus"\nport = "{pair.bus_port}"\nbaudrate = 115200\ntimeout_s = 0.1\n'
        code, out, err = await bench(mock_config(tmp_path, extra), "meter", "1", "--json")
        assert code == 1
        assert out == "" and "read failed" in err
    finally:
        await pair.stop()


async def test_bench_refuses_while_the_agent_holds_the_hardware(tmp_path):
    config = mock_config(tmp_path)
    (tmp_path / "data").mkdir()
    held = DataDirLock(tmp_path / "data", purpose="ocpp-agent run")
    held.acquire()
    try:
        code, _, err = await bench(config, "selftest")
        assert code == 1 and "refusing to touch the hardware" in err and "ocpp-agent run" in err
    finally:
        held.release()


async def test_bench_selftest_and_relays_on_the_mock(tmp_path):
    config = mock_config(tmp_path)
    code, out, _ = await bench(config, "selftest", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["ok"] and {c["name"] for c in result["checks"]} >= {"contactor close", "unlock", "meter read"}
    code, out, _ = await bench(config, "contactor", "1", "--hold", "0")
    assert code == 0 and "contactor open     PASS" in out


async def test_bench_unknown_evse(tmp_path):
    code, _, err = await bench(mock_config(tmp_path), "meter", "3")
    assert code == 1 and "no EVSE 3" in err


async def test_bench_rfid_json_reads_the_first_card(tmp_path):
    import serial

    from hal.rfid.rdm6300 import encode_frame

    pair = PtyPair(tmp_path)
    await pair.start()
    try:
        config = mock_config(tmp_path, "").read_text().replace(
            '[hal]\nbackend = "mock"\n', f'[hal]\nbackend = "mock"\n[hal.rfid]\ndriver = "rdm6300"\nport = "{pair.bus_port}"\n')
        (tmp_path / "rfid.toml").write_text(config)
        task = asyncio.create_task(bench(tmp_path / "rfid.toml", "rfid", "--timeout", "10", "--json"))
        await asyncio.sleep(1.0)
        with serial.Serial(pair.meter_port) as device:
            device.write(b"\x02garbage" + encode_frame("0A00C0FFEE"))
        code, out, err = await task
        assert code == 0, err
        assert json.loads(out) == {"id_token": "0A00C0FFEE"}
        code, _, err = await bench(tmp_path / "rfid.toml", "rfid", "--timeout", "0.5", "--json")
        assert code == 1 and "no card" in err
    finally:
        await pair.stop()


def test_bench_contactor_cycle_reports_a_welded_contactor(tmp_path, monkeypatch, capsys):
    from agent.commands.bench import run_bench
    from agent.config import parse_config
    from hal.gpio.fake import FakeGpioBackend

    gpio = FakeGpioBackend()
    gpio.wire(17, 27)
    gpio.stick(27, True)  # the mirror contact reads closed whatever the coil does
    monkeypatch.setattr("hal.gpio.open_backend", lambda name, **options: gpio)
    pins = {"contactor": 17, "contactor_feedback": 27, "pilot_plug": 5, "pilot_charge": 6}
    config = parse_config({
        "station": {"id": "CP1", "data_dir": str(tmp_path / "data")},
        "csms": {"url": "ws://127.0.0.1:9/ocpp"},
        "evse": [{"id": 1, "gpio": pins, "meter": {"driver": "modbus", "port": str(tmp_path / "no-meter")}}],
        "hal": {"backend": "raspberry-pi", "rfid": {"driver": "rdm6300", "port": str(tmp_path / "no-reader")}},
    })
    assert run_bench(config, ["contactor", "1", "--hold", "0"]) == 1
    out = capsys.readouterr().out
    assert "contactor open     FAIL  feedback CLOSED" in out
    assert "fault raised: contactor-welded" in out
    assert gpio.values(17)[-1] is False  # the coil is released even though the contact is welded
