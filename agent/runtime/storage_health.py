"""Storage supervision: whether ``data_dir`` can be written, and getting back to writing when it can.

The state store and the message log report every write that failed because the disk refused it
(full, read-only, I/O error) to one :class:`StorageHealth`. While a part is failing:

- the station has a station-level fault, :data:`STORAGE_FAULT` (1.6 StatusNotification InternalError on
  connector 0, 2.0.1 NotifyEvent), reported without writing anything to disk;
- no transaction starts (one could not be recorded); a running one keeps charging and the journal
  keeps its records in memory, in order;
- the message log drops frames (it gives way first: it is bounded and expendable, transaction records
  are not), and stays quiet while the state store fails, so freed space goes to the store first;
- while anything fails, the health retries every ``retry_interval_s``: the state store writes what it
  holds, then the message log writes a probe; each part that succeeds is healthy again, and when none
  fails the fault clears by itself.

Reports may come from any thread (the transport logs frames from its own); listeners are called on
the event loop of the first listener, once per change of the overall state, and the retries run there
as a task that exists only while something fails (:meth:`StorageHealth.close` ends it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from typing import Callable

from agent.errors import StoreError

log = logging.getLogger("agent.storage")

#: The station-level fault raised while data_dir cannot be written (an agent-side code beside the HAL's).
STORAGE_FAULT = "storage-failure"
STATE_STORE = "state store"
MESSAGE_LOG = "message log"

# SQLite primary result codes meaning "the disk refused the write" (extended codes keep them in the low byte).
_WRITE_FAILURES = {8: "READONLY", 10: "IOERR", 13: "FULL", 14: "CANTOPEN"}
_WRITE_FAILURE_WORDS = ("disk is full", "readonly database", "disk i/o error", "read-only file system",
                        "no space left")


class StorageFault(StoreError):
    """data_dir cannot be written now (disk full, read-only file system, I/O error); nothing was written."""


def is_write_failure(exc: BaseException) -> bool:
    """True if ``exc`` says the disk refused a write (as opposed to a bug in a statement)."""
    if isinstance(exc, StorageFault):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.Error) and code is not None:
        return code & 0xFF in _WRITE_FAILURES
    if isinstance(exc, OSError):
        return True
    text = str(exc).lower()
    return any(word in text for word in _WRITE_FAILURE_WORDS)


class StorageHealth:
    """The one owner of "can data_dir be written": parts report failures, the retry loop reports recoveries.

    ``retry_interval_s``: how long after a failure (and between attempts) the parts' retries run.
    """

    def __init__(self, *, retry_interval_s: float = 2.0) -> None:
        self.retry_interval_s = retry_interval_s
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}  # part -> what went wrong
        self._retries: list[tuple[str, Callable[[], None]]] = []
        self._listeners: list[Callable[[bool, str], None]] = []
        self._announced: tuple[bool, str] = (False, "")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"<StorageHealth failing={sorted(self._failing)}>"

    # ------------------------------------------------------------ reports (any thread)

    def failed(self, part: str, exc: BaseException) -> None:
        """A write of ``part`` failed because the disk refused it."""
        with self._lock:
            first = part not in self._failing
            self._failing[part] = f"{part} cannot be written: {exc}"
        if first:
            log.error("%s cannot be written (%s): holding its writes until data_dir is writable again", part, exc)
        self._changed()

    def recovered(self, part: str) -> None:
        """``part`` wrote again (its retry succeeded)."""
        with self._lock:
            was = self._failing.pop(part, None)
        if was is not None:
            log.warning("%s can be written again", part)
            self._changed()

    def failing(self, part: str | None = None) -> bool:
        """Whether ``part`` (None: any part) cannot be written now."""
        with self._lock:
            return bool(self._failing) if part is None else part in self._failing

    def describe(self) -> str:
        """What fails now, one clause per part ("" when everything can be written)."""
        with self._lock:
            return "; ".join(self._failing[part] for part in sorted(self._failing))

    # ------------------------------------------------------------ who listens, who retries

    def add_listener(self, changed: Callable[[bool, str], None]) -> None:
        """Call ``changed(failing, description)`` whenever the overall state changes, on the event loop
        running now (added from outside a loop: called when a loop has been given by another listener)."""
        self._listeners.append(changed)
        self._loop = self._loop or _running_loop()
        if self._loop is not None and self.failing():
            self._changed()  # a failure reported before anyone listened

    def add_retry(self, part: str, retry: Callable[[], None]) -> None:
        """While ``part`` fails, ``retry()`` is called every retry interval; returning means it wrote again."""
        self._retries.append((part, retry))

    def retry_now(self) -> bool:
        """Run the retries of the failing parts in registration order; True if none fails afterwards."""
        for part, retry in list(self._retries):
            if not self.failing(part):
                continue
            try:
                retry()
            except (StoreError, sqlite3.Error, OSError) as exc:
                log.debug("%s still cannot be written: %s", part, exc)
                if not is_write_failure(exc):
                    log.error("%s: retry failed: %s", part, exc)
            else:
                self.recovered(part)
        return not self.failing()

    # ------------------------------------------------------------ the loop side

    def close(self) -> None:
        """Stop retrying (the store is closing)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            try:
                task.cancel()
            except RuntimeError:
                pass  # its loop is closed already

    async def _retry(self) -> None:
        while self.failing():
            await asyncio.sleep(self.retry_interval_s)
            self.retry_now()

    def _changed(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # the first listener added on a loop announces it
        try:
            if _running_loop() is loop:
                loop.call_soon(self._announce)
            else:
                loop.call_soon_threadsafe(self._announce)
        except RuntimeError:
            pass  # the loop is closing: nobody is left to tell

    def _announce(self) -> None:
        failing = self.failing()
        if failing and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._retry(), name="storage-retry")
        state = (failing, self.describe())
        if state[0] == self._announced[0]:
            self._announced = state
            return  # the fault stays raised (or cleared): one report per change
        self._announced = state
        for changed in list(self._listeners):
            try:
                changed(*state)
            except Exception:  # a listener's bug must not stop supervision
                log.exception("storage listener %r failed", changed)


