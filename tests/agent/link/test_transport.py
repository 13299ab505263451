"""Tests of agent.link.transport against a real `websockets` server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from http import HTTPStatus

import pytest
import websocket
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from agent.errors import ConnectFailed, ConnectionLost
from agent.link.transport import TransportOptions, WebSocketConnection
from agent.runtime.backoff import backoff_delays
from tests.certs import Pki, make_pki, server_ssl_context

PASSWORD = "s3cret-Passw0rd-XYZ"
TOKEN = base64.b64encode(f"CP1:{PASSWORD}".encode()).decode()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@dataclass
class Csms:
    """A running test server and what it saw."""

    port: int
    connections: list[ServerConnection] = field(default_factory=list)

    def url(self, *, scheme: str = "ws", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}/CP1"

    async def closed_connection(self) -> ServerConnection:
        """The first connection, once its closing handshake is over."""
        connection = self.connections[0]
        await asyncio.wait_for(connection.wait_closed(), 2)
        return connection


async def echo(connection: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in connection:
            await connection.send(message)


def require_basic_auth(connection: ServerConnection, request):
    if request.headers.get("Authorization") != f"Basic {TOKEN}":
        return connection.respond(HTTPStatus.UNAUTHORIZED, "wrong credentials\n")
    return None


@contextlib.asynccontextmanager
async def running_csms(handler=echo, **kwargs) -> AsyncIterator[Csms]:
    kwargs.setdefault("subprotocols", ["ocpp1.6", "ocpp2.0.1"])
    csms = Csms(port=0)

    async def recording(connection: ServerConnection) -> None:
        csms.connections.append(connection)
        await handler(connection)

    async with serve(recording, "127.0.0.1", 0, ping_interval=None, close_timeout=1,
                     **kwargs) as server:
        csms.port = server.sockets[0].getsockname()[1]
        yield csms


def options(url: str, **overrides) -> TransportOptions:
    values = dict(url=url, subprotocol="ocpp1.6", station_id="CP1",
                  connect_timeout_s=2.0, ping_interval_s=0.0, ping_timeout_s=1.0)
    values.update(overrides)
    return TransportOptions(**values)


def transport_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("ws-reader", "ws-writer"))]


def our_log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Log output of the agent and of websocket-client (not of the test server)."""
    return "\n".join(r.getMessage() for r in caplog.records
                     if r.name.partition(".")[0] in ("agent", "websocket"))


# -- profile 0, subprotocol --------------------------------------------------

async def test_transport_echo_round_trip_reports_frames_both_ways():
    frames = []
    async with running_csms() as csms:
        conn = await WebSocketConnection.open(options(csms.url()),
                                              on_frame=lambda d, t: frames.append((d, t)))
        assert repr(conn) == f"<WebSocketConnection {csms.url()} ocpp1.6 open>"
        await conn.send('[2,"1","Heartbeat",{}]')
        assert await conn.recv() == '[2,"1","Heartbeat",{}]'
        await conn.close()
    assert frames == [("out", '[2,"1","Heartbeat",{}]'), ("in", '[2,"1","Heartbeat",{}]')]


