"""Helpers shared by the hardware-layer tests (fixtures live in conftest.py)."""

from __future__ import annotations

from hal.events import FaultCleared, FaultRaised

# Mock feedback is instant; a short timeout keeps the fault paths fast.
FEEDBACK_TIMEOUT_S = 0.05


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def faults_of(events: list) -> list[tuple[str, int | None, str]]:
    """('raised'|'cleared', evse_id, code) for every fault event, in order."""
    out = []
    for event in events:
        if isinstance(event, FaultRaised):
            out.append(("raised", event.evse_id, event.code))
        elif isinstance(event, FaultCleared):
            out.append(("cleared", event.evse_id, event.code))
    return out
