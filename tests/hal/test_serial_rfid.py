"""Serial RFID driver over real ptys (socat): tokens, bad frames, unplug and replug, PN532."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import serial

from hal.drivers.serial_rfid import SerialTokenReader, read_one_token
from hal.errors import HalStartError
from hal.events import FaultRaised, TokenPresented
from hal.rfid import Pn532Parser, pn532
from hal.rfid.rdm6300 import encode_frame
from tests.hal.helpers import faults_of

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat")

CARD_A = "0F00AB12CD"
CARD_B = "1122334455"


class PtyPair:
    """A socat pty pair: the driver opens ``reader``, the test plays the device on ``dev``."""

    def __init__(self, directory: Path) -> None:
        self.reader = directory / "reader"
        self.dev = directory / "dev"
        self._log = directory / "socat.log"
        self._proc: subprocess.Popen | None = None
        self._device: serial.Serial | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                ["socat", "-d", "-d", f"pty,raw,echo=0,link={self.reader}",
                 f"pty,raw,echo=0,link={self.dev}"], stderr=log)
        deadline = time.monotonic() + 5
        while not (self.reader.exists() and self.dev.exists()):
            assert time.monotonic() < deadline, self._log.read_text()
            time.sleep(0.01)

    def device(self) -> serial.Serial:
        """The device end, opened once per socat run."""
        if self._device is None:
            self._device = serial.serial_for_url(str(self.dev), baudrate=9600, timeout=0.05)
        return self._device

    def write(self, data: bytes) -> None:
        self.device().write(data)
        self.device().flush()

    def stop(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None
        if self._proc is not None:
            self._proc.terminate()  # SIGTERM: socat removes its links on the way out
            self._proc.wait(timeout=5)
            self._proc = None


@pytest.fixture
def pty(short_dir):
    pair = PtyPair(short_dir)
    yield pair
    pair.stop()


@pytest.fixture
async def make_reader(events):
    readers = []

    async def make(port, **options) -> SerialTokenReader:
        options.setdefault("protocol", "rdm6300")
        reader = SerialTokenReader(emit=events.append, port=str(port), **options)
        readers.append(reader)
        await reader.start()
        return reader

    yield make
    for reader in readers:
        await reader.stop()


async def eventually(condition, *, timeout_s: float = 2.0) -> None:
    """Wait until ``condition()`` is true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def tokens(events) -> list[str]:
    return [e.id_token for e in events if isinstance(e, TokenPresented)]


async def connected_reader(make_reader, pty, **options) -> SerialTokenReader:
    pty.start()
    reader = await make_reader(pty.reader, **options)
    # pyserial flushes the input when it opens the port: write only once it is open.
    await eventually(lambda: reader.connected)
    return reader


async def test_serial_rfid_rdm6300_frame_presents_token(make_reader, pty, events):
    reader = await connected_reader(make_reader, pty)
    pty.write(encode_frame(CARD_A))
    await eventually(lambda: tokens(events) == [CARD_A])
    assert events == [TokenPresented(CARD_A, None)]
    assert f"rdm6300 {pty.reader}@9600 online presented=1" in repr(reader)


async def test_serial_rfid_bad_checksum_dropped_and_counted(make_reader, pty, events):
    reader = await connected_reader(make_reader, pty, evse_id=2)
    bad = bytearray(encode_frame(CARD_A))
    bad[-2] = ord("0") if bad[-2] != ord("0") else ord("1")
    pty.write(bytes(bad) + encode_frame(CARD_B))
    await eventually(lambda: tokens(events) == [CARD_B])
    assert events == [TokenPresented(CARD_B, 2)]
    assert reader.rejected == 1


async def test_serial_rfid_frame_split_across_writes(make_reader, pty, events):
    await connected_reader(make_reader, pty)
    frame = encode_frame(CARD_A)
    for piece in (frame[:1], frame[1:6], frame[6:13], frame[13:]):
        pty.write(piece)
        await asyncio.sleep(0.08)
    await eventually(lambda: tokens(events) == [CARD_A])


async def test_serial_rfid_noise_between_frames(make_reader, pty, events):
    reader = await connected_reader(make_reader, pty)
    pty.write(b"\xff\x00\x02zz\x03" + encode_frame(CARD_A)
              + b"\x02\x02garbage" + encode_frame(CARD_B))
    await eventually(lambda: tokens(events) == [CARD_A, CARD_B])
    assert reader.rejected == 0


async def test_serial_rfid_ascii_line_reader(make_reader, pty, events):
    await connected_reader(make_reader, pty, protocol="ascii-line")
    pty.write(b"\r\nUID?\r\n04:a1:b2")
    await asyncio.sleep(0.05)
    pty.write(b":c3\r\n0012345678\r\n")
    await eventually(lambda: tokens(events) == ["04A1B2C3", "0012345678"])


async def test_serial_rfid_unplug_raises_fault_and_replug_clears_it(make_reader, pty, events):
    reader = await connected_reader(make_reader, pty)
    pty.stop()  # the USB reader is pulled out
    lost = time.monotonic()
    await eventually(lambda: faults_of(events) == [("raised", None, "reader-offline")])
    assert time.monotonic() - lost < 2.0
    assert not reader.online
    pty.start()  # plugged back in: same path, new tty
    await eventually(lambda: faults_of(events)[-1:] == [("cleared", None, "reader-offline")],
                     timeout_s=3.0)
    await eventually(lambda: reader.connected)
    pty.write(encode_frame(CARD_B))
    await eventually(lambda: tokens(events) == [CARD_B])
    assert reader.online and reader.opens == 2


