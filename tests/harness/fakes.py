"""Small stand-ins for the agent's parts, for unit tests that need no real one."""

from __future__ import annotations


class MemoryStore(dict):
    """The two state-store methods Settings uses (``get`` from dict, ``put``), in memory."""

    def put(self, key, value):
        """Keep ``value`` under ``key``."""
        self[key] = value