@pytest.mark.parametrize("subprotocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_transport_negotiates_requested_subprotocol(subprotocol):
    async with running_csms() as csms:
        conn = await WebSocketConnection.open(options(csms.url(), subprotocol=subprotocol))
        assert conn.subprotocol == subprotocol
        assert csms.connections[0].subprotocol == subprotocol
        await conn.close()


async def test_transport_rejects_server_without_subprotocol(caplog):
    async with running_csms(subprotocols=None) as csms:
        with pytest.raises(ConnectFailed, match="CSMS did not accept subprotocol ocpp1.6"):
            await WebSocketConnection.open(options(csms.url()))
        assert (await csms.closed_connection()).close_code == 1002
    warnings = [r for r in caplog.records if r.name == "agent.transport"]
    assert [r.levelno for r in warnings] == [logging.WARNING]


async def test_transport_rejects_other_subprotocol():
    async with running_csms(select_subprotocol=lambda conn, offered: "ocpp2.0.1") as csms:
        with pytest.raises(ConnectFailed, match=r"ocpp1\.6 \(it selected 'ocpp2\.0\.1'\)"):
            await WebSocketConnection.open(options(csms.url()))


async def test_transport_answers_server_pings():
    async with running_csms() as csms:
        conn = await WebSocketConnection.open(options(csms.url()))
        pong = await csms.connections[0].ping()
        await asyncio.wait_for(pong, 2)
        await conn.close()


async def test_transport_on_frame_failure_is_logged_and_harmless(caplog):
    def broken_hook(direction, text):
        raise RuntimeError("message log is full")

    async with running_csms() as csms:
        conn = await WebSocketConnection.open(options(csms.url()), on_frame=broken_hook)
        await conn.send("ping?")
        assert await conn.recv() == "ping?"
        assert not conn.closed
        await conn.close()
    errors = [r for r in caplog.records if r.name == "agent.transport" and r.levelno >= logging.ERROR]
    assert len(errors) == 2 and "on_frame" in errors[0].getMessage()


# -- profile 1: Basic auth ---------------------------------------------------

async def test_transport_profile1_sends_basic_auth(caplog):
    caplog.set_level(logging.DEBUG)
    async with running_csms(process_request=require_basic_auth) as csms:
        conn = await WebSocketConnection.open(
            options(csms.url(), security_profile=1, password=PASSWORD))
        await conn.send("hi")
        assert await conn.recv() == "hi"
        await conn.close()
    assert PASSWORD not in our_log_text(caplog) and TOKEN not in our_log_text(caplog)
    assert PASSWORD not in repr(conn) + repr(options(csms.url(), password=PASSWORD))


async def test_transport_profile1_wrong_password_is_http_401(caplog):
    caplog.set_level(logging.DEBUG)
    async with running_csms(process_request=require_basic_auth) as csms:
        with pytest.raises(ConnectFailed, match=r"CSMS rejected the credentials \(HTTP 401\)"):
            await WebSocketConnection.open(
                options(csms.url(), security_profile=1, password="wrong-" + PASSWORD))
    assert PASSWORD not in our_log_text(caplog)
    assert "HTTP 401" in our_log_text(caplog)


async def test_transport_reports_other_http_status():
    def forbid(connection, request):
        return connection.respond(HTTPStatus.NOT_FOUND, "unknown station\n")

    async with running_csms(process_request=forbid) as csms:
        with pytest.raises(ConnectFailed, match="HTTP 404"):
            await WebSocketConnection.open(options(csms.url()))


# -- profiles 2 and 3: TLS ---------------------------------------------------

def tls_options(csms: Csms, pki: Pki, *, host: str = "127.0.0.1", **overrides):
    values = dict(security_profile=2, password=PASSWORD, ca_file=str(pki.ca.cert))
    values.update(overrides)
    return options(csms.url(scheme="wss", host=host), **values)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_transport_profile2_connects_with_right_ca(pki, host):
    async with running_csms(ssl=server_ssl_context(pki.server),
                            process_request=require_basic_auth) as csms:
        conn = await WebSocketConnection.open(tls_options(csms, pki, host=host))
        await conn.send("over tls")
        assert await conn.recv() == "over tls"
        await conn.close()
        assert conn.close_reason == "closed by agent (1000)"


@pytest.mark.parametrize(("identity", "host", "message"), [
    ("server", "127.0.0.1", "not trusted"),  # client trusts only other_ca, see below
    ("wrong_host", "127.0.0.1", "not valid for host name '127.0.0.1'"),
    ("wrong_host", "localhost", "not valid for host name 'localhost'"),
    ("expired", "127.0.0.1", "has expired"),
])
async def test_transport_profile2_rejects_bad_server_certificate(pki, identity, host, message):
    ca = pki.other_ca if identity == "server" else pki.ca
    async with running_csms(ssl=server_ssl_context(getattr(pki, identity))) as csms:
        started = time.monotonic()
        with pytest.raises(ConnectFailed, match=message):
            await WebSocketConnection.open(
                tls_options(csms, pki, host=host, ca_file=str(ca.cert)))
        assert time.monotonic() - started < 1.5


async def test_transport_profile3_mutual_tls(pki):
    context = server_ssl_context(pki.server, ca=pki.ca, require_client_cert=True)
    async with running_csms(ssl=context) as csms:
        conn = await WebSocketConnection.open(tls_options(
            csms, pki, security_profile=3, password="",
            client_cert_file=str(pki.client.cert), client_key_file=str(pki.client.key)))
        peer = csms.connections[0].transport.get_extra_info("peercert")
        assert dict(item[0] for item in peer["subject"])["commonName"] == "CP1"
        assert "Authorization" not in csms.connections[0].request.headers
        await conn.close()


async def test_transport_mutual_tls_server_rejects_missing_client_cert(pki):
    context = server_ssl_context(pki.server, ca=pki.ca, require_client_cert=True)
    async with running_csms(ssl=context) as csms:
        with pytest.raises(ConnectFailed, match="requires a client certificate"):
            await WebSocketConnection.open(tls_options(csms, pki))


async def test_transport_mutual_tls_server_rejects_foreign_client_cert(pki):
    context = server_ssl_context(pki.server, ca=pki.ca, require_client_cert=True)
    async with running_csms(ssl=context) as csms:
        with pytest.raises(ConnectFailed, match="rejected the client certificate"):
            await WebSocketConnection.open(tls_options(
                csms, pki, security_profile=3, client_cert_file=str(pki.foreign_client.cert),
                client_key_file=str(pki.foreign_client.key)))


@pytest.mark.parametrize(("overrides", "message"), [
    (dict(url="ws://127.0.0.1:9/CP1", security_profile=2, password="x"), "requires a wss://"),
    (dict(url="ws://127.0.0.1:9/CP1", security_profile=3), "requires a wss://"),
    (dict(url="wss://127.0.0.1:9/CP1", security_profile=3), "client_cert_file and client_key"),
    (dict(security_profile=1), "profile 1 requires a password"),
    (dict(url="wss://127.0.0.1:9/CP1", security_profile=2), "profile 2 requires a password"),
    (dict(security_profile=1, password="x", station_id="CP:1"), "without ':'"),
    (dict(url="http://127.0.0.1:9/CP1"), "ws:// or wss://"),
    (dict(url="wss://127.0.0.1:9/CP1", ca_file="/nonexistent/ca.pem"), "ca_file not found"),
    (dict(security_profile=4), "security_profile must be 0-3"),
])
async def test_transport_option_errors_fail_before_network(monkeypatch, overrides, message):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(websocket.WebSocket, "connect", no_network)
    values = {"url": "ws://127.0.0.1:9/CP1", **overrides}
    with pytest.raises(ConnectFailed, match=message):
        await WebSocketConnection.open(options(**values))


# -- connection end ----------------------------------------------------------

async def test_transport_server_close_ends_connection():
    async def say_bye(connection: ServerConnection) -> None:
        await connection.send("bye")
        await connection.close(1001, "going away")

    async with running_csms(say_bye) as csms:
        conn = await WebSocketConnection.open(options(csms.url()))
        await asyncio.wait_for(conn.wait_closed(), 2)
        assert conn.closed
        assert conn.close_reason == "closed by CSMS (1001): going away"
        assert await conn.recv() == "bye"  # received before the close: still handed out
        for _ in range(2):
            with pytest.raises(ConnectionLost, match="closed by CSMS"):
                await conn.recv()
        with pytest.raises(ConnectionLost):
            await conn.send("too late")
        assert (await csms.closed_connection()).close_code == 1001
    assert transport_threads() == []


async def test_transport_server_drop_without_close_frame_ends_connection():
    async def drop(connection: ServerConnection) -> None:
        connection.transport.abort()

    async with running_csms(drop) as csms:
        conn = await WebSocketConnection.open(options(csms.url()))
        with pytest.raises(ConnectionLost, match="connection lost"):
            await asyncio.wait_for(conn.recv(), 2)
        await conn.wait_closed()


async def test_transport_close_sends_close_frame_and_joins_threads():
    async with running_csms() as csms:
        baseline = threading.active_count()
        conn = await WebSocketConnection.open(options(csms.url(), ping_interval_s=5))
        assert len(transport_threads()) == 2
        await conn.close(1001, "agent shutdown")
        assert threading.active_count() == baseline
        assert transport_threads() == []
        server_side = await csms.closed_connection()
        assert (server_side.close_code, server_side.close_reason) == (1001, "agent shutdown")
        await conn.close()  # idempotent
        assert "closed by agent (1001)" in repr(conn)
        with pytest.raises(ConnectionLost):
            await conn.send("x")
        with pytest.raises(ConnectionLost):
            await conn.recv()


async def test_transport_connection_refused_fails_fast(caplog):
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ConnectFailed, match=f"connection refused by 127.0.0.1:{port}"):
        await WebSocketConnection.open(options(f"ws://127.0.0.1:{port}/CP1"))
    assert time.monotonic() - started < 1.0
    assert len([r for r in caplog.records if r.name == "agent.transport"]) == 1
    assert transport_threads() == []


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[int, list[asyncio.StreamWriter]]]:
    """A TCP server that accepts connections and never says a word; yields (port, accepted)."""
    accepted: list[asyncio.StreamWriter] = []
    handlers: list[asyncio.Task] = []
    done = asyncio.Event()

    async def say_nothing(reader, writer) -> None:
        accepted.append(writer)
        handlers.append(asyncio.current_task())
        await done.wait()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    server = await asyncio.start_server(say_nothing, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], accepted
    finally:
        done.set()
        server.close()
        await asyncio.gather(*handlers)
        await server.wait_closed()


