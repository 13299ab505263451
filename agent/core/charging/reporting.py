"""What the charging station tells others, and the read-only half of its declared API.

A mixin of :class:`agent.core.charging.station.ChargingStation`, kept apart so that station.py holds
the decisions (which EVSE a card is for, what a CSMS command does) and this module the reporting:

- statuses: recorded at once, reported to the CSMS port after MinimumStatusDuration (a fault at once);
- transactions starting, changing and ending: outbox wake-ups, meter sampling switched on and off,
  limits re-applied, and whoever waits for the station to be idle woken (no polling);
- the meter sampler's sink: transaction samples are journaled (durable), others sent as they are;
- listeners (display, monitoring), called after every status or transaction change;
- what the driver is told when a new session is refused because its EVSE's meter is down;
- the queries of :class:`agent.core.charging.api.StationApi`: EVSE snapshots, statuses, faults,
  busy, queued transaction messages, and attaching the CSMS port.

It uses the station's ``evses``, ``statuses``, ``station_faults``, ``port``, ``settings``, ``journal``,
``store``, ``sampler``, ``profiles``, ``apply_limits``, ``show_text``, ``_candidates`` and
``_install_pending_tx_profile``, and keeps its own state in ``_status_timers``, ``_sampling``,
``_tx_running``, ``_listeners`` and ``_idle``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Iterable

from agent.core.charging.api import CsmsPort, EvseView
from agent.core.charging.metering import FOR_END, FOR_UPDATES
from agent.core.charging.model import ConnectorStatus, MeterSample
from agent.core.charging.transactions import Transaction

log = logging.getLogger("agent.station")

METER_REFUSED_TEXT = "Meter fault: cannot start"  # shown when a tap or remote start is refused for a dead meter


class StationReporting:
    """Statuses, transactions and samples -> the CSMS port, the outbox, the sampler and listeners."""

    # ------------------------------------------------------------ the connection

    def attach_port(self, port: CsmsPort) -> None:
        """Report to ``port`` from now on (the registration was accepted)."""
        self.port = port

    def detach_port(self, port: CsmsPort) -> bool:
        """Stop reporting to ``port``; False if another port (or none) was attached."""
        if self.port is not port:
            return False
        self.port = None
        return True

    # ------------------------------------------------------------ queries (StationApi)

    def evse_ids(self) -> list[int]:
        """The EVSE ids, in ascending order."""
        return sorted(self.evses)

    def has_evse(self, evse_id: int) -> bool:
        """Whether the station has this EVSE (0 is the station, not an EVSE)."""
        return evse_id in self.evses

    def evse(self, evse_id: int) -> EvseView:
        """A snapshot of one EVSE; KeyError for an unknown id."""
        machine = self.evses[evse_id]
        status, error = self.statuses[evse_id]
        tx = machine.transaction
        return EvseView(evse_id, status, error, transaction_ref=tx.ref if tx else None,
                        remote_id=self.remote_id(tx.ref) if tx else None, faults=frozenset(machine.faults))

    def current_statuses(self) -> dict[int, tuple[ConnectorStatus, str | None]]:
        """Every EVSE's status and error code, 0 the station's own: a copy."""
        return dict(self.statuses)

    def station_fault_codes(self) -> frozenset[str]:
        """The hardware faults raised on the station itself (not on one EVSE)."""
        return frozenset(self.station_faults)

    def active_faults(self) -> list[tuple[int | None, str]]:
        """Every fault raised now, as (EVSE id or None for the station's own, code), in a stable order."""
        faults: list[tuple[int | None, str]] = [(None, code) for code in sorted(self.station_faults)]
        for evse_id, machine in sorted(self.evses.items()):
            faults.extend((evse_id, code) for code in sorted(machine.faults))
        return faults

    def busy(self, evse_id: int | None = None) -> bool:
        """Whether a transaction runs on the EVSE, or (None) on any EVSE."""
        return any(machine.transaction is not None for i, machine in self.evses.items() if evse_id in (None, i))

    async def wait_until_idle(self) -> None:
        """Return once no transaction runs on any EVSE (at once if none does).

        Woken by the transaction-changed path when the last transaction ends, so
        it costs nothing while it waits; a transaction that starts between that
        wake-up and this check makes it wait again.
        """
        while self.busy():
            self._idle.clear()
            await self._idle.wait()

    def remote_id(self, transaction_ref: str) -> str | None:
        """The CSMS's id of a transaction (1.6 transactionId), or None before it gave one."""
        tx = self.journal.get(transaction_ref)
        return tx.remote_id if tx else None

    def transaction_messages_queued(self, transaction_ref: str | None = None) -> bool:
        """Whether messages wait in the durable outbox: about that transaction, or (None) at all."""
        return bool(self.store.outbox.pending(group=transaction_ref))

    def charging_profiles(self) -> list:
        """The charging profiles installed now (``ChargingProfile``)."""
        return list(self.profiles)

    def transaction_ref(self, evse_id: int) -> str | None:
        """The running transaction of an EVSE (for the sampler)."""
        tx = self.evses[evse_id].transaction
        return tx.ref if tx else None

    # ------------------------------------------------------------ refusals

    def _meter_refuses(self, what: str, evse_id: int | None) -> bool:
        """True (said in the log and on the display) when every EVSE a new session could use has its meter
        down: it could not be metered. A running transaction is not affected (``EvseMachine.sessions_blocked``)."""
        usable = [m for m in self._candidates(evse_id) if m.operative and (m.transaction is None or m.awaiting_token)]
        if not usable or not all(m.sessions_blocked for m in usable):
            return False
        log.warning("%s refused: the meter of EVSE %s is down, a session could not be metered",
                    what, ", ".join(str(m.evse_id) for m in usable))
        self.show_text(METER_REFUSED_TEXT)
        return True

    # ------------------------------------------------------------ listeners and statuses

    def add_listener(self, changed: Callable[[], None]) -> None:
        """Call ``changed()`` after every status or transaction change (display, monitoring)."""
        self._listeners.append(changed)

    def _notify_listeners(self) -> None:
        for changed in list(self._listeners):
            try:
                changed()
            except Exception:  # a display or monitor bug must never disturb charging
                log.exception("station listener %r failed", changed)

    def _status_changed(self, evse_id: int, status: ConnectorStatus, error: str | None) -> None:
        self._record_status(evse_id, status, error)
        self._notify_listeners()

    def _record_status(self, evse_id: int, status: ConnectorStatus, error: str | None) -> None:
        self.statuses[evse_id] = (status, error)
        pending = self._status_timers.pop(evse_id, None)
        if pending is not None:
            pending.cancel()
        hold = self.settings["minimum_status_duration_s"]
        if hold > 0 and status is not ConnectorStatus.FAULTED:
            # MinimumStatusDuration: report only a status that lasted; a fault is reported at once.
            loop = asyncio.get_running_loop()
            self._status_timers[evse_id] = loop.call_later(hold, self._report_status, evse_id, (status, error))
            return
        self._report_status(evse_id, (status, error))

    def _report_status(self, evse_id: int, state: tuple[ConnectorStatus, str | None]) -> None:
        self._status_timers.pop(evse_id, None)
        if self.port is not None and self.statuses.get(evse_id) == state:
            self.port.status_changed(evse_id, *state)

    # ------------------------------------------------------------ transactions

    def _transaction_changed(self, evse_id: int, tx: Transaction | None) -> None:
        """A transaction started, changed state or ended: wake the outbox, (re)arm sampling and limits."""
        try:
            self._follow_transaction(evse_id, tx)
        finally:
            if not self.busy():
                self._idle.set()  # wait_until_idle() callers go on
            self._notify_listeners()

    def _follow_transaction(self, evse_id: int, tx: Transaction | None) -> None:
        self._outbox_changed()
        started_or_ended = bool(tx) != (evse_id in self._tx_running)
        if started_or_ended:
            if tx:
                self._tx_running[evse_id] = tx.ref
                self._install_pending_tx_profile(evse_id, tx)
            else:
                self.profiles.end_transaction(self._tx_running.pop(evse_id))  # TxProfiles end with it
            self.apply_limits()
        running = self.sampler is not None and evse_id in self._sampling
        if self.sampler is None or bool(tx) == running:
            return
        if tx:
            self._sampling.add(evse_id)
            self.sampler.transaction_started(evse_id)
        else:
            self._sampling.discard(evse_id)
            self.sampler.transaction_ended(evse_id)

    def outbox_changed(self) -> None:
        """Records were queued outside the station (security events): send them when possible."""
        self._outbox_changed()

    def _outbox_changed(self) -> None:
        if self.port is not None:
            self.port.outbox_changed()

    # ------------------------------------------------------------ meter samples

    async def sample_now(self, evse_id: int, measurands: Iterable[str], *, context: str) -> MeterSample | None:
        """A fresh meter sample of the EVSE with those measurands; None without a sampler or a reading."""
        if self.sampler is None:
            return None
        return await self.sampler.sample_now(evse_id, measurands, context=context)

    def meter_sample(self, evse_id: int, sample: MeterSample, ref: str | None, *, only: str | None = None) -> None:
        """The sampler's sink: transaction samples are journaled (durable), others sent as they are.

        One reading serves both MeterValues (MeterValues*Data) and the stop's
        transactionData (StopTxn*Data); each gets the measurands it asked for.
        ``only`` (metering.FOR_UPDATES / FOR_END): the sample serves that one.
        """
        periodic = bool(sample.values) and sample.values[0].context == "Sample.Periodic"
        for_csms = _only(sample, () if only == FOR_END else
                         self.settings["meter_values_sampled_data" if periodic else "meter_values_aligned_data"])
        if ref is None:
            if self.port is not None and for_csms.values:
                self.port.meter_values(evse_id, for_csms)
            return
        energy = next((v.value for v in sample.values if v.measurand == "Energy.Active.Import.Register"), None)
        if for_csms.values:
            self.journal.add_meter_values(ref, for_csms, energy_Wh=energy)
            self._outbox_changed()
        for_stop = _only(sample, () if only == FOR_UPDATES else
                         self.settings["stop_txn_sampled_data" if periodic else "stop_txn_aligned_data"])
        if for_stop.values:
            self.journal.add_transaction_data(ref, for_stop)


def _only(sample: MeterSample, measurands) -> MeterSample:
    """The values of ``sample`` whose measurand is listed (a "Measurand.Phase" entry selects one phase)."""
    wanted = set(measurands)
    values = tuple(v for v in sample.values if v.measurand in wanted or f"{v.measurand}.{v.phase}" in wanted)
    return MeterSample(sample.timestamp, values)
