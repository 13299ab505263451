"""Liveness of the agent's loops, for the systemd watchdog.

Each long-running loop registers a ticker and ticks it whenever it wakes; the
watchdog is petted only while every ticker is fresh, so a wedged loop (not just
a dead process) gets the service restarted.
"""

from __future__ import annotations

import time

#: How often an idle loop wakes just to prove it is alive: rare enough to keep an
#: idle agent near zero CPU, far below the watchdog's staleness limit.
TICK_S = 15.0


class Ticker:
    """One loop's proof of life."""

    def __init__(self, name: str):
        self.name = name
        self.last = time.monotonic()

    def tick(self) -> None:
        """Record that the loop is making progress."""
        self.last = time.monotonic()

    def __repr__(self) -> str:
        return f"<Ticker {self.name} {time.monotonic() - self.last:.1f}s ago>"


class Liveness:
    """The set of tickers the watchdog checks."""

    def __init__(self) -> None:
        self._tickers: dict[str, Ticker] = {}

    def register(self, name: str) -> Ticker:
        """Return the ticker for ``name``, creating it fresh."""
        ticker = self._tickers.get(name) or Ticker(name)
        ticker.tick()
        self._tickers[name] = ticker
        return ticker

    def unregister(self, name: str) -> None:
        """Forget a loop that ended on purpose."""
        self._tickers.pop(name, None)

    def stale(self, max_age_s: float) -> list[str]:
        """Names of loops that have not ticked within ``max_age_s``."""
        now = time.monotonic()
        return sorted(n for n, t in self._tickers.items() if now - t.last > max_age_s)
