"""One EVSE's state machine: the only code that switches its contactor, lock and offered current.

Inputs arrive as commands on the EVSE's queue and are handled one at a time, so
hardware actions never interleave. After each input the machine works out where
it should be (``_evaluate``) and performs the entry actions of the new state.
The safety order is fixed here and in the HAL: current to 0 A, contactor open,
then the lock may release.

When a transaction starts and ends follows the 2.0.1 TxStartPoint/TxStopPoint
settings; their defaults (start once plugged AND authorized, end when the
authorization ends) are the 1.6 behaviour. A transaction can therefore run
before it has an idToken (start at EVConnected) or after its authorization
ended (stop at EVConnected: it lasts until the cable goes). Energy flows only
while the transaction holds an authorization, and the cable is locked only then.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from agent.core.charging.model import ConnectorStatus, IdTokenInfo, StopReason
from agent.core.charging.transactions import Transaction, TransactionJournal
from hal.errors import HalError, InterlockError, LockRefused, MeterReadError
from hal.events import PilotState
from hal.faults import fault_spec

log = logging.getLogger("agent.evse")

PLUGGED = (PilotState.B, PilotState.C, PilotState.D)
REQUESTING = (PilotState.C, PilotState.D)


@dataclass
class Authorization:
    """An idToken allowed to start on this EVSE, waiting for the cable (or already used)."""

    id_token: str
    info: IdTokenInfo
    granted_at: float  # loop time
    remote_start_id: int | None = None
    token_type: str | None = "ISO14443"  # how the token was presented (2.0.1 IdTokenEnumType; None: 1.6 idTag)
    reservation_id: int | None = None  # a station-wide reservation this authorization uses


@dataclass
class Command:
    """One input to the machine; ``done`` carries the answer back to a waiting caller."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    done: asyncio.Future | None = None


# Faults that stop charging with a reason of their own (2.0.1; 1.6 says Other for all of them).
_FAULT_STOP_REASON = {"rcd-trip": StopReason.GROUND_FAULT}


