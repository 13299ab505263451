"""The control socket over a real Unix socket: every command, state, bad requests, many clients."""

import asyncio
import json
import os
import stat

import pytest

from hal.errors import HalStartError
from hal.events import PilotChanged, PilotState, TokenPresented
from hal.mock.control import MockControlServer, socket_path

STATE_KEYS = {"id", "pilot", "contactor_closed", "contactor_feedback", "locked",
              "current_limit_A", "energy_Wh", "power_W", "status", "transaction_id", "faults"}


class Client:
    """One connection speaking the line protocol."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, path):
        return cls(*await asyncio.open_unix_connection(str(path)))

    async def send_line(self, line: bytes) -> dict:
        self.writer.write(line + b"\n")
        await self.writer.drain()
        answer = await asyncio.wait_for(self.reader.readline(), 2)
        assert answer.endswith(b"\n")
        return json.loads(answer)

    async def ask(self, obj) -> dict:
        return await self.send_line(json.dumps(obj).encode())

    async def close(self):
        self.writer.close()
        await self.writer.wait_closed()


@pytest.fixture
async def server(hal, short_dir):
    statuses = {1: {"status": "Charging", "transaction_id": "123"}}
    control = MockControlServer(hal, socket_path(short_dir),
                                status_provider=lambda evse: statuses.get(evse, {}))
    await control.start()
    yield control
    await control.close()


@pytest.fixture
async def client(server):
    conn = await Client.connect(server.path)
    yield conn
    await conn.close()


async def test_control_socket_listens_with_mode_0660(server):
    mode = os.stat(server.path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
    assert server.path.name == "mock-hal.sock"


async def test_control_plug_unplug_and_ev(client, hal, events):
    assert await client.ask({"cmd": "plug", "evse": 1}) == {"ok": True}
    assert await client.ask({"cmd": "ev", "evse": 1, "charge": True}) == {"ok": True}
    assert await client.ask({"cmd": "ev", "evse": 1, "charge": False}) == {"ok": True}
    assert await client.ask({"cmd": "unplug", "evse": 1}) == {"ok": True}
    assert [e.state for e in events if isinstance(e, PilotChanged)] == [
        PilotState.B, PilotState.C, PilotState.B, PilotState.A]


async def test_control_ev_while_unplugged_is_an_error(client):
    answer = await client.ask({"cmd": "ev", "evse": 2, "charge": True})
    assert answer["ok"] is False and "no EV plugged into EVSE 2" in answer["error"]


async def test_control_tap_with_and_without_evse(client, events):
    assert await client.ask({"cmd": "tap", "id_token": "04a1b2c3"}) == {"ok": True,
                                                                        "delivered": True}
    assert await client.ask({"cmd": "tap", "id_token": "04A1B2C3", "evse": 2}) == {
        "ok": True, "delivered": True}
    assert events == [TokenPresented("04A1B2C3", None), TokenPresented("04A1B2C3", 2)]


async def test_control_power_fault_and_clear(client, hal):
    assert await client.ask({"cmd": "power", "evse": 1, "watts": 7200}) == {"ok": True}
    assert hal.evses[1].meter._draw_W == 7200.0
    assert await client.ask({"cmd": "fault", "evse": 1, "name": "meter-offline"}) == {"ok": True}
    assert (await client.ask({"cmd": "state"}))["evses"][0]["faults"] == ["meter-offline"]
    assert await client.ask({"cmd": "clear", "evse": 1, "name": "meter-offline"}) == {"ok": True}
    assert (await client.ask({"cmd": "state"}))["evses"][0]["faults"] == []


async def test_control_state_shape(client, hal):
    hal.display.show("Charging 7.2 kW")
    await client.ask({"cmd": "plug", "evse": 1})
    answer = await client.ask({"cmd": "state"})
    assert answer["ok"] is True and answer["display"] == "Charging 7.2 kW"
    first, second = answer["evses"]
    assert STATE_KEYS <= set(first)
    assert (first["id"], first["pilot"], first["status"], first["transaction_id"]) == (
        1, "B", "Charging", "123")
    assert (second["id"], second["pilot"], second["status"], second["transaction_id"]) == (
        2, "A", None, None)
    assert isinstance(first["energy_Wh"], float) and first["faults"] == []


async def test_control_state_without_status_provider(hal, short_dir):
    control = MockControlServer(hal, short_dir / "other.sock")
    answer = control.answer(b'{"cmd": "state"}')
    assert [(e["status"], e["transaction_id"]) for e in answer["evses"]] == [(None, None)] * 2
    assert answer["display"] is None


BAD_REQUESTS = [
    (b"{not json", "invalid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'"plug"', "must be a JSON object"),
    (b"", "empty request"),
    (b"\xff\xfe", "invalid JSON"),
    (b'{"evse": 1}', 'needs "cmd"'),
    (b'{"cmd": 7}', 'needs "cmd"'),
    (b'{"cmd": "explode"}', "unknown cmd 'explode'"),
    (b'{"cmd": "plug"}', 'needs "evse"'),
    (b'{"cmd": "plug", "evse": 9}', "unknown evse 9"),
    (b'{"cmd": "plug", "evse": "1"}', '"evse" must be an integer'),
    (b'{"cmd": "plug", "evse": true}', '"evse" must be an integer'),
    (b'{"cmd": "plug", "evse": 1.5}', '"evse" must be an integer'),
    (b'{"cmd": "plug", "evse_id": 1}', "unknown field(s)"),
    (b'{"cmd": "ev", "evse": 1, "charge": "yes"}', '"charge" must be true or false'),
    (b'{"cmd": "ev", "evse": 1}', 'needs "charge"'),
    (b'{"cmd": "tap"}', 'needs "id_token"'),
    (b'{"cmd": "tap", "id_token": 1234}', '"id_token" must be a string'),
    (b'{"cmd": "tap", "id_token": "not-a-card!"}', "characters other than"),
    (b'{"cmd": "tap", "id_token": "04A1", "evse": 0}', "unknown evse 0"),
    (b'{"cmd": "power", "evse": 1, "watts": "7200"}', '"watts" must be a number'),
    (b'{"cmd": "power", "evse": 1, "watts": -1}', ">= 0"),
    (b'{"cmd": "power", "evse": 1, "watts": NaN}', "finite"),
    (b'{"cmd": "fault", "evse": 1, "name": "on-fire"}', "unknown fault 'on-fire'"),
    (b'{"cmd": "clear", "evse": 1}', 'needs "name"'),
    (b'{"cmd": "state", "verbose": true}', "unknown field(s)"),
]


async def test_control_bad_requests_answered_and_connection_survives(client):
    for line, message in BAD_REQUESTS:
        answer = await client.send_line(line)
        assert answer["ok"] is False, line
        assert message in answer["error"], (line, answer)
    assert (await client.ask({"cmd": "state"}))["ok"] is True


async def test_control_status_provider_failure_is_an_error_not_a_crash(hal, short_dir, caplog):
    def broken(evse_id):
        raise RuntimeError("store locked")

    control = MockControlServer(hal, short_dir / "x.sock", status_provider=broken)
    answer = control.answer(b'{"cmd": "state"}')
    assert answer["ok"] is False and "internal error" in answer["error"]


async def test_control_several_clients_at_once(server, events):
    clients = [await Client.connect(server.path) for _ in range(5)]
    try:
        answers = await asyncio.gather(*(
            c.ask({"cmd": "tap", "id_token": f"04A{i}"}) for i, c in enumerate(clients)))
        assert all(a == {"ok": True, "delivered": True} for a in answers)
        assert sorted(e.id_token for e in events) == [f"04A{i}" for i in range(5)]
        await clients[0].close()
        assert (await clients[1].ask({"cmd": "state"}))["ok"] is True
    finally:
        for c in clients[1:]:
            await c.close()


async def test_control_overlong_line_answered_then_closed(server):
    conn = await Client.connect(server.path)
    answer = await conn.send_line(b'{"cmd": "state", "pad": "' + b"x" * 70_000 + b'"}')
    assert answer["ok"] is False and "longer than" in answer["error"]
    assert await asyncio.wait_for(conn.reader.read(), 2) == b""
    await conn.close()
    second = await Client.connect(server.path)
    assert (await second.ask({"cmd": "state"}))["ok"] is True
    await second.close()


async def test_control_replaces_stale_socket_file(hal, short_dir):
    path = short_dir / "mock-hal.sock"
    first = MockControlServer(hal, path)
    await first.start()
    first._server.close()  # die without cleaning up: the socket file stays
    await first._server.wait_closed()
    assert path.exists()
    second = MockControlServer(hal, path)
    await second.start()
    conn = await Client.connect(path)
    assert (await conn.ask({"cmd": "state"}))["ok"] is True
    await conn.close()
    await second.close()
    assert not path.exists()


async def test_control_refuses_live_socket_or_regular_file(server, hal, short_dir):
    with pytest.raises(HalStartError, match="already listening"):
        await MockControlServer(hal, server.path).start()
    plain = short_dir / "plain"
    plain.write_text("precious")
    with pytest.raises(HalStartError, match="not a socket"):
        await MockControlServer(hal, plain).start()
    assert plain.read_text() == "precious"


async def test_control_rejects_overlong_socket_path(hal, short_dir):
    with pytest.raises(HalStartError, match="longer than 107 bytes"):
        await MockControlServer(hal, short_dir / ("s" * 120)).start()


async def test_control_close_drops_clients_and_removes_socket(hal, short_dir):
    control = MockControlServer(hal, short_dir / "mock-hal.sock")
    await control.start()
    conn = await Client.connect(control.path)
    await conn.ask({"cmd": "state"})
    await control.close()
    assert await asyncio.wait_for(conn.reader.read(), 2) == b""
    await conn.close()
    assert not control.path.exists()
    await control.close()  # twice is harmless
    assert "closed" in repr(control)
