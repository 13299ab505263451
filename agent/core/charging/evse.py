"""One EVSE's state machine: the only code that switches its contactor, lock and offered current.

Inputs (the typed objects of ``evse_inputs``) arrive on the EVSE's queue and are
handled one at a time, each by the handler the ``_HANDLERS`` table names, so
hardware actions never interleave. After each input the machine works out where
it should be (``_evaluate``) and performs the entry actions of the new state.
The outputs are switched only through ``evse_outputs.EvseOutputs``, which keeps
the safety order (current to 0 A, contactor open, then the lock may release);
the HAL enforces it too. The transaction steps live in ``evse_transactions``.

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
from dataclasses import dataclass
from typing import Awaitable, Callable

from agent.core.charging.evse_inputs import (
    EVSE_INPUTS, PLUGGED, REQUESTING, Authorize, Availability, Deauthorize, EndForReset, Evaluate, EvseInput, Fault,
    Limit, Pilot, Reserve, Reset, Stop, SuspendInvalid, Timer, Unlock, Unreserve,
)
from agent.core.charging.evse_outputs import EvseOutputs
from agent.core.charging.evse_resume import TransactionResume
from agent.core.charging.evse_transactions import Authorization, TransactionSteps
from agent.core.charging.model import ConnectorStatus, StopReason
from agent.core.charging.transactions import Transaction, TransactionJournal
from hal.events import PilotState
from hal.faults import fault_spec

__all__ = ["PLUGGED", "REQUESTING", "Authorization", "EvseMachine"]

log = logging.getLogger("agent.evse")


@dataclass
class _Queued:
    """One input on the queue; ``done`` carries the answer back to a waiting caller."""

    input: EvseInput
    done: asyncio.Future | None = None


# Faults that stop charging with a reason of their own (2.0.1; 1.6 says Other for all of them).
_FAULT_STOP_REASON = {"rcd-trip": StopReason.GROUND_FAULT}
# Faults that let a running transaction go on but forbid a new one: a session on a dead meter could not be
# metered (nor billed), while cutting one already under way for lost metering only would strand the driver.
_BLOCKS_NEW_SESSIONS = frozenset({"meter-offline"})


class EvseMachine(TransactionResume, TransactionSteps):
    """State machine of one EVSE (one connector); ``submit`` an input of ``evse_inputs`` to drive it."""

    def __init__(self, evse_id: int, *, hardware, journal: TransactionJournal, settings, clock,
                 max_current_A: float, on_status: Callable[[int, ConnectorStatus, str | None], None],
                 on_transaction: Callable[[int, Transaction | None], None] | None = None,
                 sample_now: Callable | None = None, ticker=None):
        self.evse_id = evse_id
        self.hw = hardware
        self.outputs = EvseOutputs(evse_id, hardware=hardware)
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
        self._input: EvseInput | None = None  # the input being handled (what caused a start)
        self.reservation = None  # agent.core.charging.reservations.Reservation holding this EVSE
        self.on_reservation_used: Callable[[int], None] = lambda reservation_id: None
        self._finishing = False
        self._on_status = on_status
        self._on_transaction = on_transaction or (lambda evse_id, tx: None)
        self._sample_now = sample_now
        self._ticker = ticker
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
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

    @property
    def sessions_blocked(self) -> bool:
        """A fault forbids a new session here (a dead meter) although a running one may go on."""
        return not self.faults.isdisjoint(_BLOCKS_NEW_SESSIONS)

    # ------------------------------------------------------------ public API

    def submit(self, item: EvseInput) -> asyncio.Future:
        """Queue one input (an object of ``evse_inputs.EVSE_INPUTS``); the future resolves with its answer.

        Anything else raises TypeError here, before it is queued: an input the
        machine has no handler for must fail loudly, not be dropped later.
        """
        if type(item) not in self._HANDLERS:
            raise TypeError(f"not an EVSE input: {item!r} (expected one of "
                            f"{', '.join(t.__name__ for t in EVSE_INPUTS)})")
        done = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Queued(item, done))
        return done

    async def start(self) -> None:
        """Start the loop from the hardware's present state."""
        self.pilot = self.hw.pilot.state
        self._task = asyncio.create_task(self._run(), name=f"evse-{self.evse_id}")
        await self.submit(Evaluate())

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
                command = _Queued(Timer())
            if self._ticker is not None:
                self._ticker.tick()
            try:
                result = await self._handle(command.input)
            except Exception as exc:  # never let one bad input kill the EVSE loop
                log.exception("EVSE %d: %s failed", self.evse_id, type(command.input).__name__)
                await self.outputs.make_safe()
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

    async def _handle(self, item: EvseInput):
        self._input = item
        result = await self._HANDLERS[type(item)](self, item)
        await self._evaluate()
        if not self._reset_pending:
            self._settle_resets()  # after _evaluate: the re-initialised status has been reported
        return result

    # ------------------------------------------------------------ inputs

    async def _on_evaluate(self, _: Evaluate) -> None:
        return None

    async def _on_timer(self, _: Timer) -> None:
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

    async def _on_pilot(self, item: Pilot) -> None:
        state = item.state
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
            await self.outputs.make_safe(unlock=True)

    async def _on_authorize(self, item: Authorize) -> bool:
        """A token was accepted for this EVSE (tap or remote start). True if it will be used.

        It waits for the cable (or starts the transaction), or completes a transaction
        that started at plug-in without one.
        """
        if not self.operative or self._stops_charging() or self.sessions_blocked:
            return False
        if self.transaction is not None and not self.awaiting_token:
            return False
        if self.reservation is not None and not self.reservation.allows(item.id_token, item.info.group_id):
            return False  # held for someone else
        auth = Authorization(item.id_token, item.info, asyncio.get_running_loop().time(), item.remote_start_id,
                             item.token_type, item.reservation_id)
        if self.transaction is not None:
            self._authorize_transaction(auth)
            return True
        self.authorization = auth
        self._finishing = False
        return True

    async def _on_stop(self, item: Stop) -> bool:
        """End the running transaction's authorization (TxStopPoint decides whether it ends now); True if one ran."""
        reason, id_token, token_type = item.reason, item.id_token, item.token_type
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

    async def _on_deauthorize(self, item: Deauthorize) -> None:
        """The CSMS refused the token of a started transaction (StartTransaction.conf not Accepted)."""
        ref = item.ref
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
                self.submit(SuspendInvalid(ref=ref))
                return
            await asyncio.sleep(1.0)  # only while a refused token is still charging

    async def _on_suspend_invalid(self, item: SuspendInvalid) -> None:
        if self.transaction is not None and self.transaction.ref == item.ref:
            log.info("EVSE %d: MaxEnergyOnInvalidId reached; energy stopped", self.evse_id)
            self.suspended_by_csms = True

    async def _on_reserve(self, item: Reserve) -> None:
        """Hold this EVSE for a reservation (the station checked it is free)."""
        self.reservation = item.reservation

    async def _on_unreserve(self, item: Unreserve) -> None:
        if self.reservation is not None and self.reservation.reservation_id == item.reservation_id:
            self.reservation = None

    async def _on_availability(self, item: Availability) -> str:
        """Operative/inoperative; answers "Accepted" or "Scheduled" (after the running transaction)."""
        operative = self.operative = item.operative
        if not operative:
            self.authorization = None
        return "Scheduled" if (not operative and self.transaction is not None) else "Accepted"

    async def _on_limit(self, item: Limit) -> None:
        limit = max(0.0, min(float(item.amps), self.max_current_A))
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

    async def _on_fault(self, item: Fault) -> None:
        code = item.code
        (self.faults.add if item.active else self.faults.discard)(code)
        if item.active and fault_spec(code).stops_charging and self.transaction is not None:
            await self._stop_transaction(_FAULT_STOP_REASON.get(code, StopReason.OTHER))
        elif item.active and code in _BLOCKS_NEW_SESSIONS and self.transaction is None and self.authorization:
            # The session it was for could not be metered: the driver taps again once the fault clears.
            log.info("EVSE %d: %s; authorization of %s dropped", self.evse_id, code, self.authorization.id_token)
            self.authorization = None

    async def _on_unlock(self, _: Unlock) -> bool:
        """UnlockConnector: stop a running transaction first, then release the cable."""
        if self.transaction is not None:
            await self._stop_transaction(StopReason.UNLOCK_COMMAND)
        return await self.outputs.release_cable()

    async def _on_end_for_reset(self, item: EndForReset) -> None:
        if self.transaction is not None:
            await self._stop_transaction(item.reason)
        self.authorization = None

    async def _on_reset(self, item: Reset) -> str:
        """Reset this EVSE alone (2.0.1 B11/B12): "Accepted", or "Scheduled" until its transaction ends.

        Immediate ends a running transaction first (ImmediateReset); otherwise the
        reset waits for the transaction to end. ``done`` resolves once the EVSE has
        been re-initialised and its status reported.
        """
        if item.done is not None:
            self._reset_waiters.append(item.done)
        self._reset_pending = True
        if self.transaction is None:
            await self._reinitialise()
            return "Accepted"
        if not item.immediate:
            return "Scheduled"
        await self._stop_transaction(StopReason.SOFT_RESET)  # re-initialises: the reset is pending
        return "Accepted"

    async def _reinitialise(self) -> None:
        """This EVSE's power-up state: outputs safe, session state dropped, status reported anew."""
        self._reset_pending = False
        if self._allowance_task is not None:
            self._allowance_task.cancel()
            self._allowance_task = None
        await self.outputs.make_safe(unlock=True)  # current 0 A, contactor open, and only then the lock
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
        if not self.operative or self._stops_charging() or self.sessions_blocked:
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
            return self._charging_status()  # a running one goes on; the error code tells of a meter fault
        if self.sessions_blocked:
            return ConnectorStatus.FAULTED  # 1.6: "not available for energy delivery" because of an error
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
            return ConnectorStatus.CHARGING if self.outputs.cable_held else ConnectorStatus.SUSPENDED_EVSE
        return ConnectorStatus.SUSPENDED_EV

    async def _evaluate(self) -> None:
        if self.transaction is not None and self.pilot in PLUGGED and not self._tx_had_cable:
            self._cable_arrived()
        if (self.transaction is not None and self.tx_authorized and self.pilot in PLUGGED
                and not self.hw.lock.locked and "lock-failure" not in self.faults):
            await self.outputs.lock_cable()  # replugged, plugged after the start, or authorized after the start
        if self.transaction is None and self._start_due():
            await self._start_transaction()
        await self._apply_outputs()
        self._report(self._target_status())

    async def _apply_outputs(self) -> None:
        """Offer current and close the contactor only while an authorized transaction wants energy
        and the cable is held (``EvseOutputs.apply`` checks the cable again and keeps the order)."""
        energy = self._target_status() is ConnectorStatus.CHARGING  # never while the cable is not held
        self._tx_had_energy = self._tx_had_energy or energy
        authorized = self.transaction is not None and self.tx_authorized
        offered = self.limit_A if (authorized and not self.suspended_by_csms) else 0.0
        await self.outputs.apply(offered_A=offered, energy=energy)

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

    # ------------------------------------------------------------ the input table

    # Every input type and its handler; ``submit`` refuses types missing here.
    _HANDLERS: dict[type, Callable[[EvseMachine, EvseInput], Awaitable[object]]] = {
        Evaluate: _on_evaluate,
        Timer: _on_timer,
        Pilot: _on_pilot,
        Authorize: _on_authorize,
        Stop: _on_stop,
        Deauthorize: _on_deauthorize,
        SuspendInvalid: _on_suspend_invalid,
        Reserve: _on_reserve,
        Unreserve: _on_unreserve,
        Availability: _on_availability,
        Limit: _on_limit,
        Fault: _on_fault,
        Unlock: _on_unlock,
        EndForReset: _on_end_for_reset,
        Reset: _on_reset,
    }
