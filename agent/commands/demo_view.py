"""Terminal rendering of `ocpp-agent demo`: a live panel on a TTY, plain lines otherwise.

Standard library only. On a terminal the panel is redrawn in place with plain
ANSI cursor movement (no curses: nothing to install, nothing that breaks on a
minimal Pi image). When stdout is not a terminal (CI, pipes, `| tee`), every
step, EVSE state and OCPP message is printed once, on its own line, so the
output reads as a log and tests can match it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal

MESSAGES_SHOWN = 8
PLAIN_BODY_CHARS = 400  # long enough for every field of the demo's messages (2.1's too), short enough for a CI log

_UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_CSI = "\x1b["
_STYLES = {"bold": "1", "dim": "2", "step": "1;33", "out": "32", "in": "36", "error": "1;31"}


@dataclass(frozen=True)
class OcppLine:
    """One OCPP frame as the demo shows it."""

    elapsed: float
    from_station: bool  # True: station -> CSMS
    label: str  # "Authorize", "Authorize result" or "Authorize error"
    body: str  # the payload, shortened (see ``short_payload``)


class FrameDecoder:
    """Turns raw frames into ``OcppLine``s, naming each result after the CALL it answers."""

    def __init__(self) -> None:
        self._actions: dict[str, str] = {}

    def decode(self, from_station: bool, text: str, elapsed: float) -> OcppLine:
        """Decode one frame; never raises (a frame we cannot read is shown raw)."""
        try:
            frame = json.loads(text)
            kind, message_id = frame[0], frame[1]
        except (ValueError, IndexError, KeyError, TypeError):
            return OcppLine(elapsed, from_station, "(unreadable)", text)
        if kind == 2 and len(frame) > 3:
            self._actions[message_id] = frame[2]
            return OcppLine(elapsed, from_station, str(frame[2]), short_payload(frame[3]))
        action = self._actions.pop(message_id, "?")
        if kind == 3 and len(frame) > 2:
            return OcppLine(elapsed, from_station, f"{action} result", short_payload(frame[2]))
        return OcppLine(elapsed, from_station, f"{action} error", short_payload(frame[2:]))


def short_payload(payload) -> str:
    """Compact JSON of a payload, with meter readings folded to ``Energy=12.3Wh``.

    Timestamps are left out because every line already carries its time,
    sampled values are folded because their full JSON would push the reading
    itself off the end of the line, and UUIDs (2.0.1 transaction ids) keep
    their first 8 digits, which tell them apart within a demo.
    """
    return json.dumps(_shorten(payload), separators=(",", ":"), ensure_ascii=False)


def _shorten(value):
    if isinstance(value, str):
        return short_id(value)
    if isinstance(value, list):
        return [_shorten(item) for item in value]
    if not isinstance(value, dict):
        return value
    if isinstance(value.get("sampledValue"), list):
        return " ".join(_reading(sample) for sample in value["sampledValue"] if isinstance(sample, dict))
    if isinstance((value.get("costDetails") or {}).get("totalCost"), dict):  # 2.1: the cost, not its breakdown
        value = {**value, "costDetails": _cost(value["costDetails"])}
    return {key: _shorten(item) for key, item in value.items() if key != "timestamp"}


def _cost(details: dict) -> str:
    """A 2.1 costDetails as ``EUR 0.03 incl. tax (0.02 excl.)``."""
    total = details["totalCost"]
    amounts = total.get("total") or {}
    text = f"{total.get('currency', '?')} {cents(amounts.get('inclTax', amounts.get('exclTax')))}"
    return text + (f" incl. tax ({cents(amounts['exclTax'])} excl.)" if "inclTax" in amounts else "")


def cents(amount) -> str:
    """A JSON amount to the cent, in Decimal (0.1 shows as 0.10)."""
    return "?" if amount is None else f"{Decimal(str(amount)):.2f}"


def _reading(sample: dict) -> str:
    """One sampled value as ``Energy=12.3Wh`` (1.6 and 2.0.1 spell the unit differently)."""
    name = str(sample.get("measurand", "Energy.Active.Import.Register")).split(".")[0]
    if sample.get("phase"):
        name += f".{sample['phase']}"
    unit = sample.get("unit") or (sample.get("unitOfMeasure") or {}).get("unit") or "Wh"
    return f"{name}={sample.get('value')}{unit}"


def short_id(text: str) -> str:
    """A UUID cut to its first 8 digits ("6ac206c3.."); any other text unchanged."""
    return text[:8] + ".." if _UUID.fullmatch(text) else text


def evse_summary(evse: dict, *, short_ids: bool = False) -> dict[str, str]:
    """The panel's columns for one EVSE of a ``sim state`` answer, as display strings."""
    power = evse.get("power_W")
    energy = evse.get("energy_Wh")
    tx = evse.get("transaction_id")
    return {
        "EVSE": str(evse["id"]),
        "pilot": str(evse.get("pilot") or "?"),
        "status": str(evse.get("status") or "-"),
        "contactor": "closed" if evse.get("contactor_closed") else "open",
        "lock": "locked" if evse.get("locked") else "unlocked",
        "offered": _amps(evse.get("current_limit_A")),
        "power": "-" if power is None else f"{power / 1000:.2f} kW",
        "energy": "-" if energy is None else f"{energy:.1f} Wh",
        "transaction": "-" if tx is None else short_id(str(tx)) if short_ids else str(tx),
    }


