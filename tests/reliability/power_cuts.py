"""Power-cut campaigns: SIGKILL the real agent at chosen points of sessions, then audit the CSMS.

A campaign runs one OCPP version against a ``CsmsSimulator`` that stays up across the cuts (its
record of transactions is the CSMS's books). Each cut starts ``ocpp-agent run`` afresh on the
same data directory and kills it in one of these ways:

``session``    at a random point of a charging session (the first crash suite's cut);
``mid_write``  a few milliseconds after an input that makes the agent journal a start or a stop;
``mid_call``   when the CSMS receives the n-th transaction CALL, before its answer is sent or
               just after it (the agent may or may not have committed it);
``offline``    while the CSMS refuses connections, in a session recorded only locally;
``replay``     after an offline session, while the agent replays its outbox to the CSMS.

A last clean run lets the agent deliver what is left. The audit compares the agent's own journal
(``state.sqlite``: every transaction it ever began) with what the CSMS received: each must be
started and ended exactly once, nothing lost, nothing the station does not know of, 2.0.1 seqNos
without gaps, and each transaction's energy register readings never going down.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from tests.harness import wait_until
from tests.reliability.daemon import Daemon, write_config

MODES = ("session", "mid_write", "mid_call", "offline", "replay")
TX_ACTIONS = {"1.6": frozenset({"StartTransaction", "StopTransaction", "MeterValues"}),
              "2.0.1": frozenset({"TransactionEvent"})}
ENERGY = "Energy.Active.Import.Register"
# 1.6 meterStart/meterStop are whole Wh (rounded) while sampled values keep 0.1 Wh: allow the rounding.
ROUNDING_WH = 0.5
CONTROL_ERRORS = (ConnectionError, OSError, TimeoutError, asyncio.TimeoutError)


@dataclass
class _Trigger:
    """A power cut armed on the CSMS side: at the n-th transaction CALL of this run."""

    nth: int
    after_reply: bool
    seen: int = 0
    reply_to: str | None = None
    fired: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class CampaignResult:
    """What one campaign did and what the audit found."""

    version: str
    cuts: Counter
    kills: int
    journal: int                 # transactions the agent began (its own journal)
    started_at_csms: int         # transactions the CSMS saw start
    exactly_once: int            # started once and ended once at the CSMS, as the journal says
    lost: list[str]              # began at the station, never (fully) reached the CSMS
    duplicated: list[str]        # a second start or a different second stop, or unknown to the station
    retransmitted: int           # identical resends after a cut (at-least-once delivery)
    meter_violations: list[str]  # an energy reading below an earlier one within a transaction
    register_setbacks: int       # next transaction's meterStart below the previous meterStop (same EVSE)

    def figures(self) -> dict:
        """The result as a figure for the report."""
        return {"version": self.version, "cuts": dict(self.cuts), "sigkills": self.kills,
                "transactions_begun": self.journal, "started_at_csms": self.started_at_csms,
                "started_and_ended_exactly_once": self.exactly_once, "lost": len(self.lost),
                "duplicated": len(self.duplicated), "identical_retransmissions": self.retransmitted,
                "meter_monotonic_violations": len(self.meter_violations),
                "register_setbacks_across_cuts": self.register_setbacks}


class PowerCutCampaign:
    """Power cuts on one OCPP version, against one CSMS, on one data directory."""

    def __init__(self, directory: Path, version: str, *, seed: int | str = 1, modes=MODES, pace: float = 1.0):
        self.directory = Path(directory)
        self.pace = pace  # scales the random waits: < 1 for a quicker smoke run
        self.version = version
        self.modes = tuple(modes)
        self.rng = random.Random(f"{seed}/{version}")
        self.csms = CsmsSimulator(ocpp_version=version, behaviour=CsmsBehaviour(heartbeat_interval=300),
                                  on_frame=self._on_frame)
        self.daemon: Daemon | None = None
        self.cuts: Counter = Counter()
        self._trigger: _Trigger | None = None
        self._online = False
        self._port = 0

    # ------------------------------------------------------------ running

    async def run(self, cuts: int) -> CampaignResult:
        """``cuts`` power cuts (modes in turn, shuffled), a clean last run, then the audit."""
        await self.csms.start()
        self._online, self._port = True, self.csms.port
        config = write_config(
            self.directory, self.csms.url, version=self.version, station_id="CP-CRASH",
            configuration={"MeterValueSampleInterval": 1, "AllowOfflineTxForUnknownId": True},
            variables={"SampledDataCtrlr.TxUpdatedInterval": 1, "OCPPCommCtrlr.RetryBackOffWaitMinimum": 1,
                       "OCPPCommCtrlr.RetryBackOffRandomRange": 0, "OCPPCommCtrlr.RetryBackOffRepeatTimes": 1})
        self.daemon = Daemon(config)
        plan = [self.modes[i % len(self.modes)] for i in range(cuts)]
        self.rng.shuffle(plan)
        try:
            for mode in plan:
                await getattr(self, f"_cut_{mode}")()
                self.cuts[mode] += 1
            await self._clean_run()
        finally:
            if self.daemon.running:
                self.daemon.kill()
                await self.daemon.wait()
            await self.csms.stop()
        return self.audit()

    async def _clean_run(self) -> None:
        """Start once more with the CSMS up and let the agent deliver everything, then SIGTERM."""
        await self._online_csms()
        self._trigger = None
        await self._boot()  # registered: its signal handlers are in place for the SIGTERM below
        db = self.daemon.data_dir / "state.sqlite"
        try:
            await wait_until(lambda: delivered(db), timeout=60, interval=0.1)
        except AssertionError:
            raise AssertionError(f"{self.version}: outbox not drained after the cuts:\n{self.daemon.log_tail()}") from None
        code = await self.daemon.stop()
        assert code == 0, f"{self.version}: clean stop exited {code}:\n{self.daemon.log_tail()}"

    async def _boot(self) -> None:
        boots = len(self.csms.calls("BootNotification"))
        await self.daemon.start()
        await self.csms.wait_for_call("BootNotification", count=boots + 1, timeout=20)

    async def _cut(self) -> None:
        """The power cut itself (if a trigger has not cut already)."""
        self.daemon.kill()
        await self.daemon.wait()
        self._trigger = None

    async def _online_csms(self) -> None:
        if not self._online:
            await self.csms.start(port=self._port)
            self._online = True

    async def _offline_csms(self) -> None:
        if self._online:
            await self.csms.stop()
            self._online = False

    async def _pause(self, low: float, high: float) -> None:
        await asyncio.sleep(self.rng.uniform(low, high) * self.pace)

    async def _sim(self, **command) -> None:
        await self.daemon.sim(**command)

    async def _start_session(self) -> None:
        await self._sim(cmd="unplug", evse=1)
        await self._sim(cmd="plug", evse=1)
        await self._sim(cmd="tap", id_token=f"CARD{self.rng.randrange(3)}")
        await self._sim(cmd="ev", evse=1, charge=True)
        await self._sim(cmd="power", evse=1, watts=self.rng.choice([3700, 7400, 11000]))

    def _started_at_csms(self) -> int:
        if self.version == "1.6":
            return len(self.csms.calls("StartTransaction"))
        return sum(1 for r in self.csms.calls("TransactionEvent") if r.payload["eventType"] == "Started")

    # ------------------------------------------------------------ the cuts

    async def _cut_session(self) -> None:
        """At a random point of a session; sometimes after it ended normally."""
        await self._online_csms()
        try:
            await self._boot()
            await self._pause(0.05, 0.4)  # registration and outbox replay in flight
            await self._start_session()
            await self._pause(0.0, 1.5)
            if self.rng.random() < 0.4:
                await self._sim(cmd="unplug", evse=1)
                await self._pause(0.0, 0.3)
        except CONTROL_ERRORS:
            pass  # the control socket may not be up yet: the cut comes anyway
        await self._cut()

    async def _cut_mid_write(self) -> None:
        """Within 30 ms of a tap (journal: begin) or an unplug (journal: end)."""
        await self._online_csms()
        try:
            await self._boot()
            await self._pause(0.05, 0.3)
            await self._sim(cmd="unplug", evse=1)
            await self._sim(cmd="plug", evse=1)
            if self.rng.random() < 0.5:
                await self._sim(cmd="tap", id_token=f"CARD{self.rng.randrange(3)}")
            else:
                started = self._started_at_csms()
                await self._sim(cmd="tap", id_token=f"CARD{self.rng.randrange(3)}")
                await self._sim(cmd="ev", evse=1, charge=True)
                await self._sim(cmd="power", evse=1, watts=7400)
                await self.csms.wait_for(lambda: self._started_at_csms() > started, timeout=5)
                await self._pause(0.1, 1.2)
                await self._sim(cmd="unplug", evse=1)
            await self._pause(0.0, 0.03)
        except CONTROL_ERRORS:
            pass
        await self._cut()

    async def _cut_mid_call(self) -> None:
        """When the CSMS gets the n-th transaction CALL: before answering, or just after."""
        await self._online_csms()
        trigger = _Trigger(nth=self.rng.randint(1, 4), after_reply=self.rng.random() < 0.5)
        self._trigger = trigger
        try:
            await self._boot()
            await self._start_session()
            await self._wait_fired(trigger, 2.5)
            if not trigger.fired.is_set():
                await self._sim(cmd="unplug", evse=1)  # a stop CALL, for the trigger to catch
            await self._wait_fired(trigger, 2.5)
        except CONTROL_ERRORS:
            pass
        await self._cut()

    async def _cut_offline(self) -> None:
        """In a session while the CSMS refuses connections: everything goes to the outbox."""
        await self._offline_csms()
        await self.daemon.start()
        try:
            await self.daemon.wait_control()
            await self._start_session()
            await self._pause(0.2, 2.5)
            if self.rng.random() < 0.5:
                await self._sim(cmd="unplug", evse=1)
                await self._pause(0.0, 0.5)
        except CONTROL_ERRORS:
            pass
        await self._cut()

    async def _cut_replay(self) -> None:
        """An offline session fills the outbox; then the CSMS is back and the cut lands in the replay."""
        await self._offline_csms()
        await self.daemon.start()
        try:
            await self.daemon.wait_control()
            await self._start_session()
            await self._pause(0.8, 2.0)
            await self._sim(cmd="unplug", evse=1)
            await asyncio.sleep(0.2)
        except CONTROL_ERRORS:
            pass
        await self._cut()
        await self._online_csms()
        trigger = _Trigger(nth=self.rng.randint(1, 3), after_reply=self.rng.random() < 0.5)
        self._trigger = trigger
        await self.daemon.start()
        db = self.daemon.data_dir / "state.sqlite"
        try:  # the trigger may ask for more CALLs than the outbox holds: then cut once it is drained
            await wait_until(lambda: trigger.fired.is_set() or delivered(db), timeout=20, interval=0.05)
        except AssertionError:
            pass
        await self._cut()

    async def _wait_fired(self, trigger: _Trigger, timeout: float) -> None:
        try:
            await asyncio.wait_for(trigger.fired.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def _on_frame(self, station_id: str, direction: str, text: str) -> None:
        """The CSMS's frame hook: fires an armed trigger (runs in the CSMS's event loop)."""
        trigger = self._trigger
        if trigger is None or trigger.fired.is_set():
            return
        try:
            frame = json.loads(text)
        except ValueError:
            return
        if not isinstance(frame, list) or len(frame) < 3:
            return
        if direction == "in" and frame[0] == 2 and frame[2] in TX_ACTIONS[self.version]:
            trigger.seen += 1
            if trigger.seen != trigger.nth:
                return
            if trigger.after_reply:
                trigger.reply_to = frame[1]
            else:
                self._fire(trigger)  # the CALL arrived; its answer will never reach the agent
        elif direction == "out" and frame[0] == 3 and frame[1] == trigger.reply_to:
            # The answer is on its way: cut within the next few ms, before or after the agent commits it.
            asyncio.get_running_loop().call_later(self.rng.uniform(0.0, 0.01), self._fire, trigger)

    def _fire(self, trigger: _Trigger) -> None:
        if not trigger.fired.is_set():
            trigger.fired.set()
            self.daemon.kill()

    # ------------------------------------------------------------ the audit

    def audit(self) -> CampaignResult:
        """Compare the agent's journal with the CSMS's books."""
        rows = journal_rows(self.daemon.data_dir / "state.sqlite")
        books = audit_books(self.version, self.csms, rows)
        return CampaignResult(version=self.version, cuts=self.cuts, kills=self.daemon.kills, **books)


def audit_books(version: str, csms, rows: list[dict]) -> dict:
    """The journal (``rows``) against the CSMS's books: the counts of a ``CampaignResult``."""
    audit = _audit_16 if version == "1.6" else _audit_201
    lost, duplicated, exactly_once, started, resent, readings = audit(csms, rows)
    violations = [f"{ref}: {values}" for ref, values in readings.items() if not _monotonic(values)]
    return {"journal": len(rows), "started_at_csms": started, "exactly_once": exactly_once, "lost": lost,
            "duplicated": duplicated, "retransmitted": resent, "meter_violations": violations,
            "register_setbacks": _register_setbacks(rows)}


