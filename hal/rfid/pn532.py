"""PN532 (NXP NFC controller) over HSU/UART: frame builders and a response parser.

Facts from the PN532 user manual:

- Normal information frame: ``00 00 FF LEN LCS TFI DATA... DCS 00``. LEN counts
  TFI and DATA; LEN + LCS = 0 (mod 256); TFI + sum(DATA) + DCS = 0 (mod 256).
  TFI is D4 host to PN532, D5 PN532 to host. Responses carry command code + 1.
- ACK ``00 00 FF 00 FF 00``; NACK ``00 00 FF FF 00 00``; an application error
  frame has LEN 1 and TFI 7F. The host may abort a running command by sending
  an ACK.
- Over HSU the PN532 starts in low-power mode: a long 0x55 0x55 00... preamble
  wakes it, and SAMConfiguration (0x14) in normal mode must follow.
- RFConfiguration (0x32) item 5 sets MxRtyPassiveActivation. Its default (FF)
  makes InListPassiveTarget wait for a card forever; a small count makes each
  poll return at once, with zero targets when the field is empty.
- InListPassiveTarget (0x4A) response, 106 kbps type A:
  ``NbTg Tg SENS_RES(2) SEL_RES NFCIDLength NFCID... [ATS]``.

Extended frames (LEN FF FF) are never sent in answer to these commands and are
rejected like any other malformed frame.
"""

from __future__ import annotations

from dataclasses import dataclass

HOST_TFI = 0xD4
DEVICE_TFI = 0xD5
ERROR_TFI = 0x7F
SAM_CONFIGURATION = 0x14
RF_CONFIGURATION = 0x32
IN_LIST_PASSIVE_TARGET = 0x4A

ACK_FRAME = bytes.fromhex("0000FF00FF00")
NACK_FRAME = bytes.fromhex("0000FFFF0000")
# The zeros give the PN532 oscillator time to start; the PN532 skips them as preamble.
WAKE_UP = bytes([0x55, 0x55]) + bytes(14)

SAM_NORMAL_MODE = bytes([0x01, 0x14, 0x01])  # normal mode, 1 s virtual-card timeout, use IRQ
# CfgItem 5: MxRtyATR (default FF), MxRtyPSL (default 01), MxRtyPassiveActivation 2 tries.
RF_MAX_RETRIES = bytes([0x05, 0xFF, 0x01, 0x02])
ONE_TARGET_106_TYPE_A = bytes([0x01, 0x00])  # MaxTg 1, BrTy 0 = 106 kbps ISO 14443 type A

_START_CODE = b"\x00\xff"
_HEADER = 4  # 00 FF LEN LCS
_UID_LENGTHS = (4, 7, 10)  # ISO 14443-3 single, double and triple size UIDs


def build_frame(payload: bytes) -> bytes:
    """A normal information frame around ``payload`` (TFI and data)."""
    if not 1 <= len(payload) <= 254:
        raise ValueError(f"a normal frame carries 1..254 bytes, not {len(payload)}")
    length = len(payload)
    return (b"\x00\x00\xff" + bytes([length, -length & 0xFF]) + payload
            + bytes([-sum(payload) & 0xFF, 0x00]))


def command_frame(code: int, params: bytes = b"") -> bytes:
    """The host-to-PN532 frame for command ``code`` with ``params``."""
    return build_frame(bytes([HOST_TFI, code]) + params)


def response_frame(code: int, params: bytes = b"") -> bytes:
    """The PN532-to-host frame answering command ``code`` (simulators and tests)."""
    return build_frame(bytes([DEVICE_TFI, code + 1]) + params)


def target_response_params(uid: bytes, *, sens_res: bytes = b"\x00\x04",
                           sel_res: int = 0x08) -> bytes:
    """InListPassiveTarget response parameters for one type A card (simulators and tests)."""
    return bytes([1, 1]) + sens_res + bytes([sel_res, len(uid)]) + uid


def target_uid(params: bytes) -> str | None:
    """The UID (uppercase hex) in an InListPassiveTarget response, None if no card.

    Raises ValueError for a response too short for what it announces.
    """
    if not params:
        raise ValueError("InListPassiveTarget response without NbTg")
    if params[0] == 0:
        return None
    if len(params) < 6:
        raise ValueError(f"InListPassiveTarget response too short: {params.hex()}")
    uid_length = params[5]
    uid = params[6:6 + uid_length]
    if uid_length not in _UID_LENGTHS or len(uid) != uid_length:
        raise ValueError(f"InListPassiveTarget response with bad NFCID: {params.hex()}")
    return uid.hex().upper()


