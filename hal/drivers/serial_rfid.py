"""Serial RFID readers: RDM6300, ASCII line readers and PN532 over HSU, through pyserial.

A dedicated thread owns the port: it blocks in ``read()`` with a timeout (the
event loop never waits on the serial line), parses with the pure parsers of
``hal.rfid`` and hands each UID to the event loop with
``loop.call_soon_threadsafe``. A reader that is missing or vanishes (USB
unplug) raises fault ``reader-offline`` and is reopened every
``reopen_interval_s`` until it is back: a charger boots and charges without
its reader, and never crashes because of it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import serial

from hal.errors import HalStartError
from hal.events import Emit, FaultRaised, HalEvent, TokenPresented
from hal.rfid import DEFAULT_BAUDRATES, PN532_UART, PROTOCOLS, make_parser
from hal.rfid import pn532
from hal.roles._device import check_positive
from hal.roles.token_reader import TokenReader

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.5
REOPEN_INTERVAL_S = 1.0
POLL_INTERVAL_S = 0.2
RESPONSE_TIMEOUT_S = 0.5
# PN532 reads are short so a command's deadline is kept; the thread sleeps between polls.
_PN532_READ_TIMEOUT_S = 0.05
# A noisy line may eat one answer: only this many missed polls in a row mean the PN532 is gone.
_MAX_MISSED_POLLS = 3
# A card on the edge of the field can miss a poll; only this many empty polls mean it left.
_REMOVAL_POLLS = 3
_JOIN_TIMEOUT_S = 2.0


class _NoAnswer(OSError):
    """The PN532 did not answer a command in time (or refused it): treated like a lost port."""


class _Pn532Link:
    """Blocking request/response exchange with a PN532 on an open port (reader thread only)."""

    def __init__(self, port, *, parser: pn532.Pn532Parser, stop: threading.Event,
                 response_timeout_s: float) -> None:
        self._port = port
        self._parser = parser
        self._stop = stop
        self._timeout_s = response_timeout_s

    def wake(self) -> None:
        """Wake the PN532 from its power-on sleep and put the SAM in normal mode."""
        self.command(pn532.SAM_CONFIGURATION, pn532.SAM_NORMAL_MODE, preamble=pn532.WAKE_UP)
        # Without a finite retry count InListPassiveTarget would block until a card shows up.
        self.command(pn532.RF_CONFIGURATION, pn532.RF_MAX_RETRIES)

    def poll(self) -> str | None:
        """One InListPassiveTarget: the UID of the card in the field, or None."""
        frame = self.command(pn532.IN_LIST_PASSIVE_TARGET, pn532.ONE_TARGET_106_TYPE_A)
        try:
            return pn532.target_uid(frame.params)
        except ValueError:
            self._parser.rejected += 1
            return None

    def command(self, code: int, params: bytes = b"", *, preamble: bytes = b"") -> pn532.Pn532Frame:
        """Send a command, wait for its ACK and response; raise _NoAnswer on timeout or refusal."""
        self._port.write(preamble + pn532.command_frame(code, params))
        try:
            return self._await_response(code + 1)
        except _NoAnswer:
            self._abort()
            raise

    def _await_response(self, response_code: int) -> pn532.Pn532Frame:
        """Read frames until the response to the pending command arrives."""
        deadline = time.monotonic() + self._timeout_s
        while time.monotonic() < deadline and not self._stop.is_set():
            data = self._port.read(self._port.in_waiting or 1)
            for frame in self._parser.feed_frames(data):
                if frame.kind in ("nack", "error"):
                    raise _NoAnswer(
                        f"PN532 answered {frame.kind} to command {response_code - 1:#04x}")
                if frame.kind == "response" and frame.code == response_code:
                    return frame
        raise _NoAnswer(f"PN532 did not answer command {response_code - 1:#04x}"
                        f" within {self._timeout_s} s")

    def _abort(self) -> None:
        """Cancel the pending command (an ACK does that) and drop what is left of its answer."""
        self._port.write(pn532.ACK_FRAME)
        self._port.reset_input_buffer()
        self._parser.reset()


class SerialTokenReader(TokenReader):
    """An RFID reader on a serial port (UART, USB serial adapter or any pyserial URL).

    ``protocol`` is ``rdm6300`` or ``ascii-line`` (the reader sends frames on its
    own) or ``pn532-uart`` (polled every ``poll_interval_s``). ``baudrate`` None
    uses the module's factory setting (9600, or 115200 for the PN532).
    ``evse_id`` None serves the station; a number makes it that EVSE's reader.
    Passive readers are online while their port is open; a PN532 while it
    answers.
    """

    def __init__(
        self,
        *,
        emit: Emit,
        protocol: str,
        port: str,
        baudrate: int | None = None,
        evse_id: int | None = None,
        repeat_interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        read_timeout_s: float = READ_TIMEOUT_S,
        reopen_interval_s: float = REOPEN_INTERVAL_S,
        poll_interval_s: float = POLL_INTERVAL_S,
        response_timeout_s: float = RESPONSE_TIMEOUT_S,
    ) -> None:
        super().__init__(emit=emit, repeat_interval_s=repeat_interval_s, clock=clock)
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown RFID protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
        if not port:
            raise ValueError("the RFID reader port is empty: give a device path or a pyserial URL")
        self.protocol = protocol
        self.port = port
        self.baudrate = DEFAULT_BAUDRATES[protocol] if baudrate is None else int(baudrate)
        if self.baudrate <= 0:
            raise ValueError(f"baudrate must be > 0, not {baudrate!r}")
        self.evse_id = evse_id
        self.read_timeout_s = check_positive("read_timeout_s", read_timeout_s)
        self.reopen_interval_s = check_positive("reopen_interval_s", reopen_interval_s)
        self.poll_interval_s = check_positive("poll_interval_s", poll_interval_s)
        self.response_timeout_s = check_positive("response_timeout_s", response_timeout_s)
        self.opens = 0
        self._parser = make_parser(protocol)
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._serial = None  # the open port; owned by the reader thread
        self._port_lock = threading.Lock()  # serialises close() with stop()'s cancel_read()
        # Thread-side view, so each outage is reported once, not once per reopen attempt.
        self._link_state = "stopped"  # "stopped" | "online" | "offline"
        self._empty_polls = 0

    @property
    def connected(self) -> bool:
        """True while the reader thread has the port open and the reader answering."""
        return self._link_state == "online"

    @property
    def rejected(self) -> int:
        """Frames dropped for a bad checksum or shape since this reader was built."""
        return self._parser.rejected

    async def _start(self) -> None:
        """Start the reader thread; a missing port is not an error (fault reader-offline)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._loop = asyncio.get_running_loop()
        self._stop_event.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"rfid-{self.protocol}", daemon=True)
        self._thread.start()

    async def _stop(self) -> None:
        """Stop the reader thread, interrupting a blocking read, and close the port."""
        self._stop_event.set()
        with self._port_lock:
            if self._serial is not None and hasattr(self._serial, "cancel_read"):
                try:
                    self._serial.cancel_read()
                except OSError:
                    pass  # the port died meanwhile; the read returns on its own
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, _JOIN_TIMEOUT_S)
            if thread.is_alive():
                log.warning("RFID reader thread on %s did not stop within %s s",
                            self.port, _JOIN_TIMEOUT_S)

    # --- reader thread -------------------------------------------------------

    def _run(self) -> None:
        """Thread body: open, read until the port fails, report, retry until stopped."""
        while not self._stop_event.is_set():
            try:
                self._session()
            except OSError as exc:  # serial.SerialException is an OSError
                self._lost(str(exc))
            except Exception as exc:  # a driver bug must not kill the thread silently
                if self._link_state != "offline":  # one traceback per outage, not one a second
                    log.exception("RFID reader on %s failed", self.port)
                self._lost(f"{type(exc).__name__}: {exc}")
            self._stop_event.wait(self.reopen_interval_s)
        self._link_state = "stopped"

    def _session(self) -> None:
        """Open the port and read from it until it fails or the reader is stopped."""
        port = self._open()
        if port is None:
            return
        try:
            if self.protocol == PN532_UART:
                self._run_pn532(port)
            else:
                self._run_passive(port)
        finally:
            self._close()

    def _open(self):
        """Open the port (None if stopping); the read timeout keeps the thread responsive."""
        timeout = _PN532_READ_TIMEOUT_S if self.protocol == PN532_UART else self.read_timeout_s
        with self._port_lock:
            if self._stop_event.is_set():
                return None
            self._serial = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=timeout)
        self._parser.reset()
        self.opens += 1
        return self._serial

    def _close(self) -> None:
        """Close the port, under the lock so stop() never cancels a read on a closed port."""
        with self._port_lock:
            port, self._serial = self._serial, None
            if port is not None:
                try:
                    port.close()
                except OSError:
                    pass  # a vanished device cannot be closed cleanly; the fd is released anyway

    def _run_passive(self, port) -> None:
        """RDM6300 and line readers talk on their own: read and parse whatever arrives."""
        self._reachable()
        while not self._stop_event.is_set():
            data = port.read(port.in_waiting or 1)
            for uid in self._parser.feed(data):
                self._to_loop(self._deliver, uid)

    def _run_pn532(self, port) -> None:
        """Wake and configure the PN532, then poll for a card every ``poll_interval_s``."""
        link = _Pn532Link(port, parser=self._parser, stop=self._stop_event,
                          response_timeout_s=self.response_timeout_s)
        link.wake()
        self._reachable()
        self._empty_polls = 0
        missed = 0
        while not self._stop_event.is_set():
            try:
                uid = link.poll()
            except _NoAnswer:
                missed += 1
                if missed >= _MAX_MISSED_POLLS:
                    raise
                continue
            missed = 0
            self._sighting(uid)
            self._stop_event.wait(self.poll_interval_s)

    def _sighting(self, uid: str | None) -> None:
        """Deliver a polled card, or report it gone after a few empty polls."""
        if uid is not None:
            self._empty_polls = 0
            self._to_loop(self._deliver, uid)
            return
        self._empty_polls += 1
        if self._empty_polls == _REMOVAL_POLLS:
            self._to_loop(self._card_removed, self.evse_id)

    def _reachable(self) -> None:
        """The reader answers (or its port is open): clear reader-offline once."""
        if self._link_state != "online":
            self._link_state = "online"
            self._to_loop(self._set_online, True)

    def _lost(self, reason: str) -> None:
        """The port failed or the reader is silent: raise reader-offline once per outage."""
        if self._stop_event.is_set():
            return  # a read interrupted by stop() is not an outage
        log.debug("RFID reader on %s unavailable: %s", self.port, reason)
        if self._link_state != "offline":
            self._link_state = "offline"
            self._to_loop(self._report_offline, reason)

    def _to_loop(self, callback: Callable, *args) -> None:
        """Run ``callback`` on the event loop thread; stop quietly once the loop is closed."""
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            self._stop_event.set()  # the loop is gone: the daemon is exiting

    # --- event loop side ----------------------------------------------------

    def _deliver(self, uid: str) -> None:
        """Present a parsed UID; a UID the role refuses is logged, never raised into the loop."""
        try:
            self._present(uid, self.evse_id)
        except ValueError as exc:
            log.warning("RFID reader on %s: ignored UID %r: %s", self.port, uid, exc)

    def _report_offline(self, reason: str) -> None:
        """Raise reader-offline, naming the port and what went wrong."""
        self._set_online(False, info=f"{self.port}: {reason}")

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.protocol} {self.port}@{self.baudrate}"
                f" {'online' if self.online else 'offline'} presented={self._presented}"
                f" rejected={self.rejected} opens={self.opens}>")


async def read_one_token(*, protocol: str, port: str, baudrate: int | None = None,
                         timeout_s: float) -> str | None:
    """Wait for the first card on a serial reader (``bench rfid``): its idToken, or None on timeout.

    Raises HalStartError (with the port's error) if the reader cannot be
    opened or stops answering, and ValueError for an unknown protocol.
    """
    loop = asyncio.get_running_loop()
    first: asyncio.Future[str] = loop.create_future()

    def emit(event: HalEvent) -> None:
        """Settle ``first`` with the first token, or with an error if the reader is offline."""
        if first.done():
            return
        if isinstance(event, TokenPresented):
            first.set_result(event.id_token)
        elif isinstance(event, FaultRaised):
            first.set_exception(HalStartError(f"RFID reader on {port}: {event.info}"))

    reader = SerialTokenReader(emit=emit, protocol=protocol, port=port, baudrate=baudrate)
    await reader.start()
    try:
        return await asyncio.wait_for(first, timeout_s)
    except TimeoutError:
        return None
    finally:
        await reader.stop()