def journal_rows(db_path: Path) -> list[dict]:
    """Every transaction in the agent's journal, oldest first."""
    with sqlite3.connect(db_path, timeout=5) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT ref, evse_id, remote_id, meter_start_Wh, meter_stop_Wh, started_at, stopped_at "
                          "FROM transactions ORDER BY started_at").fetchall()
    return [dict(row) for row in rows]


def delivered(db_path: Path) -> bool:
    """True once every transaction has ended and the outbox is empty (read while the agent runs)."""
    try:
        with sqlite3.connect(db_path, timeout=1) as db:
            queued = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            open_ = db.execute("SELECT COUNT(*) FROM transactions WHERE stopped_at IS NULL").fetchone()[0]
    except sqlite3.OperationalError:
        return False  # not created yet, or busy
    return queued == 0 and open_ == 0


def _energy_readings(meter_values: list[dict]) -> list[tuple[str, float]]:
    """(timestamp, Wh) of each energy register reading in 1.6 or 2.0.1 meterValue elements."""
    readings = []
    for element in meter_values or []:
        sampled = element.get("sampledValue", element.get("sampled_value", []))
        for value in sampled:
            if value.get("measurand", ENERGY) == ENERGY:
                readings.append((element["timestamp"], float(value["value"])))
    return readings


