"""WebSocket transport to the CSMS: websocket-client in threads, bridged to asyncio.

One ``WebSocketConnection`` owns two threads:

- a reader thread that blocks in the library's frame receive and posts every
  data frame to an ``asyncio.Queue`` with ``loop.call_soon_threadsafe``;
- a single writer thread (a one-worker executor) that runs the connect, every
  send and every ping, in order, so a slow or dead socket never blocks the loop.

Every way a connection ends (close frame from either side, socket error, no pong,
``close()``) goes through one path: the socket is shut down, the reader thread
returns, and the loop side releases the writer and the socket.

Security profiles follow OCPP: 0 plain ws, 1 Basic auth over ws, 2 Basic auth
over TLS with server verification, 3 mutual TLS with a client certificate. The
options, their checks and the blocking handshakes are in ``agent.link.connect``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable

import websocket
from websocket import ABNF

from agent.errors import ConnectFailed, ConnectionLost
from agent.link.connect import (
    TransportOptions, connect_blocking, describe_error, discard_connection, display_url, option_problems,
)

__all__ = ["FrameHook", "TransportOptions", "WebSocketConnection", "display_url"]

FrameHook = Callable[[str, str], None]

_LOG = logging.getLogger("agent.transport")
_END = object()  # queued after the last frame of a connection
_DATA_OPCODES = (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CONT)
# Close codes RFC 6455 forbids on the wire; when echoing one of them we send 1000.
_UNSENDABLE_CLOSE_CODES = (1004, 1005, 1006, 1015)


class WebSocketConnection:
    """One open connection. Matches the `ocpp` library's connection interface (async recv/send).

    Create it with ``await WebSocketConnection.open(options)``. Frames received
    before the connection ended are still handed out by ``recv()``, in order;
    after them ``recv()`` raises ``ConnectionLost``.
    """

    def __init__(self, ws: websocket.WebSocket, options: TransportOptions, *,
                 writer: concurrent.futures.ThreadPoolExecutor,
                 on_frame: FrameHook | None, logger: logging.Logger) -> None:
        self._ws = ws
        # Kept ourselves: the library drops ws.sock when the peer closes, but
        # the socket must stay reachable for shutdown until the writer is done.
        self._sock = ws.sock
        self._options = options
        self.url = options.url  # where this connection goes (the session reports it)
        self._writer = writer
        self._on_frame = on_frame
        self._log = logger
        self._loop = asyncio.get_running_loop()
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self._ended = asyncio.Event()      # no more frames; recv drains then raises
        self._released = asyncio.Event()   # threads gone, socket closed
        self._closing = False              # we sent a close frame
        self._last_heard = time.monotonic()
        self._subprotocol = options.subprotocol
        self._keepalive: asyncio.Task[None] | None = None
        self._releaser: asyncio.Task[None] | None = None  # referenced so it is not collected
        self._reader = threading.Thread(
            target=self._read_loop, name=f"ws-reader-{options.station_id}", daemon=True)
        self.close_reason = ""

    @classmethod
    async def open(cls, options: TransportOptions, *, on_frame: FrameHook | None = None,
                   logger: logging.Logger | None = None) -> WebSocketConnection:
        """Connect to the CSMS without blocking the loop; raise ``ConnectFailed`` saying why."""
        log = logger or _LOG
        problems = option_problems(options)
        if problems:
            message = "invalid transport options: " + "; ".join(problems)
            log.error("cannot connect to CSMS at %s: %s", display_url(options.url), message)
            raise ConnectFailed(message)
        writer = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"ws-writer-{options.station_id}")
        future = writer.submit(connect_blocking, options)
        try:
            ws = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # The worker cannot be interrupted; drop whatever it ends up opening.
            future.add_done_callback(discard_connection)
            writer.shutdown(wait=False)
            raise
        except ConnectFailed as exc:
            log.warning("cannot connect to CSMS at %s: %s", display_url(options.url), exc)
            writer.shutdown(wait=True)  # the worker is idle: this join is immediate
            raise
        connection = cls(ws, options, writer=writer, on_frame=on_frame, logger=log)
        connection._start()
        log.info("connected to CSMS at %s (%s, security profile %d)",
                 display_url(options.url), options.subprotocol, options.security_profile)
        return connection

    @property
    def closed(self) -> bool:
        """True once the connection has ended, for whatever reason."""
        return self._ended.is_set()

    @property
    def subprotocol(self) -> str:
        """The subprotocol the CSMS selected (always the one requested)."""
        return self._subprotocol

    async def recv(self) -> str:
        """Return the next text frame; raise ``ConnectionLost`` once the connection has ended."""
        item = await self._inbox.get()
        if item is _END:
            self._inbox.put_nowait(_END)  # so every later call raises as well
            raise ConnectionLost(self.close_reason)
        return item  # type: ignore[return-value]

    async def send(self, text: str) -> None:
        """Send one text frame; raise ``ConnectionLost`` if the connection is closed or fails.

        The write runs in the writer thread, in call order, under the library's send lock.
        """
        if self._ended.is_set() or self._closing:
            raise ConnectionLost(self.close_reason or "connection is closing")
        # Reported before the write so a fast reply can never be logged ahead of its request.
        self._notify("out", text)
        try:
            await asyncio.wrap_future(self._writer.submit(self._ws.send, text))
        except Exception as exc:
            # A half-written frame corrupts the stream: the connection cannot go on.
            self._end_connection(f"connection lost: send failed ({describe_error(exc)})")
            raise ConnectionLost(self.close_reason) from exc

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame, wait up to ping_timeout_s for the reply, then release the threads.

        Idempotent; returns once the reader thread has been joined.
        """
        if not self._ended.is_set() and not self._closing:
            self.close_reason = f"closed by agent ({code})"
            self._closing = True
            self._writer.submit(self._send_close_frame, code, reason)
            try:
                await asyncio.wait_for(self._ended.wait(), self._options.ping_timeout_s)
            except TimeoutError:
                self._log.warning("CSMS did not answer the close frame within %g s",
                                  self._options.ping_timeout_s)
            finally:
                if not self._ended.is_set():
                    self._shutdown_socket()
        await self._released.wait()

    async def wait_closed(self) -> None:
        """Return when the connection has ended for any reason and its threads are gone."""
        await self._released.wait()

    def __repr__(self) -> str:
        if self._ended.is_set():
            state = f"closed ({self.close_reason})"
        else:
            state = "closing" if self._closing else "open"
        return (f"<WebSocketConnection {display_url(self._options.url)} "
                f"{self._subprotocol} {state}>")

    # -- loop side ---------------------------------------------------------

    def _start(self) -> None:
        self._reader.start()
        if self._options.ping_interval_s > 0:
            self._keepalive = self._loop.create_task(self._keep_alive())

    async def _keep_alive(self) -> None:
        """Ping every ping_interval_s; a ping not followed by any frame within ping_timeout_s
        means the link is dead (half-open), detected within ping_interval_s + ping_timeout_s."""
        while True:
            await asyncio.sleep(self._options.ping_interval_s)
            sent_at = time.monotonic()
            self._writer.submit(self._send_ping)
            self._loop.call_later(self._options.ping_timeout_s, self._check_heard, sent_at)

    def _check_heard(self, ping_sent_at: float) -> None:
        if not self._ended.is_set() and self._last_heard < ping_sent_at:
            self._end_connection(f"no pong within {self._options.ping_timeout_s:g} s")

    def _end_connection(self, reason: str) -> None:
        """End the connection from the loop side; the reader thread then finishes the job."""
        if not self.close_reason:
            self.close_reason = reason
        self._shutdown_socket()

    def _deliver(self, text: str) -> None:
        self._notify("in", text)
        self._inbox.put_nowait(text)

    def _on_reader_exit(self, reason: str) -> None:
        if not self.close_reason:
            self.close_reason = reason
        self._ended.set()
        self._inbox.put_nowait(_END)
        if self._keepalive is not None:
            self._keepalive.cancel()
        level = logging.INFO if self._closing else logging.WARNING
        self._log.log(level, "connection to CSMS at %s ended: %s",
                      display_url(self._options.url), self.close_reason)
        self._releaser = self._loop.create_task(self._release())

    async def _release(self) -> None:
        """Close the socket after every queued write has run, then join both threads."""
        socket_closed = self._writer.submit(self._ws.shutdown)
        self._writer.shutdown(wait=False)
        await asyncio.wrap_future(socket_closed)
        # Both threads have posted their last act; these joins return at once.
        self._writer.shutdown(wait=True)
        self._reader.join()
        self._released.set()

    def _notify(self, direction: str, text: str) -> None:
        if self._on_frame is None:
            return
        try:
            self._on_frame(direction, text)
        except Exception:
            # The message log is a bystander: its failure must not cost the connection.
            self._log.exception("on_frame hook failed on an %r frame", direction)

    # -- either thread -----------------------------------------------------

    def _shutdown_socket(self) -> None:
        """Wake the blocked reader (and any blocked write) by shutting the socket down."""
        try:
            # The plain-socket method on purpose: SSLSocket.shutdown also drops its
            # TLS object under the reader's feet.
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
        except OSError:
            pass  # already shut down or reset: the reader is waking up anyway

    def _post(self, callback: Callable[..., None], *args: object) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass  # the loop is closed: nobody is left to tell

    # -- writer thread -----------------------------------------------------

    def _send_ping(self) -> None:
        try:
            self._ws.ping()
        except Exception as exc:
            # The reader sees the same broken socket and ends the connection.
            self._log.debug("ping failed: %s", describe_error(exc))

    def _send_close_frame(self, code: int, reason: str) -> None:
        try:
            self._ws.send_close(code, reason)
        except Exception as exc:
            # No close handshake is possible; do not wait for a reply that cannot come.
            self._log.debug("close frame not sent: %s", describe_error(exc))
            self._shutdown_socket()

    # -- reader thread -----------------------------------------------------

    def _read_loop(self) -> None:
        try:
            reason = self._receive_until_close()
        except Exception as exc:
            reason = f"connection lost: {describe_error(exc)}"
            if isinstance(exc, (websocket.WebSocketProtocolException,
                                websocket.WebSocketPayloadException)):
                self._try_send_close(1002)
        self._shutdown_socket()
        self._post(self._on_reader_exit, reason)

    def _receive_until_close(self) -> str:
        """Receive frames until a close frame arrives; return why the connection ended."""
        ws = self._ws
        while True:
            frame = ws.recv_frame()
            self._last_heard = time.monotonic()
            if frame.opcode in _DATA_OPCODES:
                ws.cont_frame.validate(frame)
                ws.cont_frame.add(frame)
                if ws.cont_frame.is_fire(frame):
                    _, message = ws.cont_frame.extract(frame)
                    # OCPP-J uses text frames only; a binary one is decoded rather than lost.
                    self._post(self._deliver, message.data.decode("utf-8", errors="replace"))
            elif frame.opcode == ABNF.OPCODE_PING:
                ws.pong(frame.data)
            elif frame.opcode == ABNF.OPCODE_CLOSE:
                return self._answer_close(frame.data)

    def _answer_close(self, payload: bytes) -> str:
        code, text = _parse_close(payload)
        if self._closing:
            return self.close_reason  # the CSMS answered our close frame
        # RFC 6455 5.5.1: echo the status code to complete the closing handshake.
        self._try_send_close(1000 if code in _UNSENDABLE_CLOSE_CODES else code)
        return f"closed by CSMS ({code})" + (f": {text}" if text else "")

    def _try_send_close(self, code: int) -> None:
        try:
            self._ws.send_close(code)
        except Exception as exc:
            self._log.debug("close frame not sent: %s", describe_error(exc))


# -- small helpers -------------------------------------------------------------

def _parse_close(payload: bytes) -> tuple[int, str]:
    if len(payload) < 2:
        return 1005, ""  # RFC 6455: "no status code was present"
    (code,) = struct.unpack("!H", payload[:2])
    return code, payload[2:].decode("utf-8", errors="replace")