@dataclass(frozen=True, slots=True)
class Pn532Frame:
    """One checksum-verified frame.

    ``kind`` is ``ack``, ``nack``, ``error`` (application error), ``response``
    (PN532 to host) or ``command`` (host to PN532, for a simulated PN532).
    ``code`` is the command or response code, ``params`` what follows it.
    """

    kind: str
    code: int | None = None
    params: bytes = b""


_KINDS = {DEVICE_TFI: "response", HOST_TFI: "command"}
ACK = Pn532Frame("ack")
NACK = Pn532Frame("nack")


class Pn532Parser:
    """Incremental PN532 frame parser over a byte stream with noise and split reads.

    ``feed_frames()`` returns every valid frame; ``feed()`` returns only the
    UIDs of InListPassiveTarget responses. Use one of the two per parser: they
    share the buffer. Frames failing LCS, DCS or shape checks are dropped and
    counted in ``rejected``. The buffer never holds more than one maximal frame
    (260 bytes) between calls.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.frames = 0
        self.rejected = 0

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buffer)

    def reset(self) -> None:
        """Forget a partial frame (after a timeout or a reopen); counters are kept."""
        self._buffer.clear()

    def feed(self, data: bytes) -> list[str]:
        """Consume ``data``; return the UIDs of the cards found in InListPassiveTarget responses."""
        uids = []
        for frame in self.feed_frames(data):
            if frame.kind != "response" or frame.code != IN_LIST_PASSIVE_TARGET + 1:
                continue
            try:
                uid = target_uid(frame.params)
            except ValueError:
                self.rejected += 1
                continue
            if uid is not None:
                uids.append(uid)
        return uids

    def feed_frames(self, data: bytes) -> list[Pn532Frame]:
        """Consume ``data``; return the complete, valid frames in it, in order."""
        self._buffer += data
        frames = []
        while self._sync_to_start_code() and len(self._buffer) >= _HEADER:
            if len(self._buffer) < self._frame_size():
                break  # the rest of the frame is still on the wire
            frame = self._take_frame()
            if frame is not None:
                self.frames += 1
                frames.append(frame)
        return frames

    def _sync_to_start_code(self) -> bool:
        """Drop bytes before the next 00 FF; False if there is none yet."""
        start = self._buffer.find(_START_CODE)
        if start < 0:
            # A trailing 00 may be the first half of a start code split across reads.
            keep = 1 if self._buffer.endswith(b"\x00") else 0
            del self._buffer[:len(self._buffer) - keep]
            return False
        del self._buffer[:start]
        return True

    def _frame_size(self) -> int:
        """Bytes the frame at the head needs: the header alone decides ACK, NACK and bad headers."""
        length, lcs = self._buffer[2], self._buffer[3]
        if length == 0 or (length + lcs) & 0xFF:
            return _HEADER
        return _HEADER + length + 1  # payload and DCS; the postamble is skipped as noise

    def _take_frame(self) -> Pn532Frame | None:
        """Consume the complete frame at the head of the buffer; None if it is invalid."""
        length, lcs = self._buffer[2], self._buffer[3]
        if (length, lcs) in ((0x00, 0xFF), (0xFF, 0x00)):
            del self._buffer[:_HEADER]
            return ACK if length == 0 else NACK
        if (length + lcs) & 0xFF or length == 0:
            return self._reject()
        end = self._frame_size()
        payload = bytes(self._buffer[_HEADER:_HEADER + length])
        if (sum(payload) + self._buffer[end - 1]) & 0xFF:
            return self._reject()
        del self._buffer[:end]
        return self._decode(payload)

    def _decode(self, payload: bytes) -> Pn532Frame | None:
        """Turn a checksum-valid payload into a frame, or reject an unknown TFI."""
        if payload[0] == ERROR_TFI and len(payload) == 1:
            return Pn532Frame("error")
        kind = _KINDS.get(payload[0])
        if kind is None or len(payload) < 2:
            self.rejected += 1
            return None
        return Pn532Frame(kind, payload[1], payload[2:])

    def _reject(self) -> None:
        """Count a bad frame and skip its start code, so a frame inside it is still found."""
        self.rejected += 1
        del self._buffer[:2]

    def __repr__(self) -> str:
        return (f"<Pn532Parser frames={self.frames} rejected={self.rejected}"
                f" buffered={self.buffered}>")
