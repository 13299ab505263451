"""RDM6300 (125 kHz EM4100) frame parser.

The module sends, unprompted, one 14-byte frame per card sighting (repeatedly
while a card stays in the field)::

    STX(0x02)  10 ASCII hex: version/customer (2) + card id (8)  2 ASCII hex checksum  ETX(0x03)

The checksum is the XOR of the five data bytes the ten hex characters encode.
"""

from __future__ import annotations

import string

STX = 0x02
ETX = 0x03
FRAME_LENGTH = 14
_DATA_CHARS = 10
_HEX_BYTES = frozenset(string.hexdigits.encode())


def frame_checksum(card_id: bytes) -> int:
    """XOR of the five data bytes of a 5-byte EM4100 id."""
    checksum = 0
    for byte in card_id:
        checksum ^= byte
    return checksum


def encode_frame(card_id: str) -> bytes:
    """Build the frame an RDM6300 sends for a 10-hex-digit id (tests, simulators)."""
    data = bytes.fromhex(card_id)
    if len(data) != 5:
        raise ValueError(f"an EM4100 id is 10 hex digits, not {card_id!r}")
    text = f"{data.hex().upper()}{frame_checksum(data):02X}".encode("ascii")
    return bytes([STX]) + text + bytes([ETX])


def _is_frame_shaped(candidate: bytes) -> bool:
    """STX, twelve hex characters, ETX: a frame whose checksum is worth checking."""
    return (candidate[0] == STX and candidate[-1] == ETX
            and all(byte in _HEX_BYTES for byte in candidate[1:-1]))


class Rdm6300Parser:
    """Incremental RDM6300 parser: ``feed()`` bytes as they arrive, get card ids back.

    Copes with frames split across reads and with noise between frames. A
    well-shaped frame with a wrong checksum is dropped and counted in
    ``rejected``; other bytes that cannot start a frame are dropped and counted
    in ``discarded``. At most one partial frame (13 bytes) is kept between
    calls, so garbage never grows memory.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.frames = 0
        self.rejected = 0
        self.discarded = 0

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buffer)

    def reset(self) -> None:
        """Forget a partial frame (the port was reopened); counters are kept."""
        self._buffer.clear()

    def feed(self, data: bytes) -> list[str]:
        """Consume ``data``; return the 10-hex-digit ids (uppercase) of complete valid frames."""
        self._buffer += data
        ids: list[str] = []
        while self._sync_to_stx() and len(self._buffer) >= FRAME_LENGTH:
            card_id = self._take_frame()
            if card_id is not None:
                ids.append(card_id)
        return ids

    def _sync_to_stx(self) -> bool:
        """Drop bytes before the next STX; False if there is none."""
        start = self._buffer.find(STX)
        dropped = len(self._buffer) if start < 0 else start
        self.discarded += dropped
        del self._buffer[:dropped]
        return start >= 0

    def _take_frame(self) -> str | None:
        """Decode the frame at the head of the buffer and consume it, or skip its STX."""
        candidate = bytes(self._buffer[:FRAME_LENGTH])
        if not _is_frame_shaped(candidate):
            # Only this STX is suspect: a real frame may start inside the candidate.
            self.discarded += 1
            del self._buffer[:1]
            return None
        # A frame-shaped candidate holds no other STX, so no frame hides inside it.
        del self._buffer[:FRAME_LENGTH]
        text = candidate[1:-1].decode("ascii")
        data = bytes.fromhex(text[:_DATA_CHARS])
        if frame_checksum(data) != int(text[_DATA_CHARS:], 16):
            self.rejected += 1
            return None
        self.frames += 1
        return text[:_DATA_CHARS].upper()

    def __repr__(self) -> str:
        return (f"<Rdm6300Parser frames={self.frames} rejected={self.rejected}"
                f" discarded={self.discarded} buffered={self.buffered}>")
