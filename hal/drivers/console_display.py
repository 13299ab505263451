"""A display for stations without a screen: what would be shown goes to the log (``hal.display = "console"``).

On a Raspberry Pi under systemd the log is the journal, so an installer can
follow the driver-facing texts with ``journalctl -f``; a bench test may hand a
stream to see them printed as well.
"""

from __future__ import annotations

import logging
from typing import TextIO

from hal.roles.display import Display

log = logging.getLogger("hal.display")


class ConsoleDisplay(Display):
    """A text display that logs every change of its text (and prints it to ``stream``, if given)."""

    formats = ("ASCII", "UTF8")  # text only: HTML and URI messages are refused before they get here

    def __init__(self, *, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream

    def _render(self, text: str | None) -> None:
        if text == self.text:
            return  # unchanged: no repeated log lines
        shown = "(blank)" if text is None else text
        log.info("display: %s", shown)
        if self._stream is not None:
            print(f"[display] {shown}", file=self._stream, flush=True)
