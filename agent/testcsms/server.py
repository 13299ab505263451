"""A small CSMS built on the `ocpp` library and `websockets`, for the demo and the tests.

It is a real peer: a WebSocket server on loopback that negotiates the OCPP
subprotocol, checks Basic auth when asked, answers the station's CALLs with the
library's server-side ChargePoint, records everything it receives, and can send
CALLs to a connected station. Hooks let a test make it misbehave.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from agent.testcsms.handlers import Csms16ChargePoint, Csms21ChargePoint, Csms201ChargePoint

log = logging.getLogger("agent.csms_sim")


@dataclass
class Received:
    """One CALL the CSMS received."""

    station_id: str
    action: str
    payload: dict
    message_id: str


@dataclass(frozen=True)
class WireFrame:
    """One frame on a station's connection, in the order the CSMS wrote or read it."""

    station_id: str
    direction: str  # "in" (from the station) or "out" (to the station)
    text: str

    def parsed(self) -> list | None:
        """The OCPP-J array, or None for a frame that is not one."""
        try:
            frame = json.loads(self.text)
        except ValueError:
            return None
        return frame if isinstance(frame, list) and len(frame) >= 3 and frame[0] in (2, 3, 4, 5, 6) else None


@dataclass
class CsmsBehaviour:
    """How the simulator answers; tests change these between steps."""

    boot_status: str = "Accepted"
    heartbeat_interval: int = 300
    authorize_status: str = "Accepted"
    password: str | None = None  # when set, Basic auth is required
    next_transaction_id: int = 1
    #: frame_hook(station_id, text) -> reply text to send raw instead of routing, or None
    frame_hook: Callable[[str, str], str | None] | None = None
    select_subprotocol: bool = True
    #: 2.0.1: a personalMessage in the idTokenInfo of Authorize and TransactionEvent answers.
    personal_message: str | None = None
    #: 2.0.1: the totalCost every TransactionEvent answer carries (a tariff's running cost).
    total_cost: float | None = None
    #: 2.1: the transactionLimit (snake_case TransactionLimitType) of the answer to a TransactionEvent Started.
    transaction_limit: dict | None = None
    #: 2.1: the scheduleUpdate (snake_case ChargingScheduleUpdateType) an Accepted answer to
    #: PullDynamicScheduleUpdate carries; None answers Rejected.
    dynamic_update: dict | None = None
    #: 2.1: the tariff (snake_case TariffType) of an accepted Authorize answer: the driver's tariff.
    authorize_tariff: dict | None = None
    #: action -> the CALLERROR code the CSMS answers it with (the CALL is recorded as any other).
    call_errors: dict[str, str] = field(default_factory=dict)
    #: actions the CSMS records and never answers.
    unanswered: set[str] = field(default_factory=set)


@dataclass
class _Station:
    station_id: str
    websocket: Any
    charge_point: Any
    task: asyncio.Task | None = None


#: The subprotocol and the server-side ChargePoint of each OCPP version the simulator speaks.
_VERSIONS = {"1.6": ("ocpp1.6", Csms16ChargePoint), "2.0.1": ("ocpp2.0.1", Csms201ChargePoint),
             "2.1": ("ocpp2.1", Csms21ChargePoint)}