class HeldWrites:
    """What a store does with writes the disk refuses: hold them, keyed by what they write, and write them on
    the health's retry. A mixin of :class:`agent.runtime.store.StateStore`, which gives it ``health``,
    ``_depth`` (its transaction nesting), ``_held``, ``_held_kv``, ``_held_writers`` and ``_put_text``.
    """

    @property
    def writes_held(self) -> bool:
        """True while the store cannot be written: writers that can wait keep their writes in memory."""
        return self.health.failing(STATE_STORE)

    def add_held_writer(self, flush: Callable[[], None]) -> None:
        """``flush()`` writes what a writer held (the transaction journal); run by :meth:`retry_writes`."""
        self._held_writers.append(flush)

    def retry_writes(self) -> None:
        """Write a probe (the disk is tried even with nothing held), the held writes, then each held
        writer's; StorageFault if the disk still refuses (what is left stays held)."""
        self._put_text("storage:writable_at", json.dumps(time.time()), retrying=True)
        for key, write in list(self._held.items()):
            write()
            del self._held[key]
            if key[0] == "kv":
                self._held_kv.pop(key[1], None)
        for flush in list(self._held_writers):
            flush()

    def write_or_hold(self, key: tuple, write: Callable[[], None], *, retrying: bool = False) -> bool:
        """Run ``write`` (its own transaction()); while the disk refuses writes, hold it under ``key`` (a
        later write of the same key replaces it) for :meth:`retry_writes`; True if it was held. Inside
        another transaction it is part of that one, and its failure the caller's."""
        if self._depth == 0 and self.writes_held and not retrying:
            self._held[key] = write
            return True
        try:
            write()
        except StorageFault:
            if retrying:
                raise
            self._held[key] = write
            return True
        return False


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
