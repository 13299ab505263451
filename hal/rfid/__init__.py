"""Pure frame parsers for serial RFID reader protocols; no I/O here.

Each parser is incremental: ``feed(data) -> list[str]`` takes bytes as they
arrive (frames split across reads, noise between frames) and returns the card
UIDs completed by them. Invalid frames are dropped and counted in
``rejected``; the buffer is bounded whatever the input.
"""

from __future__ import annotations

from hal.rfid.ascii_line import AsciiLineParser
from hal.rfid.pn532 import Pn532Parser
from hal.rfid.rdm6300 import Rdm6300Parser

RDM6300 = "rdm6300"
ASCII_LINE = "ascii-line"
PN532_UART = "pn532-uart"
PROTOCOLS = (RDM6300, ASCII_LINE, PN532_UART)

# Factory settings of the modules: RDM6300 and most line readers 9600 8N1, PN532 HSU 115200 8N1.
DEFAULT_BAUDRATES = {RDM6300: 9600, ASCII_LINE: 9600, PN532_UART: 115200}

_PARSERS = {RDM6300: Rdm6300Parser, ASCII_LINE: AsciiLineParser, PN532_UART: Pn532Parser}


def make_parser(protocol: str) -> Rdm6300Parser | AsciiLineParser | Pn532Parser:
    """A fresh parser for ``protocol``; raises ValueError for an unknown one."""
    try:
        return _PARSERS[protocol]()
    except KeyError:
        raise ValueError(
            f"unknown RFID protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}") from None


__all__ = [
    "ASCII_LINE",
    "DEFAULT_BAUDRATES",
    "PN532_UART",
    "PROTOCOLS",
    "RDM6300",
    "AsciiLineParser",
    "Pn532Parser",
    "Rdm6300Parser",
    "make_parser",
]
