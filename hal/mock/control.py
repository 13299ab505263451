"""The mock HAL control socket (CONTRACT.md, "Mock HAL control").

A Unix socket at ``<data_dir>/mock-hal.sock``; one JSON object per line in,
one per line out: ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``.
A bad request gets an error answer; the connection and the server go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path

from hal.errors import HalError, HalStartError
from hal.mock.hardware import INJECTABLE_FAULTS, MockHal

log = logging.getLogger(__name__)

SOCKET_NAME = "mock-hal.sock"
SOCKET_MODE = 0o660
MAX_LINE = 64 * 1024
# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107

StatusProvider = Callable[[int], dict]


def socket_path(data_dir: Path) -> Path:
    """Where the agent with this ``data_dir`` listens: ``<data_dir>/mock-hal.sock``."""
    return Path(data_dir) / SOCKET_NAME


class BadRequest(HalError, ValueError):
    """A control request is malformed; the message is sent back as the error."""


class MockControlServer:
    """Serves the control protocol for ``hal`` on a Unix socket at ``path``.

    ``status_provider(evse_id)`` gives the agent's side of ``state`` (e.g.
    ``{"status": "Charging", "transaction_id": "123"}``); without one, both
    are null. Several clients may be connected at once.
    """

    def __init__(self, hal: MockHal, path: Path, *,
                 status_provider: StatusProvider | None = None) -> None:
        self.hal = hal
        self.path = Path(path)
        self.status_provider = status_provider
        self._server: asyncio.AbstractServer | None = None
        self._clients: dict[asyncio.StreamWriter, asyncio.Task] = {}
        self._handlers = {
            "plug": self._plug, "unplug": self._unplug, "ev": self._ev, "tap": self._tap,
            "power": self._power, "fault": self._fault, "clear": self._clear,
            "state": self._state, "external_limit": self._external_limit,
        }

    async def start(self) -> None:
        """Listen (mode 0o660), replacing a stale socket file; HalStartError if that is not possible."""
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            raise HalStartError(f"control socket path is longer than {MAX_SOCKET_PATH} bytes: "
                                f"{self.path}")
        await _remove_stale_socket(self.path)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_LINE)
            os.chmod(self.path, SOCKET_MODE)
        except OSError as exc:
            raise HalStartError(f"cannot listen on {self.path}: {exc}") from exc
        log.info("mock HAL control socket listening on %s", self.path)

    async def close(self) -> None:
        """Stop listening, drop the clients and remove the socket file."""
        if self._server is None:
            return
        self._server.close()
        clients = list(self._clients.items())
        for writer, _ in clients:
            writer.close()
        # Python 3.11's wait_closed() does not wait for connection handlers.
        await asyncio.gather(*(task for _, task in clients), return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients[writer] = asyncio.current_task()
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # over MAX_LINE: the stream cannot be resynchronised
                    await _send(writer, _error(f"request longer than {MAX_LINE} bytes"))
                    break
                if not line:
                    break
                await _send(writer, self.answer(line))
        except ConnectionError:
            pass  # the client went away mid-answer
        finally:
            self._clients.pop(writer, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def answer(self, line: bytes | str) -> dict:
        """The answer to one request line (never raises)."""
        try:
            request = _parse(line)
            handler = self._handlers.get(request["cmd"])
            if handler is None:
                raise BadRequest(f"unknown cmd {request['cmd']!r}; known: "
                                 f"{', '.join(self._handlers)}")
            return {"ok": True, **handler(request)}
        except (BadRequest, HalError, ValueError, TypeError) as exc:
            return _error(str(exc))
        except Exception as exc:
            log.exception("control request %r failed", line)
            return _error(f"internal error: {exc!r}")

    # -- commands ----------------------------------------------------------

    def _plug(self, req: dict) -> dict:
        self.hal.plug(self._evse(req, allowed={"evse"}))
        return {}

    def _unplug(self, req: dict) -> dict:
        self.hal.unplug(self._evse(req, allowed={"evse"}))
        return {}

    def _ev(self, req: dict) -> dict:
        evse = self._evse(req, allowed={"evse", "charge"})
        self.hal.ev_charge(evse, _field(req, "charge", bool, "true or false"))
        return {}

    def _tap(self, req: dict) -> dict:
        _only(req, {"id_token", "evse"})
        token = _field(req, "id_token", str, "a string")
        evse = self._evse(req, allowed={"id_token", "evse"}) if "evse" in req else None
        return {"delivered": self.hal.tap(token, evse)}

    def _power(self, req: dict) -> dict:
        evse = self._evse(req, allowed={"evse", "watts"})
        watts = _field(req, "watts", (int, float), "a number")
        if not math.isfinite(watts) or watts < 0:
            raise BadRequest(f'"watts" must be a finite number >= 0, not {watts!r}')
        self.hal.set_power(evse, watts)
        return {}

    def _fault(self, req: dict) -> dict:
        evse, name = self._fault_args(req)
        self.hal.inject_fault(evse, name)
        return {}

    def _clear(self, req: dict) -> dict:
        evse, name = self._fault_args(req)
        self.hal.clear_fault(evse, name)
        return {}

    def _external_limit(self, req: dict) -> dict:
        _only(req, {"active"})
        self.hal.set_external_limit(_field(req, "active", bool, "true or false"))
        return {"external_limit": self.hal.external_limit_snapshot()}

    def _state(self, req: dict) -> dict:
        _only(req, set())
        evses = [{**snap, **self._status(snap["id"])} for snap in self.hal.snapshot()]
        return {"evses": evses, "display": self.hal.display.text,
                "external_limit": self.hal.external_limit_snapshot()}

    # -- validation --------------------------------------------------------

    def _fault_args(self, req: dict) -> tuple[int, str]:
        evse = self._evse(req, allowed={"evse", "name"})
        name = _field(req, "name", str, "a string")
        if name not in INJECTABLE_FAULTS:
            raise BadRequest(f"unknown fault {name!r}; injectable: {', '.join(INJECTABLE_FAULTS)}")
        return evse, name

    def _evse(self, req: dict, *, allowed: set[str]) -> int:
        _only(req, allowed)
        evse = _field(req, "evse", int, "an integer")
        if evse not in self.hal.evses:
            raise BadRequest(f"unknown evse {evse}; this station has {sorted(self.hal.evses)}")
        return evse

    def _status(self, evse_id: int) -> dict:
        if self.status_provider is None:
            return {"status": None, "transaction_id": None}
        status = self.status_provider(evse_id) or {}
        return {"status": status.get("status"), "transaction_id": status.get("transaction_id")}

    def __repr__(self) -> str:
        state = "listening" if self._server is not None else "closed"
        return f"<MockControlServer {str(self.path)!r} {state} clients={len(self._clients)}>"


def _parse(line: bytes | str) -> dict:
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    if not text.strip():
        raise BadRequest("empty request: send one JSON object per line")
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise BadRequest(f"a request must be a JSON object, not {type(request).__name__}")
    if not isinstance(request.get("cmd"), str):
        raise BadRequest('a request needs "cmd" (a string)')
    return request


def _only(req: dict, allowed: set[str]) -> None:
    """Reject unknown fields, so a typo ("evse_id") is an error, not silently ignored."""
    unknown = sorted(set(req) - allowed - {"cmd"})
    if unknown:
        raise BadRequest(f"unknown field(s) for {req['cmd']!r}: {', '.join(unknown)}")


def _field(req: dict, name: str, kind: type | tuple[type, ...], what: str):
    if name not in req:
        raise BadRequest(f'{req["cmd"]!r} needs "{name}"')
    value = req[name]
    # bool is an int subclass; true is not a valid EVSE id or wattage.
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise BadRequest(f'"{name}" must be {what}, not {json.dumps(value)}')
    return value


def _error(message: str) -> dict:
    return {"ok": False, "error": message}


async def _send(writer: asyncio.StreamWriter, answer: dict) -> None:
    writer.write(json.dumps(answer).encode("utf-8") + b"\n")
    await writer.drain()


async def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file left by a dead agent; refuse to touch a live one or a non-socket."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise HalStartError(f"{path} exists and is not a socket; not removing it")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1.0)
    except (OSError, asyncio.TimeoutError):
        path.unlink(missing_ok=True)  # nobody listening: stale
        return
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    raise HalStartError(f"another process is already listening on {path}")
