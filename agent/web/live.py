"""The live state: ONE watch of the daemon's status socket, shared by every browser.

However many pages are open, the daemon has one listener (the web process); each browser gets the
snapshots through its own small queue, and a slow browser loses intermediate snapshots (each is a
full state, so the next one repairs it) instead of holding anyone up. The power of each EVSE is
kept here for the last 15 minutes, so a page opened now draws its chart at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from pathlib import Path

from agent.status.client import AgentNotRunning, watch

log = logging.getLogger(__name__)

HISTORY_S = 15 * 60
RETRY_S = 1.0  # while no daemon runs: how soon a started one shows on the page
QUEUE_SIZE = 8


class StatusHub:
    """Follows the daemon's status and fans it out: ``latest`` (None while no agent runs), ``error``,
    per-EVSE power ``history``, and :meth:`subscribe` queues of ``{"running", "status", "error"}``."""

    def __init__(self, data_dir: Path | str, *, retry_s: float = RETRY_S) -> None:
        self.data_dir = Path(data_dir)
        self.retry_s = retry_s
        self.latest: dict | None = None
        self.error = "waiting for the agent"
        self.history: dict[int, deque[tuple[float, float]]] = {}
        self._queues: set[asyncio.Queue] = set()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start following the daemon (in the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow(), name="status-watch")

    async def stop(self) -> None:
        """Stop following; wakes every subscriber with None."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for queue in self._queues:
            _offer(queue, None)

    def state(self) -> dict:
        """What a new page or an event carries now."""
        return {"running": self.latest is not None, "status": self.latest,
                "error": None if self.latest is not None else self.error}

    def subscribe(self) -> asyncio.Queue:
        """A queue that gets the current state now and at every change; give it back to :meth:`unsubscribe`."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_SIZE)
        queue.put_nowait(self.state())
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        """Stop sending to ``queue``."""
        self._queues.discard(queue)

    def power_points(self, evse_id: int, *, now: float | None = None) -> list[tuple[float, float]]:
        """The (unix time, W) points of the last 15 minutes of ``evse_id``."""
        points = self.history.get(evse_id)
        if not points:
            return []
        cutoff = (time.time() if now is None else now) - HISTORY_S
        return [point for point in points if point[0] >= cutoff]

    async def _follow(self) -> None:
        while True:
            try:
                async for snapshot in watch(self.data_dir):
                    self._publish(snapshot)
            except AgentNotRunning as exc:
                reason = str(exc)
            except Exception as exc:  # a bug or a surprise must not freeze every open page: keep following
                log.exception("agent status: following the status socket failed")
                reason = f"status socket: {exc}"
            else:
                reason = "the agent closed its status stream"
            if self.latest is not None or reason != self.error:
                log.info("agent status: %s", reason)
                self.latest, self.error = None, reason
                self._fan_out()
            await asyncio.sleep(self.retry_s)

    def _publish(self, snapshot: dict) -> None:
        self.latest = snapshot
        now = time.time()
        for evse in snapshot.get("evses", []):
            points = self.history.setdefault(evse.get("id"), deque())
            power = evse.get("power_W")
            points.append((now, float(power) if isinstance(power, (int, float)) else 0.0))
            while points and points[0][0] < now - HISTORY_S:
                points.popleft()
        self._fan_out()

    def _fan_out(self) -> None:
        state = self.state()
        for queue in self._queues:
            _offer(queue, state)


def _offer(queue: asyncio.Queue, item) -> None:
    """Put without waiting; a full queue drops its oldest entry (every entry is a whole state)."""
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(item)