async def test_serial_rfid_missing_port_at_start(make_reader, pty, events):
    reader = await make_reader(pty.reader)  # no socat yet: the port does not exist
    await eventually(lambda: faults_of(events) == [("raised", None, "reader-offline")])
    assert str(pty.reader) in events[0].info
    pty.start()
    await eventually(lambda: reader.connected, timeout_s=3.0)
    assert faults_of(events)[-1] == ("cleared", None, "reader-offline")
    pty.write(encode_frame(CARD_A))
    await eventually(lambda: tokens(events) == [CARD_A])


async def test_serial_rfid_stop_interrupts_blocking_read(make_reader, pty, events):
    reader = await connected_reader(make_reader, pty, read_timeout_s=5.0)
    started = time.monotonic()
    await reader.stop()
    assert time.monotonic() - started < 0.5
    assert not reader.connected
    assert faults_of(events) == []  # stopping is not an outage


async def test_serial_rfid_loopback_url(make_reader, events):
    # Any pyserial URL works; loop:// echoes nothing unless written, so it just stays online.
    reader = await make_reader("loop://")
    await eventually(lambda: reader.connected)
    assert reader.online


def test_serial_rfid_rejects_bad_options(events):
    with pytest.raises(ValueError, match="protocol"):
        SerialTokenReader(emit=events.append, protocol="wiegand", port="/dev/ttyS0")
    with pytest.raises(ValueError, match="port"):
        SerialTokenReader(emit=events.append, protocol="rdm6300", port="")
    with pytest.raises(ValueError, match="baudrate"):
        SerialTokenReader(emit=events.append, protocol="rdm6300", port="/dev/ttyS0", baudrate=0)
    reader = SerialTokenReader(emit=events.append, protocol="pn532-uart", port="/dev/ttyS0")
    assert reader.baudrate == 115200  # the PN532 HSU factory rate
    assert events == []  # building a reader opens nothing


async def test_read_one_token_returns_first_card(pty):
    pty.start()

    async def tap_soon():
        await asyncio.sleep(0.3)
        pty.write(encode_frame(CARD_A))

    tap = asyncio.create_task(tap_soon())
    assert await read_one_token(protocol="rdm6300", port=str(pty.reader), timeout_s=3) == CARD_A
    await tap


async def test_read_one_token_timeout_and_missing_port(pty):
    pty.start()
    assert await read_one_token(protocol="rdm6300", port=str(pty.reader), timeout_s=0.3) is None
    with pytest.raises(HalStartError, match="could not open port"):
        await read_one_token(protocol="rdm6300", port=str(pty.dev) + "-missing", timeout_s=3)


# --- PN532 -----------------------------------------------------------------

class FakePn532:
    """A PN532 on the device end of the pty: ACKs commands and answers them from ``card``."""

    def __init__(self, port: serial.Serial) -> None:
        self.card: bytes | None = None
        self.commands: list[int] = []
        self._port = port
        self._parser = Pn532Parser()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.is_set():
            for frame in self._parser.feed_frames(self._port.read(64)):
                if frame.kind == "command":
                    self.commands.append(frame.code)
                    self._port.write(pn532.ACK_FRAME + self._answer(frame))

    def _answer(self, frame: pn532.Pn532Frame) -> bytes:
        params = b""
        if frame.code == pn532.IN_LIST_PASSIVE_TARGET:
            card = self.card
            params = pn532.target_response_params(card) if card else b"\x00"
        return pn532.response_frame(frame.code, params)


@pytest.fixture
def fake_pn532(pty):
    pty.start()
    fake = FakePn532(pty.device())
    yield fake
    fake.stop()


async def test_serial_rfid_pn532_polls_4_and_7_byte_uids(make_reader, pty, fake_pn532, events):
    fake_pn532.start()
    reader = await make_reader(pty.reader, protocol="pn532-uart", poll_interval_s=0.02)
    await eventually(lambda: reader.connected)
    assert fake_pn532.commands[:2] == [pn532.SAM_CONFIGURATION, pn532.RF_CONFIGURATION]
    fake_pn532.card = bytes.fromhex("04A1B2C3")
    await eventually(lambda: tokens(events) == ["04A1B2C3"])
    await asyncio.sleep(0.3)  # held on the reader: polled again and again, presented once
    fake_pn532.card = None
    await asyncio.sleep(0.3)  # taken away: empty polls mark it removed
    fake_pn532.card = bytes.fromhex("04112233445566")
    await eventually(lambda: tokens(events) == ["04A1B2C3", "04112233445566"])
    fake_pn532.card = None
    await asyncio.sleep(0.3)
    fake_pn532.card = bytes.fromhex("04A1B2C3")  # a quick re-tap counts again
    await eventually(lambda: len(tokens(events)) == 3)
    assert faults_of(events) == []


async def test_serial_rfid_pn532_silent_is_offline_until_it_answers(make_reader, pty, fake_pn532,
                                                                    events):
    reader = await make_reader(pty.reader, protocol="pn532-uart", response_timeout_s=0.2)
    await eventually(lambda: faults_of(events) == [("raised", None, "reader-offline")])
    assert "did not answer" in events[0].info
    fake_pn532.start()
    # The reader thread marks itself connected, then the loop delivers FaultCleared: wait for the event.
    await eventually(lambda: faults_of(events)[-1] == ("cleared", None, "reader-offline"), timeout_s=3.0)
    assert reader.connected
    assert isinstance(events[0], FaultRaised) and not events[0].stops_charging
