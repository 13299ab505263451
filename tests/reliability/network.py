"""Network faults between the agent and its CSMS: a misbehaving CSMS, a stalling link, a refusing port.

- ``FaultyCsms``: the CSMS simulator whose answer to the next CALL of chosen actions comes late,
  twice, after replies with ids nobody asked for, or never (the connection is cut instead).
- ``StallingProxy``: a TCP proxy whose open links can go silent without closing (half-open), while
  new connections pass.
- ``Refuser``: something on the CSMS port that accepts and resets every connection at once, and
  notes when each attempt came (to measure the agent's back-off).
- ``delivery_order_problems``: transaction messages must reach the CSMS in the order they happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

from agent.testcsms.server import CsmsSimulator

REPLY_FAULTS = ("late", "twice", "unknown_ids", "drop")


class FaultyCsms(CsmsSimulator):
    """A CsmsSimulator that can spoil its answer to the next CALL of chosen actions.

    ``arm(fault, actions)`` spoils the answer to the next CALL whose action is in ``actions``;
    the returned event is set once that happened. The CALL itself is processed (recorded) as
    usual, so a resend after a spoiled answer reaches the CSMS a second time, as it would.
    """

    def __init__(self, *, late_s: float = 3.0, **kwargs):
        super().__init__(**kwargs)
        self.late_s = late_s
        self._armed: tuple[str, frozenset[str], asyncio.Event] | None = None
        self._target: tuple[str, str, asyncio.Event] | None = None  # (fault, message id, done)

    def arm(self, fault: str, actions) -> asyncio.Event:
        """Spoil the answer to the next CALL of ``actions`` with ``fault`` (one of REPLY_FAULTS)."""
        if fault not in REPLY_FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        done = asyncio.Event()
        self._armed = (fault, frozenset(actions), done)
        return done

    def _make_charge_point(self, station_id: str, connection):
        return super()._make_charge_point(station_id, _FaultyConnection(self, station_id, connection))

    def _incoming(self, text: str) -> None:
        if self._armed is None:
            return
        frame = _frame(text)
        fault, actions, done = self._armed
        if frame and frame[0] == 2 and frame[2] in actions:
            self._armed = None
            self._target = (fault, frame[1], done)

    def _fault_for(self, text: str) -> tuple[str, asyncio.Event] | None:
        frame = _frame(text)
        if self._target is None or not frame or frame[0] not in (3, 4) or frame[1] != self._target[1]:
            return None
        fault, _, done = self._target
        self._target = None
        return fault, done


class _FaultyConnection:
    """The connection as the CSMS's ChargePoint sees it, spoiling one chosen answer."""

    def __init__(self, csms: FaultyCsms, station_id: str, inner):
        self._csms, self._station_id, self._inner = csms, station_id, inner

    async def recv(self) -> str:
        """The station's next frame (noting a CALL whose answer is to be spoiled)."""
        text = await self._inner.recv()
        self._csms._incoming(text)
        return text

    async def send(self, text: str) -> None:
        """Send the CSMS's frame, spoiled if it is the chosen answer."""
        spoil = self._csms._fault_for(text)
        if spoil is None:
            await self._inner.send(text)
            return
        fault, done = spoil
        done.set()
        if fault == "drop":
            # Cut the TCP connection with the answer unsent: no close frame, as when a CSMS dies.
            self._csms.stations[self._station_id].websocket.transport.abort()
            return
        if fault == "late":
            await asyncio.sleep(self._csms.late_s)
        elif fault == "unknown_ids":
            await self._inner.send(json.dumps([3, str(uuid.uuid4()), {}]))
            await self._inner.send(json.dumps([4, str(uuid.uuid4()), "GenericError", "nobody asked", {}]))
        await self._inner.send(text)
        if fault == "twice":
            await self._inner.send(text)


def _frame(text: str) -> list | None:
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    return frame if isinstance(frame, list) and len(frame) >= 3 else None


