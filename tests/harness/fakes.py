"""Small stand-ins for the agent's parts, for unit tests that need no real one."""

from __future__ import annotations

import asyncio
import json

from agent.errors import ConnectionLost


class MemoryStore(dict):
    """The two state-store methods Settings uses (``get`` from dict, ``put``), in memory."""

    def put(self, key, value):
        """Keep ``value`` under ``key``."""
        self[key] = value


class MemoryConnection:
    """The station's end of an in-memory pipe; the test holds the other end."""

    def __init__(self):
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.lost = False

    async def recv(self) -> str:
        text = await self.inbox.get()
        if text is None:
            self.lost = True
            raise ConnectionLost("peer closed")
        return text

    async def send(self, text: str) -> None:
        if self.lost:
            raise ConnectionLost("closed")
        await self.outbox.put(text)

    async def next_out(self, timeout=2.0):
        return json.loads(await asyncio.wait_for(self.outbox.get(), timeout))


class DictStore:
    """The key/value half of a StateStore, in memory."""

    def __init__(self):
        self.data = {}

    def get(self, key, default=None):
        return self.data.get(key, default)

    def put(self, key, value):
        self.data[key] = value