def _step_label(text: str, number: int | None, total: int | None) -> str:
    return text if number is None else f"step {number}/{total}: {text}"


def _amps(value) -> str:
    if value is None:
        return "-"
    return f"{value:g} A"


class _Writer:
    """Writes to the output, and keeps quiet once its reader has gone (``demo | head``)."""

    def __init__(self, out) -> None:
        self.out = out
        self.start = time.monotonic()
        encoding = (getattr(out, "encoding", None) or "").lower().replace("-", "")
        # Unicode arrows only where they can be encoded: a Latin-1 console must not crash the demo.
        self.unicode = encoding == "utf8"

    def elapsed(self) -> float:
        """Seconds since the demo started."""
        return time.monotonic() - self.start

    def arrow(self, from_station: bool, *, compact: bool = False) -> str:
        """The direction column: the station on the left, the CSMS on the right."""
        station = "" if compact else "station "
        if self.unicode:
            return f"{station}→ CSMS" if from_station else f"{station}← CSMS"
        return f"{station}-> CSMS" if from_station else f"{station}<- CSMS"

    def write(self, text: str) -> None:
        """Write and flush; on a closed pipe, send the rest of the output to /dev/null."""
        try:
            try:
                self.out.write(text)
            except UnicodeEncodeError:  # e.g. a vendor name with accents on an ASCII console
                encoding = self.out.encoding or "ascii"
                self.out.write(text.encode(encoding, "backslashreplace").decode(encoding))
            self.out.flush()
        except BrokenPipeError:
            # The demo still finishes and leaves the outputs safe; only its audience left.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.out.fileno())
            os.close(devnull)


class PlainView(_Writer):
    """Line-by-line output for pipes and CI: steps, EVSE states and OCPP messages as they happen."""

    def __init__(self, out=None) -> None:
        super().__init__(out or sys.stdout)
        self._decoder = FrameDecoder()
        self._display: str | None = None  # the display's text last printed

    def note(self, text: str) -> None:
        """A line of commentary (start-up, hints, the end)."""
        self.write(text + "\n")

    def step(self, text: str, number: int | None = None, total: int | None = None) -> None:
        """A step of the session begins (``number`` of ``total``, when it is one of a series)."""
        self.write(f"{self.elapsed():6.2f}s  == {_step_label(text, number, total)}\n")

    def message(self, from_station: bool, text: str) -> None:
        """An OCPP frame crossed the wire."""
        line = self._decoder.decode(from_station, text, self.elapsed())
        body = line.body if len(line.body) <= PLAIN_BODY_CHARS else line.body[:PLAIN_BODY_CHARS - 3] + "..."
        self.write(f"{line.elapsed:6.2f}s  {self.arrow(line.from_station)}  {line.label:<24} {body}\n")

    def report(self, evses: list[dict], ids=None, display: str | None = None) -> None:
        """Show the state of the EVSEs ``ids`` (all by default) now, and the station's display if it changed."""
        for evse in evses:
            if ids is None or evse["id"] in ids:
                s = evse_summary(evse)
                self.write(f"{self.elapsed():6.2f}s     EVSE {s['EVSE']}: pilot {s['pilot']}, {s['status']}, "
                           f"contactor {s['contactor']}, {s['lock']}, offered {s['offered']}, {s['power']}, "
                           f"{s['energy']}, transaction {s['transaction']}\n")
        if display != self._display:
            self._display = display
            self.write(f"{self.elapsed():6.2f}s     display: {display or '(blank)'}\n")

    def update(self, evses: list[dict], display: str | None = None) -> None:
        """The periodic state refresh: nothing to do, plain output reports at the end of each step."""

    def close(self) -> None:
        """Nothing to restore on a pipe."""