class CsmsSimulator:
    """A loopback CSMS speaking OCPP 1.6J, 2.0.1 or 2.1."""

    def __init__(self, *, ocpp_version: str = "1.6", behaviour: CsmsBehaviour | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 on_frame: Callable[[str, str, str], None] | None = None):
        self.ocpp_version = ocpp_version
        self.subprotocol = _VERSIONS[ocpp_version][0]
        self.behaviour = behaviour or CsmsBehaviour()
        self.ssl_context = ssl_context
        #: on_frame(station_id, direction, text), direction "in" (from the station) or "out"
        self.on_frame = on_frame
        self.received: list[Received] = []
        #: 2.1: every SEND a station sent (never answered), in order.
        self.sends: list[Received] = []
        #: 2.1: each CALL or SEND payload of a station that the 2.1 schemas refused (empty: all were valid).
        self.schema_errors: list[str] = []
        #: Every frame of every connection, in order (see ``calls_before_answers``).
        self.frames: list[WireFrame] = []
        self.stations: dict[str, _Station] = {}
        self.connections = 0
        self._changed = asyncio.Condition()
        self._server = None
        self.port = 0
        self.transactions: dict[int, dict] = {}
        self.start_keys: dict[tuple, int] = {}  # StartTransaction content -> the id it was given
        self.status: dict[tuple[str, int], str] = defaultdict(str)

    @property
    def url(self) -> str:
        """Base URL to put in the agent's csms.url (the agent appends its id)."""
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/ocpp"

    async def start(self, *, port: int = 0) -> str:
        """Listen on 127.0.0.1 (a random port by default); return the base URL."""
        from websockets.asyncio.server import serve

        self._server = await serve(
            self._handle, "127.0.0.1", port, subprotocols=[self.subprotocol],
            select_subprotocol=self._select_subprotocol, process_request=self._check_auth,
            ssl=self.ssl_context, ping_interval=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def drop_connections(self) -> None:
        """Close every station's connection (the CSMS restarting, as a station sees it)."""
        for station in list(self.stations.values()):
            await station.websocket.close()

    def calls_before_answers(self) -> list[str]:
        """Each CALL a station sent while a request of this CSMS to it was unanswered, as
        ``"<station's action> before the answer to <request>"``: the use cases answer first."""
        waiting: dict[str, dict[str, str]] = defaultdict(dict)  # station -> request id -> action
        found = []
        for frame in self.frames:
            parsed = frame.parsed()
            if parsed is None:
                continue
            requests = waiting[frame.station_id]
            if frame.direction == "out" and parsed[0] == 2:
                requests[parsed[1]] = parsed[2]
            elif frame.direction == "in" and parsed[0] in (3, 4):
                requests.pop(parsed[1], None)
            elif frame.direction == "in" and parsed[0] == 2 and requests:
                found += [f"{parsed[2]} before the answer to {action}" for action in requests.values()]
        return found

    def _select_subprotocol(self, connection, subprotocols):
        if self.behaviour.select_subprotocol and self.subprotocol in subprotocols:
            return self.subprotocol
        return None

    def _check_auth(self, connection, request):
        expected = self.behaviour.password
        if expected is None:
            return None
        station_id = request.path.rstrip("/").rsplit("/", 1)[-1]
        token = base64.b64encode(f"{station_id}:{expected}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {token}":
            return connection.respond(401, "Unauthorized\n")
        return None

    async def _handle(self, websocket) -> None:
        station_id = websocket.request.path.rstrip("/").rsplit("/", 1)[-1]
        self.connections += 1
        charge_point = self._make_charge_point(station_id, _HookedConnection(self, station_id, websocket))
        station = _Station(station_id, websocket, charge_point)
        self.stations[station_id] = station
        await self.notify()
        try:
            await charge_point.start()
        except Exception as exc:  # the connection ended; that is normal for a CSMS
            log.debug("station %s disconnected: %r", station_id, exc)
        finally:
            if self.stations.get(station_id) is station:
                del self.stations[station_id]
            await self.notify()

    def _make_charge_point(self, station_id: str, connection):
        return _VERSIONS[self.ocpp_version][1](station_id, connection, simulator=self)

    async def record(self, station_id: str, action: str, payload: dict, message_id: str) -> None:
        """Remember a received CALL and wake waiters."""
        self.received.append(Received(station_id, action, payload, message_id))
        await self.notify()

    async def record_send(self, station_id: str, action: str, payload: dict, message_id: str) -> None:
        """Remember a received SEND (2.1) and wake waiters."""
        self.sends.append(Received(station_id, action, payload, message_id))
        await self.notify()

    async def notify(self) -> None:
        """Wake every ``wait_for`` to re-check its condition."""
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], *, timeout: float = 5.0):
        """Wait until ``predicate()`` is truthy and return its value."""
        async def _wait():
            async with self._changed:
                while not (result := predicate()):
                    await self._changed.wait()
                return result

        return await asyncio.wait_for(_wait(), timeout)

    async def wait_for_call(self, action: str, *, count: int = 1, timeout: float = 5.0) -> list[Received]:
        """Wait until ``count`` CALLs of ``action`` have arrived; return them."""
        return await self.wait_for(lambda: (m := self.calls(action)) and len(m) >= count and m, timeout=timeout)

    async def wait_for_station(self, station_id: str, *, timeout: float = 5.0) -> None:
        """Wait until ``station_id`` is connected."""
        await self.wait_for(lambda: station_id in self.stations, timeout=timeout)

    def calls(self, action: str) -> list[Received]:
        """Every CALL of ``action`` received so far."""
        return [r for r in self.received if r.action == action]

    async def call(self, station_id: str, payload, **kwargs):
        """Send a CALL to a connected station and return its result."""
        return await self.stations[station_id].charge_point.call(payload, suppress=False, **kwargs)

    async def send_raw(self, station_id: str, text: str) -> None:
        """Send any text frame to a station (for malformed-input tests)."""
        await self.stations[station_id].websocket.send(text)

    async def send_callresult_error(self, station_id: str, message_id: str, code: str = "FormatViolation",
                                    description: str = "refused by the test CSMS") -> None:
        """2.1: tell a station its CALLRESULT to ``message_id`` could not be taken (a CALLRESULTERROR)."""
        await self.send_raw(station_id, json.dumps([5, message_id, code, description, {}]))

    def message_id_of_call(self, station_id: str, action: str) -> str | None:
        """The message id of the last CALL of ``action`` this simulator sent to the station."""
        ids = [frame[1] for f in self.frames if f.station_id == station_id and f.direction == "out"
               and (frame := f.parsed()) is not None and frame[0] == 2 and frame[2] == action]
        return ids[-1] if ids else None


class _HookedConnection:
    """The websocket as the library's ChargePoint sees it, with a hook for raw replies."""

    def __init__(self, simulator: CsmsSimulator, station_id: str, websocket):
        self._sim, self._station_id, self._ws = simulator, station_id, websocket
        self.raw_in: list[str] = []

    async def recv(self) -> str:
        while True:
            text = await self._ws.recv()
            self.raw_in.append(text)
            self._observe("in", text)
            hook = self._sim.behaviour.frame_hook
            reply = hook(self._station_id, text) if hook else None
            if reply is None:
                return text
            await self._ws.send(reply)

    async def send(self, text: str) -> None:
        self._observe("out", text)
        await self._ws.send(text)

    def _observe(self, direction: str, text: str) -> None:
        self._sim.frames.append(WireFrame(self._station_id, direction, text))
        if self._sim.on_frame is not None:
            self._sim.on_frame(self._station_id, direction, text)


def message_id_of(text: str) -> str | None:
    """The message id of a frame, or None if it cannot be read."""
    try:
        frame = json.loads(text)
        return frame[1] if isinstance(frame, list) and len(frame) > 1 else None
    except ValueError:
        return None


__all__ = ["CsmsSimulator", "CsmsBehaviour", "Received", "WireFrame", "message_id_of"]