async def test_transport_silent_server_times_out():
    async with silent_server() as (port, _):
        started = time.monotonic()
        with pytest.raises(ConnectFailed, match=f"no answer from 127.0.0.1:{port} within 0.3 s"):
            await WebSocketConnection.open(
                options(f"ws://127.0.0.1:{port}/CP1", connect_timeout_s=0.3))
        assert time.monotonic() - started < 1.0


async def test_transport_cancelled_open_leaves_nothing_behind():
    async with silent_server() as (port, accepted):
        task = asyncio.create_task(WebSocketConnection.open(
            options(f"ws://127.0.0.1:{port}/CP1", connect_timeout_s=0.3)))
        while not accepted:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):  # the worker gives up after connect_timeout_s, then exits
            if not transport_threads():
                break
            await asyncio.sleep(0.02)
        assert transport_threads() == []


# -- keepalive: half-open detection through a stalling TCP proxy ---------------

class StallingProxy:
    """A TCP proxy that can stop forwarding without closing anything: a half-open link."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.forwarding = True
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> StallingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await self._server.wait_closed()

    async def _accept(self, client_reader, client_writer) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [client_writer, server_writer]
        self._tasks += [asyncio.create_task(self._pipe(client_reader, server_writer)),
                        asyncio.create_task(self._pipe(server_reader, client_writer))]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if self.forwarding:  # when stalled, bytes vanish as on a dead link
                    writer.write(data)
                    await writer.drain()


async def test_transport_detects_half_open_connection():
    interval, timeout = 0.3, 0.3
    async with running_csms() as csms, StallingProxy(csms.port) as proxy:
        conn = await WebSocketConnection.open(options(
            f"ws://127.0.0.1:{proxy.port}/CP1", ping_interval_s=interval, ping_timeout_s=timeout))
        await asyncio.sleep(3 * interval)  # several answered pings: no false alarm
        assert not conn.closed
        proxy.forwarding = False
        stalled_at = time.monotonic()
        await asyncio.wait_for(conn.wait_closed(), 3)
        assert time.monotonic() - stalled_at <= interval + timeout + 0.25
        assert conn.close_reason == "no pong within 0.3 s"
        with pytest.raises(ConnectionLost, match="no pong within 0.3 s"):
            await conn.recv()
    assert transport_threads() == []


async def test_transport_close_gives_up_on_silent_peer():
    async with running_csms() as csms, StallingProxy(csms.port) as proxy:
        conn = await WebSocketConnection.open(options(
            f"ws://127.0.0.1:{proxy.port}/CP1", ping_timeout_s=0.3))
        proxy.forwarding = False
        started = time.monotonic()
        await conn.close()
        assert 0.25 <= time.monotonic() - started < 1.0
        assert conn.close_reason == "closed by agent (1000)"
    assert transport_threads() == []


# -- reconnect back-off --------------------------------------------------------

def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_backoff_delays_double_then_cap():
    delays = backoff_delays(wait_minimum_s=2, random_range_s=0, repeat_times=3)
    assert take(delays, 7) == [2, 4, 8, 16, 16, 16, 16]


def test_backoff_delays_add_bounded_randomness():
    delays = take(backoff_delays(wait_minimum_s=1, random_range_s=5, repeat_times=2,
                                 rng=random.Random(7)), 50)
    bases = [1, 2] + [4] * 48
    assert all(base <= d <= base + 5 for base, d in zip(bases, delays))
    assert len({round(d - b, 6) for b, d in zip(bases, delays)}) == 50  # really random


def test_backoff_delays_are_reproducible_per_seed_and_differ_across_stations():
    def run(seed):
        return take(backoff_delays(wait_minimum_s=1, random_range_s=10, repeat_times=5,
                                   rng=random.Random(seed)), 5)

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_backoff_delays_reject_negative_values():
    with pytest.raises(ValueError):
        backoff_delays(wait_minimum_s=-1, random_range_s=0, repeat_times=0)


def test_transport_options_hide_password():
    opts = replace(options("ws://h/CP1"), password=PASSWORD)
    assert PASSWORD not in repr(opts)
