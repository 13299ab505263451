"""The transaction half of the EVSE state machine: starting, authorizing, deauthorizing and ending.

Each step writes its record to the transaction journal (what the CSMS will
hear), updates the machine's transaction state, and tells the station
(``on_transaction``). ``EvseMachine`` (agent.core.charging.evse) decides
*when* a step happens, from its inputs and the TxStartPoint/TxStopPoint
settings; the steps here carry it out. Energy is switched off through the
machine's ``outputs`` before a transaction ends, in the safe order that module
documents.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from agent.core.charging.evse_inputs import PLUGGED, Pilot
from agent.core.charging.model import ConnectorStatus, IdTokenInfo, MeterSample, StopReason
from hal.errors import HalError, MeterReadError

log = logging.getLogger("agent.evse")


@dataclass
class Authorization:
    """An idToken allowed to start on this EVSE, waiting for the cable (or already used)."""

    id_token: str
    info: IdTokenInfo
    granted_at: float  # loop time
    remote_start_id: int | None = None
    token_type: str | None = "ISO14443"  # how the token was presented (2.0.1 IdTokenEnumType; None: 1.6 idTag)
    reservation_id: int | None = None  # a station-wide reservation this authorization uses


class TransactionSteps:
    """The transaction steps of ``EvseMachine``, which inherits them; never used alone.

    They work on the machine's state: ``hw``, ``outputs``, ``journal``,
    ``clock``, ``settings``, ``pilot``, ``authorization``, ``reservation``,
    ``transaction`` and its flags (``tx_authorized``, ``suspended_by_csms``,
    ``_auth_ended``, ``_tx_had_cable``, ``_tx_had_energy``, ``_cable_wait_from``,
    ``_finishing``, ``_reset_pending``), and ask it for ``_target_status()``,
    ``_stop_points()`` and ``_reinitialise()``.
    """

    async def _read_energy_Wh(self) -> float | None:
        """The meter's energy register now; on a failed read the last reading, or None if there is none."""
        try:
            return (await self.hw.meter.read()).energy_import_Wh
        except (MeterReadError, HalError) as exc:
            last = self.hw.meter.last_reading
            log.warning("EVSE %d: meter read failed (%s); using %s", self.evse_id, exc,
                        "the last reading" if last else "nothing")
            return last.energy_import_Wh if last else None

    def _start_trigger(self, auth: Authorization | None) -> str:
        """What made the transaction start (2.0.1 triggerReason): the cable, or the authorization."""
        if auth is None or isinstance(self._input, Pilot):
            return "CablePluggedIn"
        return "RemoteStart" if auth.remote_start_id is not None else "Authorized"

    async def _start_transaction(self) -> None:
        """Begin a transaction for the waiting authorization (None: started at plug-in, TxStartPoint EVConnected)."""
        auth = self.authorization
        if not self.journal.can_begin():  # storage fault: it could not be recorded, so it does not start
            log.error("EVSE %d: no transaction starts while the state store cannot be written", self.evse_id)
            self.authorization = None
            return
        energy = await self._read_energy_Wh()
        if energy is None:
            log.error("EVSE %d: cannot start without a meter reading", self.evse_id)
            return
        started_sample, kept_sample = await self._begin_samples()
        plugged = self.pilot in PLUGGED
        reservation_id = None
        if auth is not None:  # a reservation is used by its holder's token, not by a cable
            reservation_id = self.reservation.reservation_id if self.reservation else auth.reservation_id
        self.transaction = self.journal.begin(
            evse_id=self.evse_id, id_token=auth.id_token if auth else None,
            group_id=auth.info.group_id if auth else None, reservation_id=reservation_id,
            meter_start_Wh=energy, started_at=self.clock.time(), remote_start_id=auth.remote_start_id if auth else None,
            begin_sample=started_sample, kept_sample=kept_sample, token_type=auth.token_type if auth else None,
            trigger=self._start_trigger(auth), ev_connected=plugged)
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
        if self.tx_authorized and plugged and not await self.outputs.lock_cable():
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
        await self.outputs.make_safe(unlock=True)  # the driver may now take the cable, which ends the transaction
        self.journal.add_status(self.transaction.ref, ConnectorStatus.FINISHING.value, timestamp=self.clock.time(),
                                ev_connected=True, deauthorized=reason)
        self.status = ConnectorStatus.FINISHING
        log.info("EVSE %d: transaction %s deauthorized (%s); it ends when the cable is unplugged",
                 self.evse_id, self.transaction.ref, reason.value)
        self._on_transaction(self.evse_id, self.transaction)

    async def _stop_transaction(self, reason: StopReason, id_token: str | None = None,
                                token_type: str | None = None, *, ended_by: StopReason | None = None) -> None:
        """End the running transaction: energy off first, the closing meter value, then the cable is released."""
        tx = self.transaction
        await self.outputs.make_safe(unlock=False)
        energy = await self._read_energy_Wh()
        fresh = self.journal.get(tx.ref)
        end = await self._sample("stop_txn_sampled_data", "Transaction.End")
        self.journal.end(tx.ref, meter_stop_Wh=energy if energy is not None else fresh.last_meter_Wh,
                         stopped_at=self.clock.time(), reason=reason, stop_id_token=id_token, end_sample=end,
                         stop_token_type=token_type, ended_by=ended_by, ev_connected=self.pilot in PLUGGED)
        log.info("EVSE %d: transaction %s ended (%s)", self.evse_id, tx.ref, reason.value)
        self.transaction = None
        self.suspended_by_csms = self.tx_authorized = False
        self._auth_ended = self._cable_wait_from = None
        self._finishing = self.pilot in PLUGGED
        self._on_transaction(self.evse_id, None)
        await self.outputs.release_cable()
        if self._reset_pending:
            await self._reinitialise()  # a reset of this EVSE waited for the transaction to end

    async def _sample(self, setting: str, context: str):
        """The meter sample a setting asks for at a transaction's begin or end (None if it asks for none)."""
        if self._sample_now is None or not self.settings[setting]:
            return None
        return await self._sample_now(self.evse_id, self.settings[setting], context=context)

    async def _begin_samples(self) -> tuple[MeterSample | None, MeterSample | None]:
        """The Transaction.Begin samples, from one reading: the start record's (2.0.1 TxStartedMeasurands)
        and the one kept for the stop record (StopTxnSampledData / TxEndedMeasurands)."""
        started, kept = self.settings["tx_started_measurands"], self.settings["stop_txn_sampled_data"]
        wanted = tuple(started) + tuple(m for m in kept if m not in started)
        if self._sample_now is None or not wanted:
            return None, None
        sample = await self._sample_now(self.evse_id, wanted, context="Transaction.Begin")
        return _select(sample, started), _select(sample, kept)


def _select(sample: MeterSample | None, measurands) -> MeterSample | None:
    """The values of ``sample`` with one of ``measurands`` (None when there are none)."""
    wanted = set(measurands)
    values = tuple(v for v in sample.values if v.measurand in wanted) if sample is not None else ()
    return MeterSample(sample.timestamp, values) if values else None
