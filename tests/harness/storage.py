"""A full data_dir for the storage supervision tests: a small tmpfs mounted by the test (root), filled to
its last byte with one file while an in-process agent charges, then freed.

``fault_cycle`` runs one such fault against a running agent and measures it; ``StorageReports`` reads what
the CSMS heard of it in the words of its OCPP version; ``delivery`` audits what reached the CSMS.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.harness.agent import wait_until

TMPFS_SIZE = "8m"  # room for the agent's files; the filler takes the rest
FAULT_CODE = "storage-failure"
REFUSED_TEXT = "Storage fault: cannot start"
#: A card the tests tap at EVSE 2 while the disk is full (EVSE 1 charges with the harness's CARD).
OTHER_CARD = "0A0B0C0D"


@contextlib.contextmanager
def tmpfs(path: Path):
    """A fresh tmpfs of TMPFS_SIZE mounted at ``path`` (the test is skipped where mounting is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0750", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a full data_dir needs a tmpfs mounted by the test (root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to its last byte with one file; returns that file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    chunk = 1 << 20
    try:
        while chunk:
            try:
                os.write(fd, b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2  # the last blocks too
    finally:
        os.close(fd)
    return filler


def iso_seconds(stamp: str) -> float:
    """An OCPP timestamp as a unix time."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class StorageReports:
    """What the CSMS heard of the storage fault: 1.6 connector 0 errorCode, 2.0.1 NotifyEvent (answered by a
    frame hook, as the simulator has no handler for it)."""

    def __init__(self, csms) -> None:
        self.csms = csms
        self.notify_events: list[dict] = []
        if csms.ocpp_version != "1.6":
            csms.behaviour.frame_hook = self._hook

    def _hook(self, station_id, text):
        frame = json.loads(text)
        if frame[0] == 2 and frame[2] == "NotifyEvent":
            self.notify_events.append(frame[3])
            return json.dumps([3, frame[1], {}])
        return None

    def events(self, *, cleared: bool) -> list[dict]:
        """2.0.1: the storage fault's NotifyEvent items, raised (or cleared)."""
        return [d for event in self.notify_events for d in event["eventData"]
                if d.get("techCode") == FAULT_CODE and bool(d.get("cleared")) == cleared]

    def station_errors(self) -> list[str]:
        """1.6: the errorCode of every StatusNotification of connector 0."""
        return [r.payload["errorCode"] for r in self.csms.calls("StatusNotification") if r.payload["connectorId"] == 0]

    def raised(self, times: int = 1) -> bool:
        """Whether the fault is reported as raised now, for the ``times``-th time."""
        if self.csms.ocpp_version == "1.6":
            return self.station_errors().count("InternalError") >= times and self.station_errors()[-1] == "InternalError"
        return len(self.events(cleared=False)) >= times > len(self.events(cleared=True))

    def cleared(self, times: int = 1) -> bool:
        """Whether the ``times``-th raise has been reported cleared."""
        if self.csms.ocpp_version == "1.6":
            return self.station_errors().count("InternalError") >= times and self.station_errors()[-1] == "NoError"
        return len(self.events(cleared=True)) >= times


def shown(agent, text: str, *, since: float) -> bool:
    """Whether the display showed ``text`` after monotonic ``since``."""
    return any(t >= since and device == "display" and value == text for t, device, value in agent.hal.history)


def contactor_closed(agent, evse: int, *, since: float) -> bool:
    """Whether EVSE ``evse``'s contactor was commanded closed after monotonic ``since``."""
    return any(t >= since and device == f"evse{evse}.contactor" and value is True
               for t, device, value in agent.hal.history)


async def fault_cycle(agent, reports: StorageReports, *, n: int = 1, hold_s: float = 2.5) -> dict:
    """The ``n``-th full disk while EVSE 1 charges and EVSE 2 waits plugged: fill, wait for the report, tap a
    card at EVSE 2, let EVSE 1 charge on ``hold_s``, free the space, wait for the fault to clear. Figures."""
    journal = agent.station.journal
    filled = time.monotonic()
    filler = fill(Path(agent.config.station.data_dir))
    await wait_until(lambda: reports.raised(n), timeout=10, interval=0.01)  # its report needs no disk
    reported_s = time.monotonic() - filled
    tapped = time.monotonic()
    agent.hal.tap(OTHER_CARD, evse=2)
    await wait_until(lambda: shown(agent, REFUSED_TEXT, since=tapped), timeout=5)
    await asyncio.sleep(hold_s)
    evse1 = agent.hal.evse(1).contactor
    figures = {"reported_s": round(reported_s, 2), "start_refused": not journal.can_begin(),
               "tap_refused_on_display": True, "refused_tap_closed_contactor": contactor_closed(agent, 2, since=tapped),
               "kept_charging": evse1.closed and evse1.feedback_closed, "held": journal.held}
    filler.unlink()
    freed = time.monotonic()
    await wait_until(lambda: reports.cleared(n), timeout=10, interval=0.01)
    figures.update(cleared_s=round(time.monotonic() - freed, 2), held_after=journal.held)
    return figures


def delivery(csms) -> dict:
    """What reached the CSMS of the (one) transaction: records, duplicates, order and the largest gap
    between meter samples (1.6 MeterValues, 2.0.1 TransactionEvent Updated), in seconds."""
    if csms.ocpp_version == "1.6":
        stamps = [r.payload["meterValue"][0]["timestamp"] for r in csms.calls("MeterValues")]
        [tx] = csms.transactions.values()
        records = len(stamps) + len(csms.calls("StartTransaction")) + len(csms.calls("StopTransaction"))
        duplicated = len(stamps) - len(set(stamps)) + (tx["starts"] - 1) + (len(tx["stops"]) - 1)
        in_order = stamps == sorted(stamps)
    else:
        events = [r.payload for r in csms.calls("TransactionEvent")]
        [tx] = csms.transactions.values()
        seq_nos = [e["seqNo"] for e in events]
        records, duplicated = len(events), tx["resent"]
        in_order = seq_nos == list(range(len(seq_nos)))
        stamps = [e["timestamp"] for e in events if e["eventType"] == "Updated"]
    seconds = [iso_seconds(s) for s in stamps]
    gap = max((b - a for a, b in zip(seconds, seconds[1:])), default=0.0)
    return {"records": records, "duplicated": duplicated, "in_order": in_order, "largest_gap_s": round(gap, 2)}
