"""Soak: charging sessions back to back on 2 EVSEs with meter values every second, for a long time.

The real daemon runs against a CSMS; /proc is sampled every few seconds. After a warm-up the
resident memory may grow by less than 2 MiB, threads and file descriptors not at all, and the
message log must stay within its bound (it is set small, so it must trim many times). Every
session must reach the CSMS exactly once.

The full-size run lasts ``RELIABILITY_SOAK_S`` (default 1800 s) per version, both versions at
once; the smoke test a few sessions, asserting everything but the memory figure.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import time

import pytest

from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from tests.harness import wait_until
from tests.reliability.conftest import full_size
from tests.reliability.daemon import Daemon, write_config
from tests.reliability.power_cuts import audit_books, delivered, journal_rows

RSS_GROWTH_LIMIT_KIB = 2048
# The log's file may exceed the frames it keeps by SQLite's free pages and its write-ahead log (which the
# agent truncates back to agent.runtime.message_log.WAL_LIMIT_BYTES); past that the file must not grow.
FILE_SLACK_BYTES = 5 * 2**20
SAMPLE_EVERY_S = 5.0


class Soak:
    """One version's soak: a daemon with 2 EVSEs, a driver per EVSE, and a /proc sampler."""

    def __init__(self, tmp_path, version: str, *, duration_s: float, session_s: float, bound_bytes: int | None = None):
        self.tmp_path, self.version = tmp_path, version
        self.duration_s, self.session_s = duration_s, session_s
        # About half of what the run logs, so the log must trim.
        self.bound_bytes = bound_bytes or max(8 * 1024, int(duration_s * 300))
        self.samples: list[dict] = []
        self.sessions = 0

    async def run(self) -> dict:
        """Soak for ``duration_s``; the figures."""
        self.csms = CsmsSimulator(ocpp_version=self.version, behaviour=CsmsBehaviour(heartbeat_interval=60))
        await self.csms.start()
        config = write_config(self.tmp_path, self.csms.url, version=self.version, station_id="CP-SOAK", evses=2,
                              logging={"message_log_max_MiB": self.bound_bytes / 2**20},
                              configuration={"MeterValueSampleInterval": 1},
                              variables={"SampledDataCtrlr.TxUpdatedInterval": 1})
        self.daemon = Daemon(config)
        await self.daemon.start()
        try:
            await self.csms.wait_for_call("StatusNotification", count=2, timeout=20)
            self.started = time.monotonic()
            deadline = self.started + self.duration_s
            await asyncio.gather(self._drive(1, deadline), self._drive(2, deadline), self._sample(deadline))
            await wait_until(lambda: delivered(self.daemon.data_dir / "state.sqlite"), timeout=30, interval=0.2)
            self._take_sample()
        finally:
            code = await self.daemon.stop()
            await self.csms.stop()
        assert code == 0, self.daemon.log_tail()
        return self.figures()

    async def _drive(self, evse: int, deadline: float) -> None:
        """Sessions back to back until ``deadline``: plug, tap, charge, unplug."""
        sim = self.daemon.sim
        while time.monotonic() < deadline:
            await sim(cmd="plug", evse=evse)
            await sim(cmd="tap", id_token=f"CARD{evse}", evse=evse)
            await sim(cmd="ev", evse=evse, charge=True)
            await sim(cmd="power", evse=evse, watts=7400 if evse == 1 else 11000)
            await asyncio.sleep(self.session_s)
            await sim(cmd="unplug", evse=evse)
            self.sessions += 1
            await asyncio.sleep(0.5)

    async def _sample(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._take_sample()
            await asyncio.sleep(min(SAMPLE_EVERY_S, max(0.0, deadline - time.monotonic())))

    def _take_sample(self) -> None:
        sample = {"t": round(time.monotonic() - self.started, 1), **self.daemon.resources(), **self._message_log()}
        self.samples.append(sample)

    def _message_log(self) -> dict:
        path = self.daemon.data_dir / "messages.sqlite"
        with sqlite3.connect(path, timeout=5) as db:
            stored, rows, first = db.execute("SELECT COALESCE(SUM(size), 0), COUNT(*), MIN(id) FROM frames").fetchone()
        files = sum(p.stat().st_size for p in self.daemon.data_dir.glob("messages.sqlite*"))
        return {"log_stored_bytes": stored, "log_rows": rows, "log_first_row": first or 0, "log_file_bytes": files}

    def figures(self) -> dict:
        """Growth after the warm-up (the first fifth, at least 20 s) and the message log's bound."""
        warm = max(20.0, self.duration_s / 5)
        settled = [s for s in self.samples if s["t"] <= warm][-3:] or self.samples[:1]
        late = self.samples[-3:]
        tail = [s for s in self.samples if s["t"] >= self.duration_s * 3 / 4] or late
        books = audit_books(self.version, self.csms, journal_rows(self.daemon.data_dir / "state.sqlite"))
        return {
            "version": self.version, "seconds": round(self.samples[-1]["t"]), "sessions": self.sessions,
            "transactions": books["journal"], "exactly_once": books["exactly_once"],
            "lost": len(books["lost"]), "duplicated": len(books["duplicated"]),
            "meter_values": len(self.csms.calls("MeterValues") + self.csms.calls("TransactionEvent")),
            "rss_kib_after_warmup": int(statistics.median(s["rss_kib"] for s in settled)),
            "rss_kib_end": int(statistics.median(s["rss_kib"] for s in late)),
            "rss_growth_kib": int(statistics.median(s["rss_kib"] for s in late)
                                  - statistics.median(s["rss_kib"] for s in settled)),
            "threads_after_warmup": max(s["threads"] for s in settled), "threads_late_max": max(s["threads"] for s in tail),
            # Descriptors come and go for a moment (a control-socket client, a SQLite journal): a leak
            # shows as a higher baseline, so the typical (median) count of each window is compared.
            "fds_after_warmup": int(statistics.median(s["fds"] for s in settled)),
            "fds_late": int(statistics.median(s["fds"] for s in tail)), "fds_late_max": max(s["fds"] for s in tail),
            "log_bound_bytes": self.bound_bytes, "log_stored_max_bytes": max(s["log_stored_bytes"] for s in self.samples),
            "log_rows_trimmed": self.samples[-1]["log_first_row"] - 1,
            "log_file_bytes_end": self.samples[-1]["log_file_bytes"],
            "log_file_bytes_half": self._at(self.duration_s / 2)["log_file_bytes"],
            "samples": len(self.samples),
        }

    def _at(self, t: float) -> dict:
        return min(self.samples, key=lambda s: abs(s["t"] - t))


def check(result: dict, *, memory: bool) -> None:
    """The soak's goals."""
    assert result["lost"] == 0 and result["duplicated"] == 0, result
    assert result["exactly_once"] == result["transactions"] >= result["sessions"] > 0, result
    assert result["threads_late_max"] <= result["threads_after_warmup"], result
    assert result["fds_late"] <= result["fds_after_warmup"], result
    assert result["log_stored_max_bytes"] <= result["log_bound_bytes"], result
    assert result["log_rows_trimmed"] > 0, "the message log never reached its bound: the soak proves nothing"
    assert result["log_file_bytes_end"] <= 2 * result["log_bound_bytes"] + FILE_SLACK_BYTES, result
    if memory:
        assert result["rss_growth_kib"] < RSS_GROWTH_LIMIT_KIB, result


async def test_soak_smoke_sessions_on_two_evses(tmp_path, figures):
    result = await Soak(tmp_path, "2.0.1", duration_s=6, session_s=1.5, bound_bytes=4096).run()
    figures.record("soak", "smoke 2.0.1", **result)
    check(result, memory=False)


@pytest.mark.reliability
async def test_soak_full(tmp_path, figures):
    duration = full_size("RELIABILITY_SOAK_S", 1800)
    soaks = [Soak(tmp_path / v, v, duration_s=duration, session_s=20) for v in ("1.6", "2.0.1")]
    results = await asyncio.gather(*(soak.run() for soak in soaks))
    for result in results:
        figures.record("soak", f"full {result['version']}", **result)
    for result in results:
        check(result, memory=True)
