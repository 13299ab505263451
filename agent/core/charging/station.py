"""The charging station: its EVSE machines, and every decision that spans EVSEs.

It turns hardware events into EVSE inputs (which EVSE a card tap is for),
carries out the CSMS's commands in version-neutral form, and ends transactions a
crash left open. Three mixins complete it: :mod:`.reporting` (what the station
tells the protocol adapter, the ``port``, and what adapters may read),
:mod:`.station_reservations` (ReserveNow, CancelReservation, expiry) and
:mod:`.charging_limits` (profiles and the external limit -> offered current).
The adapters' view of it is declared in :mod:`.api`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from agent.core.charging.api import CsmsPort
from agent.core.charging.auth import Authorizer
from agent.core.charging import evse_inputs, fault_reports
from agent.core.charging.evse import PLUGGED, EvseMachine
from agent.core.charging.model import ConnectorStatus, IdTokenInfo, StopReason
from agent.core.charging.reservations import ReservationBook
from agent.core.charging.charging_limits import ChargingLimits
from agent.core.charging.reporting import StationReporting
from agent.core.charging.station_reservations import StationReservations
from agent.core.charging.station_resume import StationResume
from agent.core.charging.station_storage import StationStorage
from agent.core.charging.station_priority import StationPriorityCharging
from agent.core.charging.smart_charging import ProfileStore
from agent.core.charging.transactions import Transaction, TransactionJournal
from agent.core.charging.transaction_limits import StationTransactionLimits
from agent.errors import StoreError
from hal.errors import HalError, MeterReadError
from hal.events import ExternalLimitChanged, FaultCleared, FaultRaised, PilotChanged, TokenPresented

log = logging.getLogger("agent.station")

_RESTART_REASON_KEY = "station:restart_reason"
_AVAILABILITY_KEY = "station:inoperative"  # list of inoperative EVSE ids (0 = the whole station)


class ChargingStation(StationReporting, StationReservations, StationResume, StationStorage, ChargingLimits,
                      StationTransactionLimits, StationPriorityCharging):
    """All EVSEs of the station and the logic between them; what the protocol adapters may use of it
    is declared in :class:`agent.core.charging.api.StationApi`."""

    def __init__(self, *, hal, store, settings, clock, authorizer: Authorizer, journal: TransactionJournal,
                 evse_max_current: dict[int, float], liveness=None, free_vend_id_token: str | None = None,
                 evse_phases: dict[int, int] | None = None):
        self.hal = hal
        self.store = store
        self.settings = settings
        self.clock = clock
        self.authorizer = authorizer
        self.journal = journal
        self.port: CsmsPort | None = None
        self.sampler = None
        self.statuses: dict[int, tuple[ConnectorStatus, str | None]] = {0: (ConnectorStatus.AVAILABLE, None)}
        self.station_faults: set[str] = set()
        self._pending: tuple[str, IdTokenInfo, float, str] | None = None  # a tap held for the next plug-in
        self._tasks: set[asyncio.Task] = set()
        self._free_vend_id_token = free_vend_id_token
        self._status_timers: dict[int, asyncio.TimerHandle] = {}
        self._sampling: set[int] = set()
        journal.offline = lambda: self.port is None
        self.reservations = ReservationBook(store)
        self._expiry_timers: dict[int, asyncio.TimerHandle] = {}
        self.profiles = ProfileStore(store)
        self._tx_running: dict[int, str] = {}  # EVSE -> ref of its running transaction
        self._pending_tx_profiles: dict[int | None, object] = {}  # RemoteStart's TxProfile, by EVSE
        self.evse_phases = evse_phases or {}
        self._limit_timer: asyncio.TimerHandle | None = None
        self._listeners: list[Callable[[], None]] = []
        self._watch_storage(store)
        self._idle = asyncio.Event()  # set when the last transaction ends (wait_until_idle)
        #: Where the station's own short texts ("Card refused") go; the display-message service may
        #: take this over so that they never cover a message the CSMS put in front of everything.
        self.show_text: Callable[[str], object] = self._show
        for name in ("tx_start_point", "tx_stop_point"):
            settings.guard(name, _some_point)
        inoperative = set(store.get(_AVAILABILITY_KEY, []))
        self.evses: dict[int, EvseMachine] = {}
        for evse_id, max_current in evse_max_current.items():
            machine = EvseMachine(
                evse_id, hardware=hal.evse(evse_id), journal=journal, settings=settings, clock=clock,
                max_current_A=max_current, on_status=self._status_changed,
                on_transaction=self._transaction_changed, sample_now=self.sample_now,
                ticker=liveness.register(f"evse-{evse_id}") if liveness else None)
            machine.operative = evse_id not in inoperative and 0 not in inoperative
            machine.on_reservation_used = self._reservation_used
            self.evses[evse_id] = machine
            self.statuses[evse_id] = (ConnectorStatus.AVAILABLE, None)

    # ------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """End what a crash left open, then start every EVSE loop."""
        await self._recover()
        self._restore_reservations()
        for machine in self.evses.values():
            await machine.start()
        self.apply_limits()

    async def stop(self) -> None:
        """Stop the EVSE loops and background tasks (outputs: the HAL's safe_state)."""
        for timer in [*self._expiry_timers.values(), self._limit_timer]:
            if timer is not None:
                timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for machine in self.evses.values():
            await machine.stop()

    async def _recover(self) -> None:
        """End every transaction still open in the journal (once, with the last meter value) but those resumed."""
        reason = StopReason(self.store.get(_RESTART_REASON_KEY) or StopReason.POWER_LOSS.value)
        for tx in await self._not_resumed(self.journal.open_transactions()):
            energy = await self._energy_now(tx.evse_id)
            meter_stop = max(tx.last_meter_Wh, energy) if energy is not None else tx.last_meter_Wh
            plugged = tx.evse_id in self.evses and self.hal.evse(tx.evse_id).pilot.state in PLUGGED
            self.journal.end(tx.ref, meter_stop_Wh=meter_stop, stopped_at=self.clock.time(), reason=reason,
                             ev_connected=plugged)  # (2.0.1 chargingState: EVConnected or Idle)
            log.warning("transaction %s on EVSE %d was open at start-up: ended (%s, %.1f Wh)",
                        tx.ref, tx.evse_id, reason.value, meter_stop)
        self.store.delete(_RESTART_REASON_KEY)
        self.journal.prune()  # ended, delivered transactions beyond the newest 1000 are history
        self._outbox_changed()

    async def _energy_now(self, evse_id: int) -> float | None:
        try:
            return (await self.hal.evse(evse_id).meter.read()).energy_import_Wh
        except (KeyError, MeterReadError, HalError):
            return None

    # ------------------------------------------------------------ hardware events

    async def handle_hal_event(self, event) -> None:
        """Route one HAL event to the EVSE it concerns (or decide, for a card tap)."""
        if isinstance(event, PilotChanged):
            await self._pilot_changed(event)
        elif isinstance(event, TokenPresented):
            self._spawn(self.tap(event.id_token, evse_id=event.evse_id), name="tap")
        elif isinstance(event, (FaultRaised, FaultCleared)):
            await self._fault(event)
        elif isinstance(event, ExternalLimitChanged):
            self.external_limit_changed(event)  # a cap on the station (or one EVSE): limits are re-applied

    async def _pilot_changed(self, event: PilotChanged) -> None:
        machine = self.evses.get(event.evse_id)
        if machine is None:
            return
        if event.state in PLUGGED and machine.transaction is None and machine.authorization is None:
            if self._pending is not None:
                id_token, info, granted, token_type = self._pending
                self._pending = None
                timeout = self.settings["connection_timeout_s"]
                if timeout <= 0 or asyncio.get_running_loop().time() - granted <= timeout:
                    machine.submit(evse_inputs.Authorize(id_token=id_token, info=info, token_type=token_type))
            elif self._free_vend_id_token:
                from agent.core.charging.model import AuthorizationStatus

                info = IdTokenInfo(AuthorizationStatus.ACCEPTED)
                machine.submit(evse_inputs.Authorize(id_token=self._free_vend_id_token, info=info,
                                                     token_type="NoAuthorization"))
        await machine.submit(evse_inputs.Pilot(state=event.state))

    async def _fault(self, event) -> None:
        active = isinstance(event, FaultRaised)
        if event.evse_id is None:
            changed = (event.code in self.station_faults) != active
            (self.station_faults.add if active else self.station_faults.discard)(event.code)
            self._status_changed(0, self.statuses[0][0], next(iter(sorted(self.station_faults)), None))
        else:
            machine = self.evses.get(event.evse_id)
            if machine is None:
                return
            changed = (event.code in machine.faults) != active
            await machine.submit(evse_inputs.Fault(code=event.code, active=active))
        if changed:
            self._report_fault(event.evse_id, event.code, active, info=getattr(event, "info", ""))

    def _report_fault(self, evse_id: int | None, code: str, active: bool, *, info: str) -> None:
        """Queue the fault's report durably (fault_reports), offline too; if the store cannot take it,
        tell a connected CSMS directly (the port's optional ``fault_changed``)."""
        problem = bool(self.station_faults if evse_id is None else self.evses[evse_id].faults)
        timestamp = self.clock.time()
        try:
            queued = fault_reports.record_fault_event(
                self.store, evse_id=evse_id, code=code, active=active, problem=problem, timestamp=timestamp,
                info=info, offline=self.port is None, queuing_severity=self.settings["offline_queuing_severity"])
        except StoreError as exc:
            log.error("fault %s not queued for the CSMS: %s", code, exc)
            notify = getattr(self.port, "fault_changed", None)
            if notify is not None:
                notify(evse_id, code, active, timestamp=timestamp, info=info)
            return
        if queued:
            self._outbox_changed()

    # ------------------------------------------------------------ card taps

    async def tap(self, id_token: str, *, evse_id: int | None = None, token_type: str = "ISO14443") -> str:
        """A card was presented: stop its session, or authorize an EVSE. Returns what was done.

        ``token_type``: how it was read (our RFID readers read ISO 14443 cards).
        """
        id_token = id_token.upper()
        own = self._session_of(id_token, evse_id=evse_id)
        if own is not None:
            await own.submit(evse_inputs.Stop(reason=StopReason.LOCAL, id_token=id_token, token_type=token_type))
            return "stopped"
        decision = await self.authorizer.authorize(id_token, token_type=token_type)
        if not decision.info.accepted:
            log.info("card %s refused (%s, %s)", id_token, decision.info.status.value, decision.source)
            self.show_text(f"Card refused: {decision.info.status.value}")
            return "refused"
        if self._master_pass(decision.info):
            return await self._master_stop(id_token, token_type, evse_id=evse_id)
        group_session = self._group_session(decision.info.group_id, evse_id=evse_id)
        if group_session is not None:
            await group_session.submit(evse_inputs.Stop(reason=StopReason.LOCAL, id_token=id_token,
                                                         token_type=token_type))
            return "stopped"
        if self._storage_refuses(f"card {id_token}", display=True):
            return "refused"
        if self._meter_refuses(f"card {id_token}", evse_id):
            return "refused"
        return await self._grant(id_token, decision.info, evse_id=evse_id, token_type=token_type)

    def _master_pass(self, info: IdTokenInfo) -> bool:
        """True for a token of the MasterPassGroupId group: it stops transactions and never starts one."""
        group = self.settings["master_pass_group_id"]
        return bool(group) and info.group_id is not None and info.group_id.upper() == group.upper()

    async def _master_stop(self, id_token: str, token_type: str, *, evse_id: int | None) -> str:
        """A master pass stops the transaction of the EVSE it was presented at, or (station reader, no
        screen to choose on) every transaction (2.0.1 C16)."""
        running = [m for m in self._candidates(evse_id) if m.transaction is not None]
        if not running:
            log.info("master pass %s presented; no transaction to stop", id_token)
            self.show_text("Master pass: no transaction to stop")
            return "refused"
        await asyncio.gather(*(m.submit(evse_inputs.Stop(reason=StopReason.MASTER_PASS, id_token=id_token,
                                                         token_type=token_type)) for m in running))
        return "stopped"

    def _session_of(self, id_token: str, *, evse_id: int | None) -> EvseMachine | None:
        for machine in self._candidates(evse_id):
            tx = machine.transaction
            if tx is not None and tx.id_token.upper() == id_token:
                return machine
        return None

    def _group_session(self, group_id: str | None, *, evse_id: int | None) -> EvseMachine | None:
        if not group_id:
            return None
        for machine in self._candidates(evse_id):
            tx = machine.transaction
            if tx is not None and tx.group_id and tx.group_id.upper() == group_id.upper():
                return machine
        return None

    def _candidates(self, evse_id: int | None) -> list[EvseMachine]:
        if evse_id is None:
            return list(self.evses.values())
        return [self.evses[evse_id]] if evse_id in self.evses else []

    async def _grant(self, id_token: str, info: IdTokenInfo, *, evse_id: int | None,
                     remote_start_id: int | None = None, token_type: str = "ISO14443") -> str:
        held = next((r for r in self.reservations.station_wide() if r.allows(id_token, info.group_id)), None)
        target = self._target_evse(evse_id, id_token=id_token, info=info)
        if target is not None and self._free(target) and target.reservation is None and held is None \
                and not self._free_beyond_reservations():
            self.show_text("Reserved")
            return "reserved"  # every free EVSE is promised to holders of station-wide reservations
        if target is None and evse_id is None and len(self.evses) > 1 and self._any_free():
            # Several free EVSEs and none plugged: the next one plugged in gets this authorization.
            self._pending = (id_token, info, asyncio.get_running_loop().time(), token_type)
            self.show_text("Plug in your vehicle")
            return "held"
        if target is None:
            return "no-evse"
        used = await target.submit(evse_inputs.Authorize(
            id_token=id_token, info=info, remote_start_id=remote_start_id,
            reservation_id=held.reservation_id if held else None, token_type=token_type))
        return "authorized" if used else "no-evse"

    def _target_evse(self, evse_id: int | None, *, id_token: str | None = None,
                     info: IdTokenInfo | None = None) -> EvseMachine | None:
        """The EVSE an authorization is for: the one named, else the plugged one without a session
        (or whose transaction started at plug-in and waits for an idToken), else the one reserved
        for this token, else the only free one."""
        def usable(machine: EvseMachine) -> bool:
            reserved = machine.reservation
            mine = reserved is None or (id_token is not None and reserved.allows(id_token, info and info.group_id))
            return self._takes_token(machine) and mine

        if evse_id is not None:
            machine = self.evses.get(evse_id)
            return machine if machine is not None and usable(machine) else None
        candidates = [m for m in self.evses.values() if usable(m)]
        plugged = [m for m in candidates if m.pilot in PLUGGED]
        reserved = [m for m in candidates if m.reservation is not None]
        if plugged or reserved:
            return (plugged or reserved)[0]
        return candidates[0] if len(candidates) == 1 else None

    def _free_beyond_reservations(self) -> bool:
        unreserved = [m for m in self.evses.values() if self._free(m) and m.reservation is None]
        return len(unreserved) > len(self.reservations.station_wide())

    def _any_free(self) -> bool:
        return any(self._free(m) for m in self.evses.values())

    @staticmethod
    def _free(machine: EvseMachine) -> bool:
        return machine.transaction is None and machine.operative and machine.status is not ConnectorStatus.FAULTED

    def _takes_token(self, machine: EvseMachine) -> bool:
        """Free, or running a transaction that started at plug-in and waits for its idToken."""
        return self._free(machine) or (machine.awaiting_token and machine.operative and not machine.sessions_blocked
                                       and machine.status is not ConnectorStatus.FAULTED)

    # ------------------------------------------------------------ CSMS commands

    def _install_pending_tx_profile(self, evse_id: int, tx: Transaction) -> None:
        profile = self._pending_tx_profiles.pop(evse_id, None) or self._pending_tx_profiles.pop(None, None)
        if profile is not None:
            from dataclasses import replace

            self.profiles.install(replace(profile, evse_id=evse_id, transaction_ref=tx.ref))

    def remote_start(self, id_token: str, *, evse_id: int | None, remote_start_id: int | None = None,
                     token_type: str | None = None, charging_profile=None) -> bool:
        """RemoteStartTransaction: accept if an EVSE can take it; authorization follows in the background.

        ``token_type`` is the type the CSMS gave (2.0.1), kept for every message
        about this token; None for a 1.6 idTag, which has none.
        """
        if self._storage_refuses(f"remote start for {id_token}"):
            return False
        if self._meter_refuses(f"remote start for {id_token}", evse_id):
            return False
        if evse_id is not None and (evse_id not in self.evses or not self._takes_token(self.evses[evse_id])):
            return False
        if evse_id is None and self._target_evse(None, id_token=id_token) is None:
            return False
        if charging_profile is not None:  # a TxProfile for the transaction this start will open
            target = self._target_evse(evse_id, id_token=id_token)
            if target is not None and target.awaiting_token:  # ... or complete: it runs already
                from dataclasses import replace

                self.install_profile(replace(charging_profile, evse_id=target.evse_id,
                                             transaction_ref=target.transaction.ref))
            else:
                self._pending_tx_profiles[evse_id] = charging_profile
        self._spawn(self._remote_start(id_token.upper(), evse_id, remote_start_id, token_type), name="remote-start")
        return True

    async def _remote_start(self, id_token: str, evse_id: int | None, remote_start_id: int | None,
                            token_type: str | None) -> None:
        if self.settings["authorize_remote_tx_requests"]:
            decision = await self.authorizer.authorize(id_token, token_type=token_type)
            if not decision.info.accepted:
                log.info("remote start for %s refused by authorization (%s)", id_token, decision.info.status.value)
                return
            if self._master_pass(decision.info):
                log.info("remote start for %s refused: a master pass starts no transaction", id_token)
                return
            info = decision.info
        else:
            from agent.core.charging.model import AuthorizationStatus

            info = IdTokenInfo(AuthorizationStatus.ACCEPTED)
        target = self._target_evse(evse_id, id_token=id_token, info=info)
        if target is None:
            log.warning("remote start for %s: no EVSE free any more", id_token)
            return
        await target.submit(evse_inputs.Authorize(id_token=id_token, info=info, remote_start_id=remote_start_id,
                                                  token_type=token_type))

    async def remote_stop(self, *, remote_id: str | None = None, ref: str | None = None) -> bool:
        """RemoteStopTransaction / RequestStopTransaction: True if the transaction runs here."""
        for machine in self.evses.values():
            tx = machine.transaction
            if tx is not None and ((ref and tx.ref == ref) or (remote_id and self.remote_id(tx.ref) == str(remote_id))):
                machine.submit(evse_inputs.Stop(reason=StopReason.REMOTE))
                return True
        return False

    def awaiting_transaction(self, evse_id: int | None) -> str | None:
        """The transaction a remote start for ``evse_id`` would complete: one that started at plug-in
        and waits for its idToken (2.0.1 returns its id in RequestStartTransactionResponse)."""
        target = self._target_evse(evse_id)
        return target.transaction.ref if target is not None and target.awaiting_token else None

    async def change_availability(self, evse_id: int, operative: bool) -> str:
        """ChangeAvailability for one EVSE or the whole station (0): Accepted, Scheduled or Rejected."""
        if evse_id != 0 and evse_id not in self.evses:
            return "Rejected"
        self._persist_availability(evse_id, operative)
        targets = self.evses.values() if evse_id == 0 else [self.evses[evse_id]]
        answers = [await machine.submit(evse_inputs.Availability(operative=operative)) for machine in targets]
        if evse_id == 0:
            self._status_changed(0, ConnectorStatus.AVAILABLE if operative else ConnectorStatus.UNAVAILABLE,
                                 self.statuses[0][1])
        return "Scheduled" if "Scheduled" in answers else "Accepted"

    def _persist_availability(self, evse_id: int, operative: bool) -> None:
        inoperative = set(self.store.get(_AVAILABILITY_KEY, []))
        if evse_id == 0:
            inoperative = set() if operative else {0}
        else:
            (inoperative.discard if operative else inoperative.add)(evse_id)
        self.store.put(_AVAILABILITY_KEY, sorted(inoperative))

    async def unlock(self, evse_id: int) -> str:
        """UnlockConnector: Unlocked or UnlockFailed (a running transaction is stopped first)."""
        if evse_id not in self.evses:
            return "NotSupported"
        if not getattr(self.hal.evse(evse_id).lock, "fitted", True):
            return "NotSupported"
        return "Unlocked" if await self.evses[evse_id].submit(evse_inputs.Unlock()) else "UnlockFailed"

    def note_controlled_stop(self) -> None:
        """The agent is stopping on purpose: transactions left open end with Reboot at the next start
        (PowerLoss if the store cannot be written: the stop goes on, it is the restart reason that is lost)."""
        try:
            if self.store.get(_RESTART_REASON_KEY) is None:
                self.store.put(_RESTART_REASON_KEY, StopReason.REBOOT.value)
        except StoreError as exc:
            log.error("the reason of this stop is not recorded: %s", exc)
        self._last_write_attempt()

    def evse_reset_answer(self, evse_id: int, *, immediate: bool) -> str:
        """The answer to a reset of one EVSE: Rejected (unknown), Scheduled (after its transaction), Accepted."""
        machine = self.evses.get(evse_id)
        if machine is None:
            return "Rejected"
        return "Scheduled" if (not immediate and machine.transaction is not None) else "Accepted"

    async def reset_evse(self, evse_id: int, *, immediate: bool) -> None:
        """Reset one EVSE, leaving the others charging; return once it has been re-initialised.

        Immediate ends its transaction first (ImmediateReset); otherwise the reset
        waits until the transaction has ended.
        """
        done = asyncio.get_running_loop().create_future()
        await self.evses[evse_id].submit(evse_inputs.Reset(immediate=immediate, done=done))
        await done

    async def prepare_reset(self, reason: StopReason) -> None:
        """End every transaction with ``reason`` and remember it, so the next start reports Reboot."""
        self.store.put(_RESTART_REASON_KEY, StopReason.REBOOT.value)
        await asyncio.gather(*(m.submit(evse_inputs.EndForReset(reason=reason)) for m in self.evses.values()))

    async def report_transaction(self, evse_id: int) -> bool:
        """Report the EVSE's ongoing transaction now, with a fresh meter sample (2.0.1 TriggerMessage
        TransactionEvent); False when none runs."""
        machine = self.evses.get(evse_id)
        tx = machine.transaction if machine is not None else None
        if tx is None:
            return False
        sample = await self.sample_now(evse_id, self.settings["meter_values_sampled_data"], context="Trigger")
        self.journal.add_status(tx.ref, machine.status.value, timestamp=self.clock.time(),
                                ev_connected=machine.pilot in PLUGGED, trigger="Trigger", sample=sample)
        self._outbox_changed()
        return True

    def deauthorize(self, ref: str) -> None:
        """The CSMS refused the token of a transaction after it started."""
        for machine in self.evses.values():
            if machine.transaction is not None and machine.transaction.ref == ref:
                machine.submit(evse_inputs.Deauthorize(ref=ref))

    def _show(self, text: str) -> None:
        display = getattr(self.hal, "display", None)
        if display is not None:
            display.show(text)

    def _spawn(self, coro, *, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())


def _some_point(current, new) -> None:
    """TxStartPoint/TxStopPoint: a transaction that could never start or never end is refused."""
    if not new:
        raise ValueError("at least one point is required")

