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


def normalise_uid(uid: str, *, max_length: int = 20) -> str:
    """Return ``uid`` as uppercase hex without separators ("04:a1-b2 c3" -> "04A1B2C3").

    Raises ValueError if it is empty, not hex, or longer than ``max_length``
    characters (20: OCPP 1.6 idTags are at most 20 characters; a 10-byte UID
    is exactly 20 hex digits).
    """
    if not isinstance(uid, str):
        raise TypeError(f"card UID must be a string, not {type(uid).__name__}")
    text = uid.strip().upper()
    if text.startswith("0X"):
        text = text[2:]
    text = text.translate(_SEPARATORS)
    if not text:
        raise ValueError("card UID is empty")
    if not set(text) <= _HEX:
        raise ValueError(f"card UID {uid!r} is not hexadecimal")
    if len(text) > max_length:
        raise ValueError(f"card UID {uid!r} is longer than {max_length} hex digits")
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