class StallingProxy:
    """A TCP proxy to ``target_port``; ``stall()`` silences the open links without closing them."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = 0
        self._links: list[dict] = []
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        """Listen on 127.0.0.1 (a free port); return the port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def stall(self) -> None:
        """From now on the open links forward nothing (bytes vanish as on a dead link); new ones work."""
        for link in self._links:
            link["stalled"] = True

    async def close(self) -> None:
        """Stop listening and close every link."""
        self._server.close()
        for link in self._links:
            for task in link["tasks"]:
                task.cancel()
            for writer in link["writers"]:
                writer.close()
        await asyncio.gather(*(t for link in self._links for t in link["tasks"]), return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, client_reader, client_writer) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        link = {"stalled": False, "writers": [client_writer, server_writer], "tasks": []}
        link["tasks"] = [asyncio.create_task(self._pipe(link, client_reader, server_writer)),
                         asyncio.create_task(self._pipe(link, server_reader, client_writer))]
        self._links.append(link)

    async def _pipe(self, link: dict, reader, writer) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if not link["stalled"]:
                    writer.write(data)
                    await writer.drain()
            writer.close()


class Refuser:
    """Accepts each connection on ``port`` and resets it at once; ``attempts`` holds their times."""

    def __init__(self, port: int):
        self.port = port
        self.attempts: list[float] = []
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Take the port (the CSMS must have released it)."""
        self._server = await asyncio.start_server(self._reset, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Release the port."""
        self._server.close()
        await self._server.wait_closed()

    def _reset(self, reader, writer) -> None:
        self.attempts.append(time.monotonic())
        writer.transport.abort()

    def delays(self) -> list[float]:
        """Seconds between successive attempts."""
        return [round(b - a, 2) for a, b in zip(self.attempts, self.attempts[1:])]


def _arrivals(version: str, csms) -> dict[object, list[tuple[int, str, object]]]:
    """Per transaction: (arrival index, kind, order key) of each message's first arrival."""
    seen, per_tx = set(), {}
    for index, call in enumerate(csms.received):
        p = call.payload
        if version == "2.0.1" and call.action == "TransactionEvent":
            tx_id, kind, order = p["transactionInfo"]["transactionId"], p["eventType"], p["seqNo"]
        elif version == "1.6" and call.action == "StartTransaction":
            key = (call.station_id, p["connectorId"], p["idTag"], p["meterStart"], p["timestamp"])
            tx_id, kind, order = csms.start_keys.get(key), "Started", p["timestamp"]
        elif version == "1.6" and call.action == "StopTransaction":
            tx_id, kind, order = p["transactionId"], "Ended", p["timestamp"]
        elif version == "1.6" and call.action == "MeterValues" and "transactionId" in p:
            tx_id, kind, order = p["transactionId"], "Updated", p["meterValue"][0]["timestamp"]
        else:
            continue
        identity = (call.action, json.dumps(p, sort_keys=True))
        if identity not in seen:
            seen.add(identity)
            per_tx.setdefault(tx_id, []).append((index, kind, order))
    return per_tx


def delivery_order_problems(version: str, csms) -> list[str]:
    """Transaction messages delivered out of the order they were queued in (the outbox is FIFO).

    Within a transaction: the start first, the end last, the rest in order (2.0.1 seqNo, 1.6 sample
    time). Between the transactions of one station: each ends before the next one starts (the
    sessions in these tests follow each other).
    """
    problems, spans = [], []
    for tx_id, messages in _arrivals(version, csms).items():
        kinds = [kind for _, kind, _ in messages]
        if kinds[:1] != ["Started"] or ("Ended" in kinds and kinds[-1] != "Ended"):
            problems.append(f"{tx_id}: arrived as {kinds}")
        updates = [order for _, kind, order in messages if kind == "Updated"]
        if version == "2.0.1":
            updates = [order for _, _, order in messages]
        if updates != sorted(updates):
            problems.append(f"{tx_id}: updates arrived as {updates}")
        spans.append((messages[0][0], messages[-1][0], tx_id))
    spans.sort()
    problems += [f"{b[2]} started (#{b[0]}) before {a[2]} ended (#{a[1]})"
                 for a, b in zip(spans, spans[1:]) if b[0] < a[1]]
    return problems
