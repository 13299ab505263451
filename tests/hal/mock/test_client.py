"""The sim client: request() errors and run_sim's grammar and exit codes against a live server."""

import asyncio
import json

import pytest

from hal.errors import ControlProtocolError, ControlTimeout, ControlUnreachable
from hal.events import PilotState, TokenPresented
from hal.mock.client import parse_sim_args, request, run_sim
from hal.mock.control import MockControlServer, socket_path


@pytest.fixture
async def server(hal, short_dir):
    control = MockControlServer(hal, socket_path(short_dir))
    await control.start()
    yield control
    await control.close()


async def sim(server, *argv):
    return await asyncio.to_thread(run_sim, list(argv), socket_path=server.path, timeout=2)


def printed(capsys) -> dict:
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    return json.loads(out)


async def test_client_request_round_trip(server):
    answer = await asyncio.to_thread(request, server.path, {"cmd": "state"})
    assert answer["ok"] is True and len(answer["evses"]) == 2


async def test_client_request_missing_socket_is_connection_error(short_dir):
    with pytest.raises(ControlUnreachable, match="cannot reach the agent") as info:
        request(short_dir / "mock-hal.sock", {"cmd": "state"})
    assert isinstance(info.value, ConnectionError)


async def test_client_request_times_out_on_a_silent_server(short_dir):
    async def silent(reader, writer):
        await reader.read()
        writer.close()

    path = short_dir / "silent.sock"
    listener = await asyncio.start_unix_server(silent, path=str(path))
    try:
        with pytest.raises(ControlTimeout):
            await asyncio.to_thread(request, path, {"cmd": "state"}, timeout=0.2)
    finally:
        listener.close()
        await listener.wait_closed()


async def test_client_request_rejects_a_garbled_answer(short_dir):
    async def garble(reader, writer):
        await reader.readline()
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()

    path = short_dir / "garble.sock"
    listener = await asyncio.start_unix_server(garble, path=str(path))
    try:
        with pytest.raises(ControlProtocolError, match="not JSON"):
            await asyncio.to_thread(request, path, {"cmd": "state"})
    finally:
        listener.close()
        await listener.wait_closed()


async def test_sim_plug_ev_unplug(server, hal, capsys):
    assert await sim(server, "plug", "1") == 0
    assert printed(capsys) == {"ok": True}
    assert await sim(server, "ev", "1", "charge") == 0
    assert hal.evses[1].pilot.state is PilotState.C
    assert await sim(server, "ev", "1", "pause") == 0
    assert hal.evses[1].pilot.state is PilotState.B
    assert await sim(server, "unplug", "1") == 0
    assert hal.evses[1].pilot.state is PilotState.A


async def test_sim_tap_with_and_without_evse(server, events, capsys):
    assert await sim(server, "tap", "04A1B2C3") == 0
    assert printed(capsys) == {"ok": True, "delivered": True}
    assert await sim(server, "tap", "04A1B2C4", "--evse", "2") == 0
    assert await sim(server, "tap", "--evse=1", "04A1B2C5") == 0
    assert events == [TokenPresented("04A1B2C3", None), TokenPresented("04A1B2C4", 2),
                      TokenPresented("04A1B2C5", 1)]


async def test_sim_power_fault_clear_state(server, hal, capsys):
    assert await sim(server, "power", "1", "7200") == 0
    assert hal.evses[1].meter._draw_W == 7200.0
    assert await sim(server, "fault", "1", "rcd-trip") == 0
    capsys.readouterr()
    assert await sim(server, "state") == 0
    state = printed(capsys)
    assert state["ok"] is True and state["evses"][0]["faults"] == ["rcd-trip"]
    assert await sim(server, "clear", "1", "rcd-trip") == 0
    capsys.readouterr()
    await sim(server, "state")
    assert printed(capsys)["evses"][0]["faults"] == []


@pytest.mark.parametrize("argv, message", [
    (["fault", "1", "on-fire"], "unknown fault"),
    (["plug", "9"], "unknown evse 9"),
    (["ev", "2", "charge"], "no EV plugged"),
    (["tap", "z z"], "characters other than"),
])
async def test_sim_agent_error_exits_1(server, capsys, argv, message):
    assert await sim(server, *argv) == 1
    answer = printed(capsys)
    assert answer["ok"] is False and message in answer["error"]


@pytest.mark.parametrize("argv", [
    [], ["launch"], ["plug"], ["plug", "one"], ["plug", "1", "2"], ["ev", "1", "go"],
    ["tap"], ["tap", "04A1", "--evse"], ["tap", "04A1", "--evse", "x"], ["power", "1"],
    ["power", "1", "lots"], ["power", "1", "nan"], ["fault", "1"], ["state", "now"],
])
async def test_sim_usage_error_exits_1_with_usage_on_stderr(server, capsys, argv):
    assert await sim(server, *argv) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "usage: ocpp-agent sim" in captured.err


def test_sim_help_exits_0(capsys, short_dir):
    assert run_sim(["--help"], socket_path=short_dir / "none.sock") == 0
    assert "usage: ocpp-agent sim" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["state"], ["plug", "1"]])
def test_sim_without_agent_exits_2(capsys, short_dir, argv):
    assert run_sim(argv, socket_path=short_dir / "mock-hal.sock") == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "cannot reach the agent" in captured.err


@pytest.mark.parametrize("argv, obj", [
    (["plug", "1"], {"cmd": "plug", "evse": 1}),
    (["unplug", "2"], {"cmd": "unplug", "evse": 2}),
    (["ev", "1", "charge"], {"cmd": "ev", "evse": 1, "charge": True}),
    (["ev", "1", "pause"], {"cmd": "ev", "evse": 1, "charge": False}),
    (["tap", "04A1"], {"cmd": "tap", "id_token": "04A1"}),
    (["tap", "04A1", "--evse", "2"], {"cmd": "tap", "id_token": "04A1", "evse": 2}),
    (["power", "1", "7200"], {"cmd": "power", "evse": 1, "watts": 7200}),
    (["power", "1", "3.5"], {"cmd": "power", "evse": 1, "watts": 3.5}),
    (["fault", "1", "lock-failure"], {"cmd": "fault", "evse": 1, "name": "lock-failure"}),
    (["clear", "1", "lock-failure"], {"cmd": "clear", "evse": 1, "name": "lock-failure"}),
    (["state"], {"cmd": "state"}),
])
def test_sim_parse_follows_the_contract_grammar(argv, obj):
    assert parse_sim_args(argv) == obj
