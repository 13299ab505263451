"""The token reader role: turns card sightings into TokenPresented events."""

from __future__ import annotations

import abc
import string
import time
from collections.abc import Callable

from hal.events import Emit, TokenPresented, deliver
from hal.faults import FaultTracker
from hal.roles._device import Device, check_positive

READER_OFFLINE = "reader-offline"
_SEPARATORS = str.maketrans("", "", " :-._\t")
_HEX = frozenset(string.hexdigits.upper())
_TOKEN_CHARS = frozenset(string.ascii_uppercase + string.digits + "-_.:*@")


def normalise_uid(uid: str, *, max_length: int = 20) -> str:
    """Return the idToken a card or keypad presented, in one canonical form.

    A hex UID loses its separators and is uppercased ("04:a1-b2 c3" ->
    "04A1B2C3"), so the same card always yields the same token whichever reader
    printed it. Other tokens (a keypad code, a printed "USER-1") are kept as
    written but uppercased: OCPP compares idTokens case-insensitively.

    Raises ValueError if it is empty, has characters outside letters, digits
    and ``-_.:*@``, or is longer than ``max_length`` (20: OCPP 1.6 idTags are at
    most 20 characters; a 10-byte UID is exactly 20 hex digits).
    """
    if not isinstance(uid, str):
        raise TypeError(f"card UID must be a string, not {type(uid).__name__}")
    text = uid.strip().upper()
    hex_text = (text[2:] if text.startswith("0X") else text).translate(_SEPARATORS)
    if hex_text and set(hex_text) <= _HEX:
        text = hex_text
    if not any(c.isalnum() for c in text):
        raise ValueError(f"idToken {uid!r} is empty or has no letter or digit")
    if not set(text) <= _TOKEN_CHARS:
        raise ValueError(f"idToken {uid!r} has characters other than letters, digits and -_.:*@")
    if len(text) > max_length:
        raise ValueError(f"idToken {uid!r} is longer than {max_length} characters")
    return text


class TokenReader(Device, abc.ABC):
    """RFID reader serving the station (``evse_id`` None) or one reader per EVSE.

    Contract:

    - Drivers call ``_present(uid, evse_id)`` for every card sighting, raw UID
      as the reader gives it. The base normalises it (uppercase hex, no
      separators) and emits ``TokenPresented``.
    - A card held on the reader is reported by most readers again and again;
      the same UID on the same reader within ``repeat_interval_s`` of its last
      sighting is suppressed. Readers that can tell the card left the field
      call ``_card_removed()``, so a quick re-tap counts again.
    - Drivers report losing and regaining the reader with ``_set_online()``,
      which raises and clears fault ``reader-offline`` (a warning).

    Drivers implement ``_start()`` (open the port, start reading) and usually
    ``_stop()``. The ``_present``/``_card_removed``/``_set_online`` callbacks
    must run on the event loop thread (``loop.call_soon_threadsafe`` from a
    reader thread).
    """

    def __init__(
        self,
        *,
        emit: Emit,
        repeat_interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repeat_interval_s = check_positive("repeat_interval_s", repeat_interval_s)
        self._emit = emit
        self._clock = clock
        self._faults = FaultTracker(None, emit=emit)
        self._last_seen: dict[int | None, tuple[str, float]] = {}
        self._presented = 0

    @property
    def online(self) -> bool:
        """False while fault ``reader-offline`` is raised."""
        return not self._faults.is_active(READER_OFFLINE)

    @property
    def faults(self) -> frozenset[str]:
        """Fault codes this reader has raised and not cleared."""
        return self._faults.active

    def _present(self, uid: str, evse_id: int | None = None) -> bool:
        """Drivers call this per sighting; True if a TokenPresented event was emitted.

        Raises ValueError for a UID that is not hex (drivers parse frames first).
        """
        token = normalise_uid(uid)
        now = self._clock()
        previous = self._last_seen.get(evse_id)
        self._last_seen[evse_id] = (token, now)
        if previous and previous[0] == token and now - previous[1] < self.repeat_interval_s:
            return False  # the same card still held on the reader
        self._presented += 1
        deliver(self._emit, TokenPresented(token, evse_id))
        return True

    def _card_removed(self, evse_id: int | None = None) -> None:
        """Drivers that detect the card leaving the field call this; the next sighting counts."""
        self._last_seen.pop(evse_id, None)

    @abc.abstractmethod
    async def _start(self) -> None:
        """Driver hook: open the reader and start reporting sightings (e.g. a reading task)."""

    def _set_online(self, online: bool, *, info: str = "") -> None:
        """Drivers report the reader lost (False) or back (True)."""
        if online:
            self._faults.clear_fault(READER_OFFLINE)
        else:
            self._faults.raise_fault(READER_OFFLINE, info=info)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {'online' if self.online else 'offline'}"
                f" presented={self._presented}>")
