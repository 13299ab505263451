"""Client of the daemon's status socket ``<data_dir>/agent.sock``.

The protocol is newline-delimited JSON, one request per line:
``{"cmd": "snapshot"}`` is answered by one line ``{"ok": true, "status": SNAPSHOT}``;
``{"cmd": "watch"}`` by that same line, then ``{"event": "status", "status": SNAPSHOT}`` per change
until the client closes. Anything else gets ``{"ok": false, "error": "..."}``.

Imports only the standard library, so ``ocpp-agent status`` and the web process can use it without
loading the agent (or aiohttp).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

from agent.status import MAX_LINE, socket_path


class AgentNotRunning(Exception):
    """No agent answers on the status socket (absent, refused, closed, or not answering in time)."""


class StatusProtocolError(AgentNotRunning):
    """Something answered on the status socket, but not with the status protocol."""


def read_snapshot(data_dir: Path | str, *, timeout: float = 2.0) -> dict:
    """The running agent's current SNAPSHOT (synchronous: for short-lived commands).

    Raises AgentNotRunning when the socket is missing, refuses, or gives no answer within
    ``timeout`` seconds.
    """
    path = socket_path(data_dir)
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b'{"cmd": "snapshot"}\n')
            line = _read_line(sock, deadline)
    except (OSError, TimeoutError) as exc:  # FileNotFoundError, ConnectionRefusedError, timeouts
        raise AgentNotRunning(_unreachable(path, exc)) from exc
    return _status_of(_decode(line, path), path)


async def watch(data_dir: Path | str) -> AsyncIterator[dict]:
    """Yield the running agent's SNAPSHOT now, then again at every change, until the caller stops.

    Raises AgentNotRunning when it cannot connect, or when the daemon goes away (shutdown, crash).
    Closing the generator (``aclose()``, leaving an ``async for``) closes the connection.
    """
    path = socket_path(data_dir)
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_LINE)
    except OSError as exc:
        raise AgentNotRunning(_unreachable(path, exc)) from exc
    try:
        writer.write(b'{"cmd": "watch"}\n')
        await writer.drain()
        while True:
            try:
                line = await reader.readline()
            except (OSError, ValueError) as exc:  # reset, or a line over MAX_LINE
                raise AgentNotRunning(f"the agent on {path} went away: {exc}") from exc
            if not line.endswith(b"\n"):
                raise AgentNotRunning(f"the agent on {path} closed the status stream")
            yield _status_of(_decode(line, path), path)
    except ConnectionError as exc:
        raise AgentNotRunning(f"the agent on {path} went away: {exc}") from exc
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _unreachable(path: Path, exc: BaseException) -> str:
    """Why the agent at ``path`` cannot be asked, in words for a person."""
    if isinstance(exc, FileNotFoundError):
        return f"no agent is running (no status socket {path})"
    if isinstance(exc, ConnectionRefusedError):
        return f"no agent is running (nothing listens on {path})"
    if isinstance(exc, PermissionError):
        return f"cannot open {path}: permission denied (run as the agent's user or a member of its group)"
    if isinstance(exc, TimeoutError):
        return f"the agent on {path} did not answer in time"
    return f"cannot reach the agent on {path}: {getattr(exc, 'strerror', None) or exc}"


def _read_line(sock: socket.socket, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the agent closed the connection before answering")
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk or size > MAX_LINE:
            return b"".join(chunks).split(b"\n", 1)[0]


def _decode(line: bytes, path: Path) -> dict:
    try:
        message = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StatusProtocolError(f"{path} answered something that is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise StatusProtocolError(f"{path} answered {type(message).__name__}, not an object")
    return message


def _status_of(message: dict, path: Path) -> dict:
    """The SNAPSHOT inside an answer or an event line."""
    status = message.get("status")
    if message.get("ok") is False or not isinstance(status, dict):
        raise StatusProtocolError(f"{path} answered without a status: {message.get('error', message)!r}")
    return status