class LiveView(_Writer):
    """The terminal panel: title, current step, an EVSE table and the last OCPP messages.

    Notes are printed above the panel and scroll with the terminal; the panel
    itself is erased and redrawn below them, so it always stays at the bottom.
    """

    COLUMNS = ("EVSE", "pilot", "status", "contactor", "lock", "offered", "power", "energy", "transaction")

    def __init__(self, out=None, *, title: str = "ocpp-agent demo") -> None:
        super().__init__(out or sys.stdout)
        self.title = title
        self.color = "NO_COLOR" not in os.environ
        self._decoder = FrameDecoder()
        self._messages: deque[OcppLine] = deque(maxlen=MESSAGES_SHOWN)
        self._step = "starting"
        self._evses: list[dict] = []
        self._display: str | None = None  # what the station's display shows
        self._drawn = 0  # lines of the panel now on screen
        self._closed = False
        self.write(_CSI + "?25l")  # hide the cursor: it would flicker over the panel

    def note(self, text: str) -> None:
        """Print a line above the panel."""
        self._erase()
        self.write(text + "\n")
        self.redraw()

    def step(self, text: str, number: int | None = None, total: int | None = None) -> None:
        """Show the step that is running now."""
        self._step = _step_label(text, number, total)
        self.redraw()

    def message(self, from_station: bool, text: str) -> None:
        """Add an OCPP frame to the message list."""
        self._messages.append(self._decoder.decode(from_station, text, self.elapsed()))
        self.redraw()

    def report(self, evses: list[dict], ids=None, display: str | None = None) -> None:
        """The state after a step: the panel shows every EVSE anyway."""
        self.update(evses, display)

    def update(self, evses: list[dict], display: str | None = None) -> None:
        """New EVSE state and display text: redraw."""
        self._evses, self._display = evses, display
        self.redraw()

    def close(self) -> None:
        """Leave the last panel on screen for good and give the cursor back; later notes go below it."""
        if self._closed:
            return
        self.redraw()
        self._closed, self._drawn = True, 0
        self.write(_CSI + "?25h")

    def redraw(self) -> None:
        """Erase the panel and draw it again from the current state (once closed, it stays as it is)."""
        if self._closed:
            return
        width, height = shutil.get_terminal_size((100, 24))
        lines = [self._fit(text, style, width) for text, style in self._lines(height)]
        self._erase()
        self.write("".join(line + "\n" for line in lines))
        self._drawn = len(lines)

    def _erase(self) -> None:
        if self._drawn:
            # Up to the panel's first line, then clear to the end of the screen.
            self.write(f"{_CSI}{self._drawn}F{_CSI}J")
            self._drawn = 0

    def _lines(self, height: int) -> list[tuple[str, str]]:
        lines = [(f"{self.title}   t={self.elapsed():5.1f}s", "bold"), (self._step, "step"), ("", "")]
        lines += self._table() + [(f"display: {self._display or '(blank)'}", "")]
        lines += [("", ""), (f"last OCPP messages ({self.arrow(True, compact=True)}: sent by the station, "
                             f"{self.arrow(False, compact=True)}: sent by the CSMS)", "dim")]
        # A panel taller than the terminal cannot be redrawn in place: show fewer messages instead.
        room = max(1, height - len(lines) - 2)
        for line in list(self._messages)[-room:]:
            arrow = self.arrow(line.from_station, compact=True)
            lines.append((f"{line.elapsed:6.1f}s  {arrow}  {line.label:<24} {line.body}",
                          "out" if line.from_station else "in"))
        return lines

    def _table(self) -> list[tuple[str, str]]:
        rows = [dict(zip(self.COLUMNS, self.COLUMNS))] + [evse_summary(e, short_ids=True) for e in self._evses]
        widths = {c: max(len(row[c]) for row in rows) for c in self.COLUMNS}
        text = ["  ".join(row[c].ljust(widths[c]) for c in self.COLUMNS).rstrip() for row in rows]
        return [(text[0], "dim")] + [(line, "") for line in text[1:]]

    def _fit(self, text: str, style: str, width: int) -> str:
        # Never let a line wrap: the redraw counts lines, and a wrapped one would leave debris.
        if len(text) >= width:
            text = text[:max(0, width - 2)] + ("…" if self.unicode else ">")
        if self.color and style:
            return f"{_CSI}{_STYLES[style]}m{text}{_CSI}0m"
        return text


def make_view(out=None, *, title: str = "ocpp-agent demo"):
    """The live panel when ``out`` is a terminal, plain lines otherwise."""
    out = out or sys.stdout
    if out.isatty() and os.environ.get("TERM") != "dumb":
        return LiveView(out, title=title)
    return PlainView(out)
