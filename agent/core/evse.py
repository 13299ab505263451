"""One EVSE's state machine: the only code that switches its contactor, lock and offered current.

Inputs arrive as commands on the EVSE's queue and are handled one at a time, so
hardware actions never interleave. After each input the machine works out where
it should be (``_evaluate``) and performs the entry actions of the new state.
The safety order is fixed here and in the HAL: current to 0 A, contactor open,
then the lock may release.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from agent.core.model import ConnectorStatus, IdTokenInfo, StopReason
from agent.core.transactions import Transaction, TransactionJournal
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
    token_type: str = "ISO14443"  # how the token was presented (2.0.1 IdTokenEnumType)
    reservation_id: int | None = None  # a station-wide reservation this authorization uses


@dataclass
class Command:
    """One input to the machine; ``done`` carries the answer back to a waiting caller."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    done: asyncio.Future | None = None


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
        self.reservation = None  # agent.core.reservations.Reservation holding this EVSE
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

    def _timeout(self) -> float:
        """Seconds until the connection timeout of a waiting authorization (or a liveness tick)."""
        from agent.liveness import TICK_S

        if self.authorization is None or self.transaction is not None:
            return TICK_S
        timeout = self.settings["connection_timeout_s"]
        if timeout <= 0:
            return TICK_S
        left = self.authorization.granted_at + timeout - asyncio.get_running_loop().time()
        return max(0.0, min(left, TICK_S))

    async def _handle(self, command: Command):
        handler = getattr(self, f"_on_{command.kind}")
        result = await handler(**command.args)
        await self._evaluate()
        return result

    # ------------------------------------------------------------ inputs

    async def _on_evaluate(self):
        return None

    async def _on_timer(self):
        if self.authorization is not None and self.transaction is None and self._timeout() <= 0:
            log.info("EVSE %d: no cable within ConnectionTimeOut; authorization of %s dropped",
                     self.evse_id, self.authorization.id_token)
            self.authorization = None

    async def _on_pilot(self, state: PilotState):
        previous, self.pilot = self.pilot, state
        if state is PilotState.A and previous in PLUGGED:
            self._finishing = False
            if self.transaction is None:
                return
            if self.settings["stop_transaction_on_ev_side_disconnect"]:
                await self._stop_transaction(StopReason.EV_DISCONNECTED)
            elif self.settings["unlock_connector_on_ev_side_disconnect"]:
                # The transaction goes on (suspended) but the cable may be taken: energy off first.
                await self._make_safe(unlock=True)

    async def _on_authorize(self, id_token: str, info: IdTokenInfo, remote_start_id: int | None = None,
                            token_type: str = "ISO14443", reservation_id: int | None = None):
        """A token was accepted for this EVSE (tap or remote start). True if it will be used."""
        if self.transaction is not None or not self.operative or self._stops_charging():
            return False
        if self.reservation is not None and not self.reservation.allows(id_token, info.group_id):
            return False  # held for someone else
        self.authorization = Authorization(id_token, info, asyncio.get_running_loop().time(), remote_start_id,
                                           token_type, reservation_id)
        self._finishing = False
        return True

    async def _on_stop(self, reason: StopReason, id_token: str | None = None):
        """End the running transaction; True if there was one."""
        if self.transaction is None:
            if self.authorization is not None and reason in (StopReason.LOCAL, StopReason.REMOTE):
                self.authorization = None  # a second tap before plugging in cancels
                return True
            return False
        await self._stop_transaction(reason, id_token)
        return True

    async def _on_deauthorize(self, ref: str):
        """The CSMS refused the token of a started transaction (StartTransaction.conf not Accepted)."""
        if self.transaction is None or self.transaction.ref != ref:
            return
        if self.settings["stop_transaction_on_invalid_id"]:
            await self._stop_transaction(StopReason.DEAUTHORIZED)
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
        self.limit_A = max(0.0, min(float(amps), self.max_current_A))

    async def _on_fault(self, code: str, active: bool):
        (self.faults.add if active else self.faults.discard)(code)
        if active and fault_spec(code).stops_charging and self.transaction is not None:
            await self._stop_transaction(StopReason.OTHER)

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

    # ------------------------------------------------------------ decisions

    def _stops_charging(self) -> bool:
        return any(fault_spec(code).stops_charging for code in self.faults)

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
        if self.suspended_by_csms or self.limit_A <= 0:
            return ConnectorStatus.SUSPENDED_EVSE
        if self.pilot in REQUESTING:
            return ConnectorStatus.CHARGING
        return ConnectorStatus.SUSPENDED_EV

    async def _evaluate(self) -> None:
        if (self.transaction is not None and self.pilot in PLUGGED and not self.hw.lock.locked
                and "lock-failure" not in self.faults):
            await self.hw.lock.lock()  # replugged during a transaction that went on
        if (self.transaction is None and self.authorization is not None and self.pilot in PLUGGED
                and self.operative and not self._stops_charging()):
            await self._start_transaction()
        await self._apply_outputs()
        self._report(self._target_status())

    async def _apply_outputs(self) -> None:
        """Offer current and close the contactor only while a transaction wants energy."""
        energy = self._target_status() is ConnectorStatus.CHARGING
        offered = self.limit_A if (self.transaction is not None and not self.suspended_by_csms) else 0.0
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
            self.journal.add_status(self.transaction.ref, status.value, timestamp=self.clock.time())
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

    async def _start_transaction(self) -> None:
        auth = self.authorization
        energy = await self._read_energy_Wh()
        if energy is None:
            log.error("EVSE %d: cannot start without a meter reading", self.evse_id)
            return
        begin = await self._sample("stop_txn_sampled_data", "Transaction.Begin")
        reservation_id = self.reservation.reservation_id if self.reservation else auth.reservation_id
        self.transaction = self.journal.begin(
            evse_id=self.evse_id, id_token=auth.id_token, group_id=auth.info.group_id, reservation_id=reservation_id,
            meter_start_Wh=energy, started_at=self.clock.time(), remote_start_id=auth.remote_start_id,
            begin_sample=begin, token_type=auth.token_type,
            trigger="RemoteStart" if auth.remote_start_id is not None else "Authorized")
        self.authorization = None
        self.suspended_by_csms = False
        if reservation_id is not None:
            self.reservation = None
            self.on_reservation_used(reservation_id)  # the reservation is fulfilled
        log.info("EVSE %d: transaction %s started for %s at %.1f Wh", self.evse_id, self.transaction.ref,
                 auth.id_token, energy)
        self._on_transaction(self.evse_id, self.transaction)
        if not await self.hw.lock.lock():
            log.error("EVSE %d: the cable did not lock", self.evse_id)

    async def _stop_transaction(self, reason: StopReason, id_token: str | None = None) -> None:
        tx = self.transaction
        await self._make_safe(unlock=False)
        energy = await self._read_energy_Wh()
        fresh = self.journal.get(tx.ref)
        end = await self._sample("stop_txn_sampled_data", "Transaction.End")
        self.journal.end(tx.ref, meter_stop_Wh=energy if energy is not None else fresh.last_meter_Wh,
                         stopped_at=self.clock.time(), reason=reason, stop_id_token=id_token, end_sample=end)
        log.info("EVSE %d: transaction %s ended (%s)", self.evse_id, tx.ref, reason.value)
        self.transaction = None
        self.suspended_by_csms = False
        self._finishing = self.pilot in PLUGGED
        self._on_transaction(self.evse_id, None)
        try:
            await self.hw.lock.unlock()
        except LockRefused as exc:
            log.error("EVSE %d: cable stays locked: %s", self.evse_id, exc)

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