def _monotonic(values: list[float]) -> bool:
    return all(b >= a - ROUNDING_WH for a, b in zip(values, values[1:]))


def _audit_16(csms, rows):
    books = csms.transactions
    lost, duplicated, exactly_once, known = [], [], 0, set()
    samples: dict[int, list] = {}
    for call in csms.calls("MeterValues"):
        samples.setdefault(call.payload.get("transactionId"), []).extend(_energy_readings(call.payload["meterValue"]))
    readings = {}
    for row in rows:
        tx_id = int(row["remote_id"]) if row["remote_id"] is not None else None
        if tx_id not in books:
            lost.append(f"{row['ref']}: start never confirmed by the CSMS")
            continue
        known.add(tx_id)
        tx = books[tx_id]
        stops = {tuple(sorted(stop.items())) for stop in tx["stops"]}
        if tx["starts"] == 0 or not stops:
            lost.append(f"{row['ref']} (#{tx_id}): starts {tx['starts']}, stops {len(stops)}")
        elif len(stops) > 1:
            duplicated.append(f"{row['ref']} (#{tx_id}) stopped differently: {tx['stops']}")
        else:
            exactly_once += 1
            ordered = sorted(samples.get(tx_id, []))
            readings[row["ref"]] = [tx["meter_start"]] + [v for _, v in ordered] + [tx["stops"][0]["meter_stop"]]
    duplicated += [f"#{tx_id}: unknown to the station" for tx_id in books if tx_id not in known]
    started = sum(1 for tx in books.values() if tx["starts"])
    resent = sum(max(tx["starts"] - 1, 0) + max(len(tx["stops"]) - 1, 0) for tx in books.values())
    return lost, duplicated, exactly_once, started, resent, readings