class EvseMachine:
    """State machine of one EVSE (one connector)."""

    def __init__(self, evse_id: int, *, hardware, journal: TransactionJournal, settings, clock,
                 max_current_A: float, on_status: Callable[[int, ConnectorStatus, str | None], None],
                 on_transaction: Callable[[int, Transaction | None], None] | None = None,
                 sample_now: Callable | None = None, ticker=None):
        self.evse_id = evse_id
        self.hw = hardware
        self.journal = journal
        self.settings = settings
        self.clock = clock
        self.max_current_A = max_current_A
        self.limit_A = max_current_A  # what smart charging allows; 0 suspends
        self.status = ConnectorStatus.AVAILABLE
        self.error: str | None = None
        self.pilot = PilotState.A
        self.operative = True
        self.faults: set[str] = set()
        self.authorization: Authorization | None = None
        self.transaction: Transaction | None = None
        self.suspended_by_csms = False  # deauthorized without StopTransactionOnInvalidId
        self.tx_authorized = False  # the running transaction holds an authorization (energy may flow)
        # The running transaction's authorization ended (reason, idToken, type) but TxStopPoint
        # EVConnected keeps it until the cable goes.
        self._auth_ended: tuple[StopReason, str | None, str | None] | None = None
        self._tx_had_cable = False  # the cable was in at some time during the running transaction
        self._tx_had_energy = False  # energy flowed at some time during the running transaction
        self._cable_wait_from: float | None = None  # loop time a transaction began waiting for its cable
        self._reset_pending = False  # a reset of this EVSE waits for its transaction to end
        self._reset_waiters: list[asyncio.Future] = []
        self._input = ""  # the kind of input being handled (what caused a start)
        self.reservation = None  # agent.core.charging.reservations.Reservation holding this EVSE
        self.on_reservation_used: Callable[[int], None] = lambda reservation_id: None
        self._finishing = False
        self._on_status = on_status
        self._on_transaction = on_transaction or (lambda evse_id, tx: None)
        self._sample_now = sample_now
        self._ticker = ticker
        self._queue: asyncio.Queue[Command] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._allowance_task: asyncio.Task | None = None
        self._reported: tuple | None = None

    def __repr__(self) -> str:
        tx = self.transaction.ref[:8] if self.transaction else "-"
        return f"<EvseMachine {self.evse_id} {self.status.value} pilot={self.pilot.value} tx={tx}>"

    @property
    def awaiting_token(self) -> bool:
        """A transaction runs that started before authorization (at plug-in) and still has no idToken."""
        return self.transaction is not None and not self.tx_authorized and self._auth_ended is None

    # ------------------------------------------------------------ public API

    def submit(self, kind: str, **args) -> asyncio.Future:
        """Queue an input; the returned future resolves once it has been handled."""
        done = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Command(kind, args, done))
        return done

    async def start(self) -> None:
        """Start the loop from the hardware's present state."""
        self.pilot = self.hw.pilot.state
        self._task = asyncio.create_task(self._run(), name=f"evse-{self.evse_id}")
        await self.submit("evaluate")

    async def stop(self) -> None:
        """Stop the loop (outputs are made safe by the HAL's safe_state)."""
        for task in (self._task, self._allowance_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._allowance_task = None

    # ------------------------------------------------------------ the loop

    async def _run(self) -> None:
        while True:
            try:
                command = await asyncio.wait_for(self._queue.get(), timeout=self._timeout())
            except asyncio.TimeoutError:
                command = Command("timer")
            if self._ticker is not None:
                self._ticker.tick()
            try:
                result = await self._handle(command)
            except Exception as exc:  # never let one bad input kill the EVSE loop
                log.exception("EVSE %d: %s failed", self.evse_id, command.kind)
                await self._make_safe()
                result = exc
            if command.done is not None and not command.done.done():
                if isinstance(result, Exception):
                    command.done.set_exception(result)
                else:
                    command.done.set_result(result)

    def _cable_deadline(self) -> float | None:
        """Loop time by which the cable must be in (ConnectionTimeOut), or None if nothing waits for it."""
        timeout = self.settings["connection_timeout_s"]
        if timeout <= 0:
            return None
        if self.transaction is None and self.authorization is not None:
            return self.authorization.granted_at + timeout
        if self.transaction is not None and self._cable_wait_from is not None:
            return self._cable_wait_from + timeout  # started at authorization (TxStartPoint Authorized)
        return None

    def _timeout(self) -> float:
        """Seconds until the connection timeout of a waiting authorization (or a liveness tick)."""
        from agent.runtime.liveness import TICK_S

        deadline = self._cable_deadline()
        if deadline is None:
            return TICK_S
        return max(0.0, min(deadline - asyncio.get_running_loop().time(), TICK_S))

    async def _handle(self, command: Command):
        self._input = command.kind
        handler = getattr(self, f"_on_{command.kind}")
        result = await handler(**command.args)
        await self._evaluate()
        if not self._reset_pending:
            self._settle_resets()  # after _evaluate: the re-initialised status has been reported
        return result

    # ------------------------------------------------------------ inputs

    async def _on_evaluate(self):
        return None

    async def _on_timer(self):
        deadline = self._cable_deadline()
        if deadline is None or asyncio.get_running_loop().time() < deadline:
            return
        if self.transaction is not None:
            log.info("EVSE %d: no cable within EVConnectionTimeOut; transaction ends", self.evse_id)
            await self._stop_transaction(StopReason.TIMEOUT)
            return
        log.info("EVSE %d: no cable within ConnectionTimeOut; authorization of %s dropped",
                 self.evse_id, self.authorization.id_token)
        self.authorization = None

    async def _on_pilot(self, state: PilotState):
        previous, self.pilot = self.pilot, state
        if state is PilotState.A and previous in PLUGGED:
            self._finishing = False
            if self.transaction is not None:
                await self._cable_gone()
        elif (state is PilotState.B and previous in REQUESTING and self.transaction is not None
              and self.tx_authorized and self._tx_had_energy and "EnergyTransfer" in self._stop_points()):
            await self._stop_transaction(StopReason.STOPPED_BY_EV)  # the EV stopped drawing

    async def _cable_gone(self) -> None:
        """The cable was unplugged during a transaction: end it, unless it may go on without the cable."""
        stops = self._stop_points()
        if self._auth_ended is not None:  # its authorization ended before; it waited for this
            reason, id_token, token_type = self._auth_ended
            await self._stop_transaction(reason, id_token, token_type, ended_by=StopReason.EV_DISCONNECTED)
        elif (not self.tx_authorized or stops & {"EVConnected", "PowerPathClosed"}
              or ("EnergyTransfer" in stops and self._tx_had_energy)
              or self.settings["stop_transaction_on_ev_side_disconnect"]):
            # (Without an authorization nothing else could ever end it.)
            await self._stop_transaction(StopReason.EV_DISCONNECTED)
        elif self.settings["unlock_connector_on_ev_side_disconnect"]:
            # The transaction goes on (suspended) but the cable may be taken: energy off first.
            await self._make_safe(unlock=True)

    async def _on_authorize(self, id_token: str, info: IdTokenInfo, remote_start_id: int | None = None,
                            token_type: str | None = "ISO14443", reservation_id: int | None = None):
        """A token was accepted for this EVSE (tap or remote start). True if it will be used.

        It waits for the cable (or starts the transaction), or completes a transaction
        that started at plug-in without one.
        """
        if not self.operative or self._stops_charging():
            return False
        if self.transaction is not None and not self.awaiting_token:
            return False
        if self.reservation is not None and not self.reservation.allows(id_token, info.group_id):
            return False  # held for someone else
        auth = Authorization(id_token, info, asyncio.get_running_loop().time(), remote_start_id, token_type,
                             reservation_id)
        if self.transaction is not None:
            self._authorize_transaction(auth)
            return True
        self.authorization = auth
        self._finishing = False
        return True

    async def _on_stop(self, reason: StopReason, id_token: str | None = None, token_type: str | None = None):
        """End the running transaction's authorization (TxStopPoint decides whether it ends now); True if one ran."""
        if self.transaction is None:
            if self.authorization is not None and reason in (StopReason.LOCAL, StopReason.REMOTE):
                self.authorization = None  # a second tap before plugging in cancels
                return True
            return False
        if self.tx_authorized:
            await self._end_authorization(reason, id_token, token_type)
        elif self._auth_ended is None:  # never authorized: there is nothing to wait for
            await self._stop_transaction(reason, id_token, token_type)
        return True  # (already stopped: it ends when the cable goes)

    async def _on_deauthorize(self, ref: str):
        """The CSMS refused the token of a started transaction (StartTransaction.conf not Accepted)."""
        if self.transaction is None or self.transaction.ref != ref or not self.tx_authorized:
            return
        if self.settings["stop_transaction_on_invalid_id"]:
            await self._end_authorization(StopReason.DEAUTHORIZED)
            return
        allowance = self.settings["max_energy_on_invalid_id_Wh"]
        if allowance <= 0:
            self.suspended_by_csms = True  # energy stops; the transaction waits for the driver
            return
        # MaxEnergyOnInvalidId: charging may go on until this much energy has been delivered.
        self._allowance_task = asyncio.create_task(self._watch_allowance(ref, allowance), name="max-energy")

    async def _watch_allowance(self, ref: str, allowance_Wh: float) -> None:
        limit = self.transaction.meter_start_Wh + allowance_Wh
        while self.transaction is not None and self.transaction.ref == ref:
            energy = await self._read_energy_Wh()
            if energy is not None and energy >= limit:
                self.submit("suspend_invalid", ref=ref)
                return
            await asyncio.sleep(1.0)  # only while a refused token is still charging

    async def _on_suspend_invalid(self, ref: str):
        if self.transaction is not None and self.transaction.ref == ref:
            log.info("EVSE %d: MaxEnergyOnInvalidId reached; energy stopped", self.evse_id)
            self.suspended_by_csms = True

    async def _on_reserve(self, reservation):
        """Hold this EVSE for a reservation (the station checked it is free)."""
        self.reservation = reservation

    async def _on_unreserve(self, reservation_id: int):
        if self.reservation is not None and self.reservation.reservation_id == reservation_id:
            self.reservation = None

    async def _on_availability(self, operative: bool):
        """Operative/inoperative; answers "Accepted" or "Scheduled" (after the running transaction)."""
        self.operative = operative
        if not operative:
            self.authorization = None
        return "Scheduled" if (not operative and self.transaction is not None) else "Accepted"

    async def _on_limit(self, amps: float):
        limit = max(0.0, min(float(amps), self.max_current_A))
        if limit == self.limit_A:
            return
        before = self._target_status()
        self.limit_A = limit
        after = self._target_status()
        if self.transaction is not None and self.tx_authorized and after is before:
            # 2.0.1 E: the CSMS hears of a new rate for a running transaction (ChargingRateChanged);
            # a change that suspends or resumes charging is reported as the state change it causes.
            self.journal.add_status(self.transaction.ref, after.value, timestamp=self.clock.time(),
                                    ev_connected=self.pilot in PLUGGED, trigger="ChargingRateChanged")
            self._on_transaction(self.evse_id, self.transaction)

    async def _on_fault(self, code: str, active: bool):
        (self.faults.add if active else self.faults.discard)(code)
        if active and fault_spec(code).stops_charging and self.transaction is not None:
            await self._stop_transaction(_FAULT_STOP_REASON.get(code, StopReason.OTHER))

    async def _on_unlock(self):
        """UnlockConnector: stop a running transaction first, then release the cable."""
        if self.transaction is not None:
            await self._stop_transaction(StopReason.UNLOCK_COMMAND)
        try:
            return await self.hw.lock.unlock()
        except LockRefused:
            return False

    async def _on_end_for_reset(self, reason: StopReason):
        if self.transaction is not None:
            await self._stop_transaction(reason)
        self.authorization = None

    async def _on_reset(self, immediate: bool, done: asyncio.Future | None = None):
        """Reset this EVSE alone (2.0.1 B11/B12): "Accepted", or "Scheduled" until its transaction ends.

        Immediate ends a running transaction first (ImmediateReset); otherwise the
        reset waits for the transaction to end. ``done`` resolves once the EVSE has
        been re-initialised and its status reported.
        """
        if done is not None:
            self._reset_waiters.append(done)
        self._reset_pending = True
        if self.transaction is None:
            await self._reinitialise()
            return "Accepted"
        if not immediate:
            return "Scheduled"
        await self._stop_transaction(StopReason.SOFT_RESET)  # re-initialises: the reset is pending
        return "Accepted"

    async def _reinitialise(self) -> None:
        """This EVSE's power-up state: outputs safe, session state dropped, status reported anew."""
        self._reset_pending = False
        if self._allowance_task is not None:
            self._allowance_task.cancel()
            self._allowance_task = None
        await self._make_safe(unlock=True)  # current 0 A, contactor open, and only then the lock
        self.authorization = None
        self.suspended_by_csms = False
        self.pilot = self.hw.pilot.state
        self._reported = None  # report the status again even if it did not change
        log.info("EVSE %d: reset", self.evse_id)

    def _settle_resets(self) -> None:
        waiters, self._reset_waiters = self._reset_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------ decisions

    def _stops_charging(self) -> bool:
        return any(fault_spec(code).stops_charging for code in self.faults)

    def _start_points(self) -> set[str]:
        return set(self.settings["tx_start_point"]) or {"PowerPathClosed"}  # none listed: the default

    def _stop_points(self) -> set[str]:
        return set(self.settings["tx_stop_point"]) or {"Authorized"}

    def _start_due(self) -> bool:
        """Whether a listed TxStartPoint holds, so a transaction starts now."""
        if not self.operative or self._stops_charging():
            return False
        points, plugged, authorized = self._start_points(), self.pilot in PLUGGED, self.authorization is not None
        # After a transaction the cable must go and come back before it starts another by itself.
        fresh_plug = plugged and (authorized or not self._finishing)
        return (("PowerPathClosed" in points and plugged and authorized)
                or ("Authorized" in points and authorized)
                or ("EVConnected" in points and fresh_plug))

    def _target_status(self) -> ConnectorStatus:
        if self._stops_charging():
            return ConnectorStatus.FAULTED
        if self.transaction is not None:
            return self._charging_status()
        if not self.operative:
            return ConnectorStatus.UNAVAILABLE
        if self.reservation is not None and self.authorization is None:
            return ConnectorStatus.RESERVED
        if self._finishing and self.pilot in PLUGGED:
            return ConnectorStatus.FINISHING
        if self.pilot in PLUGGED or self.authorization is not None:
            return ConnectorStatus.PREPARING
        return ConnectorStatus.AVAILABLE

    def _charging_status(self) -> ConnectorStatus:
        if self._auth_ended is not None:
            return ConnectorStatus.FINISHING  # stopped; the transaction ends when the cable goes
        if not self.tx_authorized or (self.pilot not in PLUGGED and not self._tx_had_cable):
            return ConnectorStatus.PREPARING  # waiting for an idToken, or for the cable
        if self.suspended_by_csms or self.limit_A <= 0:
            return ConnectorStatus.SUSPENDED_EVSE
        if self.pilot in REQUESTING:
            # The EV asks for energy; without a held cable the EVSE cannot give it.
            return ConnectorStatus.CHARGING if self._cable_held() else ConnectorStatus.SUSPENDED_EVSE
        return ConnectorStatus.SUSPENDED_EV

    async def _evaluate(self) -> None:
        if self.transaction is not None and self.pilot in PLUGGED and not self._tx_had_cable:
            self._cable_arrived()
        if (self.transaction is not None and self.tx_authorized and self.pilot in PLUGGED
                and not self.hw.lock.locked and "lock-failure" not in self.faults):
            await self.hw.lock.lock()  # replugged, plugged after the start, or authorized after the start
        if self.transaction is None and self._start_due():
            await self._start_transaction()
        await self._apply_outputs()
        self._report(self._target_status())

    def _cable_held(self) -> bool:
        """The cable is locked, or this EVSE has no lock to hold it (a tethered cable).

        Safety: no current is offered and the contactor stays open through a socket
        whose lock did not engage; the driver could pull a live plug.
        """
        return not getattr(self.hw.lock, "fitted", True) or self.hw.lock.locked

    async def _apply_outputs(self) -> None:
        """Offer current and close the contactor only while an authorized transaction wants energy
        and the cable is held."""
        energy = self._target_status() is ConnectorStatus.CHARGING  # never while the cable is not held
        self._tx_had_energy = self._tx_had_energy or energy
        authorized = self.transaction is not None and self.tx_authorized
        offered = self.limit_A if (authorized and not self.suspended_by_csms and self._cable_held()) else 0.0
        self.hw.pilot.set_current_limit_A(offered)
        if energy:
            self.hw.contactor.allow_power(True)
            if not self.hw.contactor.closed:
                try:
                    await self.hw.contactor.close()
                except InterlockError:
                    log.error("EVSE %d: interlock refused to close", self.evse_id)
        else:
            self.hw.contactor.allow_power(False)
            if self.hw.contactor.closed:
                await self.hw.contactor.open()

    def _report(self, status: ConnectorStatus) -> None:
        error = next((c for c in sorted(self.faults)), None)
        if status is not self.status and self.transaction is not None:
            self.journal.add_status(self.transaction.ref, status.value, timestamp=self.clock.time(),
                                    ev_connected=self.pilot in PLUGGED)
            self._on_transaction(self.evse_id, self.transaction)
        self.status = status
        if (status, error) != self._reported:
            self._reported = (status, error)
            log.info("EVSE %d: %s%s", self.evse_id, status.value, f" ({error})" if error else "")
            self._on_status(self.evse_id, status, error)

    # ------------------------------------------------------------ transactions

    async def _read_energy_Wh(self) -> float | None:
        try:
            return (await self.hw.meter.read()).energy_import_Wh
        except (MeterReadError, HalError) as exc:
            last = self.hw.meter.last_reading
            log.warning("EVSE %d: meter read failed (%s); using %s", self.evse_id, exc,
                        "the last reading" if last else "nothing")
            return last.energy_import_Wh if last else None

    def _start_trigger(self, auth: Authorization | None) -> str:
        """What made the transaction start (2.0.1 triggerReason): the cable, or the authorization."""
        if auth is None or self._input == "pilot":
            return "CablePluggedIn"
        return "RemoteStart" if auth.remote_start_id is not None else "Authorized"

    async def _start_transaction(self) -> None:
        auth = self.authorization  # None: started at plug-in (TxStartPoint EVConnected)
        energy = await self._read_energy_Wh()
        if energy is None:
            log.error("EVSE %d: cannot start without a meter reading", self.evse_id)
            return
        begin = await self._sample("stop_txn_sampled_data", "Transaction.Begin")
        plugged = self.pilot in PLUGGED
        reservation_id = None
        if auth is not None:  # a reservation is used by its holder's token, not by a cable
            reservation_id = self.reservation.reservation_id if self.reservation else auth.reservation_id
        self.transaction = self.journal.begin(
            evse_id=self.evse_id, id_token=auth.id_token if auth else None,
            group_id=auth.info.group_id if auth else None, reservation_id=reservation_id,
            meter_start_Wh=energy, started_at=self.clock.time(), remote_start_id=auth.remote_start_id if auth else None,
            begin_sample=begin, token_type=auth.token_type if auth else None, trigger=self._start_trigger(auth),
            ev_connected=plugged)
        self.authorization = None
        self.suspended_by_csms = False
        self.tx_authorized, self._auth_ended = auth is not None, None
        self._tx_had_cable, self._tx_had_energy = plugged, False
        self._cable_wait_from = None if plugged else asyncio.get_running_loop().time()
        if reservation_id is not None:
            self.reservation = None
            self.on_reservation_used(reservation_id)  # the reservation is fulfilled
        log.info("EVSE %d: transaction %s started for %s at %.1f Wh", self.evse_id, self.transaction.ref,
                 auth.id_token if auth else "(no idToken yet)", energy)
        self._on_transaction(self.evse_id, self.transaction)
        if self.tx_authorized and plugged and not await self.hw.lock.lock():
            log.error("EVSE %d: the cable did not lock", self.evse_id)

    def _authorize_transaction(self, auth: Authorization) -> None:
        """Give the transaction that started at plug-in its idToken: energy may flow from now on."""
        reservation_id = auth.reservation_id
        if self.reservation is not None:  # the holder's token (checked by the caller) fulfils it
            reservation_id = self.reservation.reservation_id
            self.reservation = None
            self.on_reservation_used(reservation_id)
        self.tx_authorized = True
        status = self._target_status()
        tx = self.journal.authorize(
            self.transaction.ref, id_token=auth.id_token, token_type=auth.token_type, group_id=auth.info.group_id,
            timestamp=self.clock.time(), charging_state=status.value, ev_connected=self.pilot in PLUGGED,
            trigger="RemoteStart" if auth.remote_start_id is not None else "Authorized",
            remote_start_id=auth.remote_start_id, reservation_id=reservation_id)
        self.transaction = tx or self.transaction
        self.status = status  # reported with the idToken: no separate charging-state record
        log.info("EVSE %d: transaction %s authorized for %s", self.evse_id, self.transaction.ref, auth.id_token)
        self._on_transaction(self.evse_id, self.transaction)

    def _cable_arrived(self) -> None:
        """The cable came for a transaction that started at authorization."""
        self._tx_had_cable = True
        self._cable_wait_from = None
        status = self._target_status()
        self.journal.add_status(self.transaction.ref, status.value, timestamp=self.clock.time(), ev_connected=True,
                                trigger="CablePluggedIn")
        self.status = status
        self._on_transaction(self.evse_id, self.transaction)

    async def _end_authorization(self, reason: StopReason, id_token: str | None = None,
                                 token_type: str | None = None) -> None:
        """The transaction's authorization ends: so does the transaction, unless TxStopPoint waits for the cable.

        With EVConnected the only way out (no Authorized/PowerPathClosed, and no
        EnergyTransfer that has already ended with the energy), the energy stops
        and the cable is released now, and the transaction ends when it is unplugged.
        """
        stops = self._stop_points()
        waits = ("EVConnected" in stops and self.pilot in PLUGGED and not stops & {"Authorized", "PowerPathClosed"}
                 and not ("EnergyTransfer" in stops and self._tx_had_energy))
        if not waits:
            await self._stop_transaction(reason, id_token, token_type)
            return
        self.tx_authorized = False
        self._auth_ended = (reason, id_token, token_type)
        await self._make_safe(unlock=True)  # the driver may now take the cable, which ends the transaction
        self.journal.add_status(self.transaction.ref, ConnectorStatus.FINISHING.value, timestamp=self.clock.time(),
                                ev_connected=True, deauthorized=reason)
        self.status = ConnectorStatus.FINISHING
        log.info("EVSE %d: transaction %s deauthorized (%s); it ends when the cable is unplugged",
                 self.evse_id, self.transaction.ref, reason.value)
        self._on_transaction(self.evse_id, self.transaction)

    async def _stop_transaction(self, reason: StopReason, id_token: str | None = None,
                                token_type: str | None = None, *, ended_by: StopReason | None = None) -> None:
        tx = self.transaction
        await self._make_safe(unlock=False)
        energy = await self._read_energy_Wh()
        fresh = self.journal.get(tx.ref)
        end = await self._sample("stop_txn_sampled_data", "Transaction.End")
        self.journal.end(tx.ref, meter_stop_Wh=energy if energy is not None else fresh.last_meter_Wh,
                         stopped_at=self.clock.time(), reason=reason, stop_id_token=id_token, end_sample=end,
                         stop_token_type=token_type, ended_by=ended_by)
        log.info("EVSE %d: transaction %s ended (%s)", self.evse_id, tx.ref, reason.value)
        self.transaction = None
        self.suspended_by_csms = self.tx_authorized = False
        self._auth_ended = self._cable_wait_from = None
        self._finishing = self.pilot in PLUGGED
        self._on_transaction(self.evse_id, None)
        try:
            await self.hw.lock.unlock()
        except LockRefused as exc:
            log.error("EVSE %d: cable stays locked: %s", self.evse_id, exc)
        if self._reset_pending:
            await self._reinitialise()  # a reset of this EVSE waited for the transaction to end

    async def _sample(self, setting: str, context: str):
        if self._sample_now is None or not self.settings[setting]:
            return None
        return await self._sample_now(self.evse_id, self.settings[setting], context=context)

    async def _make_safe(self, *, unlock: bool = False) -> None:
        """0 A, contactor open (and only then, optionally, unlock)."""
        try:
            self.hw.pilot.set_current_limit_A(0)
        except Exception:
            log.exception("EVSE %d: cannot withdraw the current offer", self.evse_id)
        self.hw.contactor.allow_power(False)
        await self.hw.contactor.open()
        if unlock:
            try:
                await self.hw.lock.unlock()
            except LockRefused:
                pass
