"""Parser for readers that print each card UID as a text line.

Many USB and TTL serial readers send the UID as ASCII terminated by CR, LF or
CR LF: hex with or without separators (``04A1B2C3``, ``04:a1:b2:c3``,
``04 A1 B2 C3``, ``0x04A1B2C3``) or decimal digits (``0012345678``).
"""

from __future__ import annotations

import re

_TERMINATOR = re.compile(rb"[\r\n]")
MAX_LINE = 64
# 20 characters is the longest idToken we accept (OCPP 1.6 idTag; a 10-byte UID in hex).
MAX_UID_CHARS = 20
_UID_LINE = re.compile(rb"(?:0[xX])?[0-9A-Fa-f]+(?:[ :\-][0-9A-Fa-f]+)*")
_SEPARATORS = re.compile(rb"[ :\-]")


def parse_line(line: bytes) -> str | None:
    """The UID a line carries (uppercase, separators removed), or None if it carries none.

    Surrounding whitespace is ignored; a line with any other character, or a
    UID longer than 20 characters, carries none.
    """
    text = line.strip()
    if not _UID_LINE.fullmatch(text):
        return None
    if text[:2] in (b"0x", b"0X"):
        text = text[2:]
    uid = _SEPARATORS.sub(b"", text).decode("ascii").upper()
    return uid if len(uid) <= MAX_UID_CHARS else None


class AsciiLineParser:
    """Incremental line parser: ``feed()`` bytes as they arrive, get UIDs back.

    Empty lines are ignored (CR LF yields one). Non-empty lines that carry no
    UID are counted in ``rejected``. A line longer than ``max_line`` bytes is
    noise: it is counted once and skipped up to the next terminator, so the
    buffer never holds more than ``max_line`` bytes.
    """

    def __init__(self, *, max_line: int = MAX_LINE) -> None:
        if max_line < MAX_UID_CHARS:
            raise ValueError(f"max_line must be at least {MAX_UID_CHARS}, not {max_line}")
        self.max_line = max_line
        self._buffer = bytearray()
        self._skipping = False
        self.frames = 0
        self.rejected = 0

    @property
    def buffered(self) -> int:
        """Bytes of the current, unterminated line."""
        return len(self._buffer)

    def reset(self) -> None:
        """Forget a partial line (the port was reopened); counters are kept."""
        self._buffer.clear()
        self._skipping = False

    def feed(self, data: bytes) -> list[str]:
        """Consume ``data``; return the UIDs of the complete lines in it."""
        uids: list[str] = []
        start = 0
        for match in _TERMINATOR.finditer(data):
            self._append(data[start:match.start()])
            uid = self._end_line()
            if uid is not None:
                uids.append(uid)
            start = match.end()
        self._append(data[start:])
        return uids

    def _append(self, chunk: bytes) -> None:
        """Add part of a line, switching to skip mode when the line grows too long."""
        if self._skipping or not chunk:
            return
        self._buffer += chunk
        if len(self._buffer) > self.max_line:
            self.rejected += 1
            self._buffer.clear()
            self._skipping = True

    def _end_line(self) -> str | None:
        """A terminator arrived: decode the buffered line and start a new one."""
        line = bytes(self._buffer)
        self._buffer.clear()
        if self._skipping:
            self._skipping = False
            return None
        if not line.strip():
            return None
        uid = parse_line(line)
        if uid is None:
            self.rejected += 1
        else:
            self.frames += 1
        return uid

    def __repr__(self) -> str:
        return (f"<AsciiLineParser frames={self.frames} rejected={self.rejected}"
                f" buffered={self.buffered}>")
