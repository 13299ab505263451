"""The status socket inside the daemon: ``<data_dir>/agent.sock`` (mode 0660), every HAL backend.

Newline-delimited JSON, one request per line (the protocol is described in ``agent.status.client``):
``snapshot`` answers the SNAPSHOT once; ``watch`` answers it, then pushes it again at every change until
the client closes; anything else gets ``{"ok": false, "error": ...}`` and the connection stays usable.

Two promises shape this module:

- **Nobody listening costs nothing.** The agent calls :meth:`StatusServer.changed` from its change hooks
  (EVSE status and transaction changes, meter polls, handled hardware events, the display, the CSMS link);
  with no watcher it returns at once: no snapshot is built, no timer is armed.
- **A client can never hold the charging loop.** ``changed()`` only arms one timer; the snapshot is built
  once per push, after a short settling delay (a burst of hooks is one push) and at most every
  ``min_interval_s`` (~5 lines/s). Each watcher is served by its own connection task that keeps only the
  latest line not yet written (a slow reader skips to the newest state) and waits for its socket buffer
  there, never in a station callback; one that reads nothing for ``stall_s`` is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
from pathlib import Path
from typing import Callable

from agent.errors import AgentError
from agent.status import MAX_LINE

log = logging.getLogger("agent.status")

SOCKET_MODE = 0o660
MAX_REQUEST = 64 * 1024
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, including the terminating NUL


class StatusSocketError(AgentError):
    """The status socket cannot be opened (path too long, a non-socket file in the way, bind failed)."""


class _Watcher:
    """One watching client: the newest line it has not been sent yet, and the state it last got."""

    def __init__(self, state_key: str):
        self.state_key = state_key
        self.pending: bytes | None = None
        self.wake = asyncio.Event()

    def offer(self, state_key: str, line: bytes) -> None:
        """Replace whatever waits to be written by ``line``, unless the client already has that state."""
        if state_key == self.state_key:
            return
        self.state_key = state_key
        self.pending = line
        self.wake.set()


class StatusServer:
    """Serves SNAPSHOTs from ``build()`` on a Unix socket at ``path``; several clients at once."""

    def __init__(self, path: Path, *, build: Callable[[], dict], settle_s: float = 0.02,
                 min_interval_s: float = 0.2, stall_s: float = 10.0):
        self.path = Path(path)
        self._build = build
        self.settle_s = settle_s
        self.min_interval_s = min_interval_s
        self.stall_s = stall_s
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: dict[asyncio.StreamWriter, asyncio.Task] = {}
        self._watchers: set[_Watcher] = set()
        self._push_timer: asyncio.TimerHandle | None = None
        self._last_push = float("-inf")

    @property
    def watchers(self) -> int:
        """How many clients watch now."""
        return len(self._watchers)

    async def start(self) -> None:
        """Listen (mode 0660), replacing a socket file a killed agent left; StatusSocketError if impossible."""
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            raise StatusSocketError(f"status socket path is longer than {MAX_SOCKET_PATH} bytes: {self.path}")
        _remove_stale_socket(self.path)
        self._loop = asyncio.get_running_loop()
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_REQUEST)
            os.chmod(self.path, SOCKET_MODE)
        except OSError as exc:
            raise StatusSocketError(f"cannot listen on {self.path}: {exc}") from exc
        log.info("status socket listening on %s", self.path)

    async def close(self) -> None:
        """Stop listening, drop every client and remove the socket file."""
        if self._push_timer is not None:
            self._push_timer.cancel()
            self._push_timer = None
        if self._server is None:
            return
        self._server.close()
        clients = list(self._clients.items())
        for writer, _ in clients:
            writer.transport.abort()  # a watcher stuck on a full buffer must not delay the shutdown
        await asyncio.gather(*(task for _, task in clients), return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # ------------------------------------------------------------ the change hook

    def changed(self, *_args, **_kwargs) -> None:
        """Something the SNAPSHOT shows may have changed (any listener signature).

        Without a watcher this returns at once. Otherwise it arms the one push timer, unless armed.
        """
        if not self._watchers or self._push_timer is not None or self._loop is None:
            return
        delay = max(self.settle_s, self._last_push + self.min_interval_s - self._loop.time())
        self._push_timer = self._loop.call_later(delay, self._push)

    def _push(self) -> None:
        self._push_timer = None
        if not self._watchers:
            return
        try:
            snapshot = self._build()
        except Exception:  # a status bug must never disturb charging
            log.exception("status snapshot failed")
            return
        self._last_push = self._loop.time()
        key = _state_key(snapshot)
        line = _line({"event": "status", "status": snapshot})
        for watcher in self._watchers:
            watcher.offer(key, line)

    # ------------------------------------------------------------ clients

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients[writer] = asyncio.current_task()
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # over MAX_REQUEST: the stream cannot be resynchronised
                    await self._send(writer, _line(_error(f"request longer than {MAX_REQUEST} bytes")))
                    break
                if not line:
                    break
                cmd, problem = _parse(line)
                if problem is not None:
                    await self._send(writer, _line(_error(problem)))
                elif cmd == "snapshot":
                    await self._send(writer, self._answer())
                else:  # watch: serve changes until the client closes
                    await self._watch(reader, writer)
                    break
        except (ConnectionError, asyncio.TimeoutError) as exc:
            log.debug("status client dropped: %r", exc)
        finally:
            self._clients.pop(writer, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _watch(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            snapshot = self._build()
        except Exception as exc:
            log.exception("status snapshot failed")
            await self._send(writer, _line(_error(f"internal error: {exc!r}")))
            return
        watcher = _Watcher(_state_key(snapshot))
        self._watchers.add(watcher)
        closed = asyncio.ensure_future(_until_eof(reader))
        try:
            await self._send(writer, _line({"ok": True, "status": snapshot}))
            while True:
                woken = asyncio.ensure_future(watcher.wake.wait())
                await asyncio.wait({closed, woken}, return_when=asyncio.FIRST_COMPLETED)
                if closed.done():
                    woken.cancel()
                    return
                watcher.wake.clear()
                line, watcher.pending = watcher.pending, None
                if line is not None:
                    await self._send(writer, line)
        finally:
            self._watchers.discard(watcher)
            closed.cancel()

    def _answer(self) -> bytes:
        try:
            return _line({"ok": True, "status": self._build()})
        except Exception as exc:
            log.exception("status snapshot failed")
            return _line(_error(f"internal error: {exc!r}"))

    async def _send(self, writer: asyncio.StreamWriter, line: bytes) -> None:
        """Write one line; a client that does not take it within ``stall_s`` is dropped (TimeoutError)."""
        writer.write(line)
        try:
            await asyncio.wait_for(writer.drain(), self.stall_s)
        except asyncio.TimeoutError:
            log.info("status client read nothing for %g s: dropped", self.stall_s)
            writer.transport.abort()
            raise

    def __repr__(self) -> str:
        state = "listening" if self._server is not None else "closed"
        return f"<StatusServer {str(self.path)!r} {state} clients={len(self._clients)} watchers={self.watchers}>"


def _parse(line: bytes) -> tuple[str | None, str | None]:
    """(cmd, None) for a valid request, or (None, what is wrong)."""
    try:
        request = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"invalid JSON: {exc}" if line.strip() else "empty request: send one JSON object per line"
    if not isinstance(request, dict):
        return None, f"a request must be a JSON object, not {type(request).__name__}"
    cmd = request.get("cmd")
    if cmd not in ("snapshot", "watch"):
        return None, f'unknown cmd {cmd!r}; known: "snapshot", "watch"'
    unknown = sorted(set(request) - {"cmd"})
    if unknown:
        return None, f"unknown field(s) for {cmd!r}: {', '.join(unknown)}"
    return cmd, None


def _state_key(snapshot: dict) -> str:
    """What identifies a state: the snapshot without its ``time``, so that time alone is no change."""
    return json.dumps({k: v for k, v in snapshot.items() if k != "time"}, sort_keys=True)


def _line(message: dict) -> bytes:
    data = json.dumps(message).encode("utf-8") + b"\n"
    if len(data) > MAX_LINE:  # what the client accepts; a station has a handful of EVSEs, far below
        log.error("status line of %d bytes is over the client's limit of %d", len(data), MAX_LINE)
    return data


def _error(message: str) -> dict:
    return {"ok": False, "error": message}


async def _until_eof(reader: asyncio.StreamReader) -> None:
    """Read and discard until the client closes (a watcher sends nothing more)."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(4096):
            pass


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file a killed agent left. The data-dir lock is held, so no live agent owns it."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise StatusSocketError(f"{path} exists and is not a socket; not removing it")
    path.unlink(missing_ok=True)
