"""Power cuts: SIGKILL the agent at random points of sessions, on OCPP 1.6 and 2.0.1: every
transaction is started and ended exactly once at the CSMS, never with a placeholder id, and
2.0.1 seqNos run without gaps.

The campaign machinery lives in ``tests.reliability.power_cuts``, shared with the reliability
suite, which adds cuts mid-write, mid-CALL, offline and during the outbox replay.
"""

import asyncio
import os

import pytest

from tests.reliability.power_cuts import crash_campaign

RUNS = int(os.environ.get("CRASH_RUNS", "10"))


async def test_crash_recovery_sigkill_at_random_points(tmp_path):
    # Both versions at once: the runs mostly wait on sockets and timers, so they share the cores well.
    await asyncio.gather(crash_campaign(tmp_path / "v16", "1.6", RUNS),
                         crash_campaign(tmp_path / "v201", "2.0.1", RUNS))


@pytest.mark.slow
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_crash_recovery_many_power_cuts(tmp_path, version):
    await crash_campaign(tmp_path, version, 100)