def _audit_201(csms, rows):
    books = csms.transactions
    lost, duplicated, exactly_once, readings = [], [], 0, {}
    for row in rows:
        tx = books.get(row["ref"])
        if tx is None:
            lost.append(f"{row['ref']}: never reached the CSMS")
            continue
        seq = sorted(tx["events"])
        kinds = [tx["events"][n]["event_type"] for n in seq]
        if seq != list(range(len(seq))):
            lost.append(f"{row['ref']}: seqNo gaps {seq}")
        elif kinds.count("Started") != 1 or kinds[0] != "Started" or kinds.count("Ended") == 0:
            lost.append(f"{row['ref']}: events {kinds}")
        elif kinds.count("Ended") > 1 or kinds[-1] != "Ended":
            duplicated.append(f"{row['ref']}: events {kinds}")
        else:
            exactly_once += 1
            values = []
            for n in seq:
                values += _energy_readings(tx["events"][n].get("meter_value"))
            readings[row["ref"]] = [v for _, v in sorted(values)]
    journal = {row["ref"] for row in rows}
    duplicated += [f"{ref}: unknown to the station" for ref in books if ref not in journal]
    started = sum(1 for tx in books.values() if any(e["event_type"] == "Started" for e in tx["events"].values()))
    resent = sum(tx["resent"] for tx in books.values())
    return lost, duplicated, exactly_once, started, resent, readings


