"""Randomized exponential back-off (OCPP 2.0.1 RetryBackOff*), for reconnects and boot retries."""

from __future__ import annotations

import itertools
import random
from typing import Iterator


def backoff_delays(*, wait_minimum_s: float, random_range_s: float, repeat_times: int,
                   rng: random.Random | None = None) -> Iterator[float]:
    """Infinite iterator of reconnect delays following OCPP 2.0.1 RetryBackOff*.

    First delay wait_minimum + uniform(0, random_range); each of the next
    `repeat_times` attempts doubles the base; after that the base stays at the
    last (doubled) value. Randomized so a fleet does not reconnect in lock-step.
    """
    if wait_minimum_s < 0 or random_range_s < 0 or repeat_times < 0:
        raise ValueError("back-off parameters must not be negative")
    return _backoff(wait_minimum_s, random_range_s, repeat_times, rng or random.Random())


def _backoff(wait_minimum_s: float, random_range_s: float, repeat_times: int,
             rng: random.Random) -> Iterator[float]:
    for attempt in itertools.count():
        base = wait_minimum_s * 2 ** min(attempt, repeat_times)
        yield base + rng.uniform(0.0, random_range_s)