def _register_setbacks(rows: list[dict]) -> int:
    """Sessions whose meterStart is below the previous session's meterStop on the same EVSE."""
    setbacks, last_stop = 0, {}
    for row in rows:
        previous = last_stop.get(row["evse_id"])
        if previous is not None and row["meter_start_Wh"] < previous - 0.05:
            setbacks += 1
        if row["meter_stop_Wh"] is not None:
            last_stop[row["evse_id"]] = row["meter_stop_Wh"]
    return setbacks


def assert_exactly_once(result: CampaignResult, *, min_transactions: int = 1) -> None:
    """The campaign's goal: nothing lost, nothing duplicated, readings monotonic."""
    assert result.journal >= min_transactions, f"{result.version}: only {result.journal} transactions began"
    assert not result.lost, f"{result.version}: lost {result.lost}"
    assert not result.duplicated, f"{result.version}: duplicated {result.duplicated}"
    assert not result.meter_violations, f"{result.version}: energy readings went down {result.meter_violations}"
    assert result.exactly_once == result.journal


async def crash_campaign(directory: Path, version: str, runs: int, *, modes=("session",)) -> CampaignResult:
    """Run a campaign with ``CRASH_SEED`` (default 1) and assert its goal; return the result."""
    result = await PowerCutCampaign(directory, version, seed=os.environ.get("CRASH_SEED", "1"), modes=modes).run(runs)
    assert_exactly_once(result, min_transactions=max(1, runs // 3))
    print(f"\n{version}, {runs} power cuts: {result.figures()}")
    return result
