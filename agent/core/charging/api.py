"""The declared interface between the charging core and the protocol adapters.

Two directions, both in the core's version-neutral words (``ConnectorStatus``, ``StopReason``,
``Reservation``), which each adapter translates to its OCPP version:

- :class:`CsmsPort` is what the station asks of the adapter that is connected;
- :class:`StationApi` is everything an adapter may ask of the station. Adapters use nothing else of
  it: no EVSE machine, no journal row, no outbox table, so the charging logic can change behind this
  interface without a protocol module noticing (and a 2.1 adapter reads here what it may use).

:class:`agent.core.charging.station.ChargingStation` implements ``StationApi``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Protocol, runtime_checkable

from agent.core.charging.model import ConnectorStatus, MeterSample, StopReason

if TYPE_CHECKING:
    from agent.core.charging.reservations import Reservation, ReserveResult
    from agent.core.charging.smart_charging import ChargingProfile, CompositeSchedule
    from agent.core.charging.transaction_limits import TransactionLimit


class CsmsPort(Protocol):
    """What the core needs from the protocol adapter that is connected (or None while offline)."""

    def status_changed(self, evse_id: int, status: ConnectorStatus, error: str | None) -> None:
        """An EVSE's status changed (evse 0: the station)."""

    def outbox_changed(self) -> None:
        """Transaction records were queued: send them when possible."""

    def meter_values(self, evse_id: int, sample: MeterSample) -> None:
        """Meter values outside a transaction (not durable)."""

    def reservation_ended(self, reservation_id: int, status: str) -> None:
        """A reservation expired ("Expired") or was dropped by the station ("Removed")."""

    def fault_changed(self, evse_id: int | None, code: str, active: bool, *, timestamp: float,
                      info: str = "") -> None:
        """A hardware fault was raised or cleared (evse None: the station's own).

        Optional: the station looks it up with getattr, so an adapter without it
        reports faults through status_changed only (1.6 has no other message).
        """

    def charging_limit_changed(self, limit, active: bool) -> None:
        """An external limit (``hal.roles.ExternalLimit``) became active or was lifted.

        Optional, looked up like ``fault_changed``: only 2.0.1 has a message for it.
        """

    def priority_charging_changed(self, transaction_ref: str, active: bool) -> None:
        """The station switched priority charging of a transaction by itself (2.1 NotifyPriorityCharging).

        Optional, looked up like ``fault_changed``: only 2.1 has a message for it.
        """


@dataclass(frozen=True)
class EvseView:
    """One EVSE as an adapter sees it at one instant: a copy, so keeping it changes nothing."""

    evse_id: int
    status: ConnectorStatus  # the status last recorded (what is reported, MinimumStatusDuration aside)
    error: str | None  # the error code that goes with a Faulted status
    transaction_ref: str | None  # our reference of the running transaction (the 2.0.1 transactionId)
    remote_id: str | None  # the CSMS's id of that transaction (the 1.6 transactionId), once it gave one
    faults: frozenset[str]  # hardware fault codes raised on this EVSE now


@runtime_checkable
class StationApi(Protocol):
    """What a protocol adapter may ask the charging station (evse 0 means the whole station where noted)."""

    # ------------------------------------------------------------ the connection

    def attach_port(self, port: CsmsPort) -> None:
        """Report to ``port`` from now on (the registration was accepted)."""

    def detach_port(self, port: CsmsPort) -> bool:
        """Stop reporting to ``port``; False if another port (or none) was attached."""

    # ------------------------------------------------------------ what is there, what runs

    def evse_ids(self) -> list[int]:
        """The EVSE ids, in ascending order."""

    def has_evse(self, evse_id: int) -> bool:
        """Whether the station has this EVSE (0 is the station, not an EVSE)."""

    def evse(self, evse_id: int) -> EvseView:
        """A snapshot of one EVSE; KeyError for an unknown id."""

    def current_statuses(self) -> dict[int, tuple[ConnectorStatus, str | None]]:
        """Every EVSE's status and error code, 0 the station's own: a copy."""

    def station_fault_codes(self) -> frozenset[str]:
        """The hardware faults raised on the station itself (not on one EVSE)."""

    def active_faults(self) -> list[tuple[int | None, str]]:
        """Every fault raised now, as (EVSE id or None for the station's own, code), in a stable order."""

    def busy(self, evse_id: int | None = None) -> bool:
        """Whether a transaction runs on the EVSE, or (None) on any EVSE."""

    async def wait_until_idle(self) -> None:
        """Return once no transaction runs on any EVSE (at once if none does); woken, never polling."""

    def awaiting_transaction(self, evse_id: int | None) -> str | None:
        """The transaction a remote start for ``evse_id`` would complete (started at plug-in), or None."""

    def remote_id(self, transaction_ref: str) -> str | None:
        """The CSMS's id of a transaction (1.6 transactionId), or None before it gave one."""

    def transaction_messages_queued(self, transaction_ref: str | None = None) -> bool:
        """Whether messages wait in the durable outbox: about that transaction, or (None) at all."""

    async def sample_now(self, evse_id: int, measurands: Iterable[str], *, context: str) -> MeterSample | None:
        """A fresh meter sample of the EVSE with those measurands; None without a sampler or a reading."""

    # ------------------------------------------------------------ commands from the CSMS

    def remote_start(self, id_token: str, *, evse_id: int | None, remote_start_id: int | None = None,
                     token_type: str | None = None, charging_profile: ChargingProfile | None = None) -> bool:
        """RemoteStartTransaction / RequestStartTransaction: True if an EVSE can take it."""

    async def remote_stop(self, *, remote_id: str | None = None, ref: str | None = None) -> bool:
        """RemoteStopTransaction / RequestStopTransaction: True if the transaction runs here."""

    def deauthorize(self, ref: str) -> None:
        """The CSMS refused the token of a transaction after it started."""

    async def unlock(self, evse_id: int) -> str:
        """UnlockConnector: Unlocked, UnlockFailed or NotSupported."""

    async def reserve(self, reservation: Reservation, *, zero_supported: bool = True) -> ReserveResult:
        """ReserveNow for one EVSE or (evse 0) any."""

    async def cancel_reservation(self, reservation_id: int) -> bool:
        """CancelReservation: True if it existed."""

    async def change_availability(self, evse_id: int, operative: bool) -> str:
        """ChangeAvailability of one EVSE or (0) the station: Accepted, Scheduled or Rejected."""

    def evse_reset_answer(self, evse_id: int, *, immediate: bool) -> str:
        """The answer to a reset of one EVSE: Rejected (unknown), Scheduled (after its transaction), Accepted."""

    async def reset_evse(self, evse_id: int, *, immediate: bool) -> None:
        """Reset one EVSE (after its transaction unless immediate); return once it is re-initialised."""

    async def prepare_reset(self, reason: StopReason) -> None:
        """End every transaction with ``reason`` before the agent restarts or the board reboots."""

    async def prepare_resume_reset(self) -> None:
        """Keep every transaction open across the coming restart, to resume it after (a cable still in);
        StoreError if that cannot be recorded."""

    async def report_transaction(self, evse_id: int) -> bool:
        """Report the EVSE's ongoing transaction now (a triggered update); False when none runs."""

    # ------------------------------------------------------------ transaction limits

    def set_transaction_limit(self, ref: str, limit: TransactionLimit) -> bool:
        """Enforce a limit (energy, time, cost; SoC kept, not enforced) on running transaction ``ref``,
        replacing an earlier one: it ends by itself when reached. False if it does not run here."""

    def transaction_limit(self, ref: str) -> TransactionLimit | None:
        """The limit set on transaction ``ref`` (running or recently ended), to report it; or None."""

    # ------------------------------------------------------------ tariffs of running transactions

    def change_transaction_tariff(self, ref: str, tariff: dict) -> str:
        """Price running transaction ``ref`` with ``tariff`` (snake_case TariffType) from now on: "Accepted", or
        ``TariffRefused`` (TxNotFound, NoCurrencyChange, or a refusal of the tariff itself)."""

    def offer_driver_tariff(self, id_token: str, tariff: dict) -> None:
        """A tariff given with ``id_token``'s authorization prices its next transaction; ``TariffRefused`` if the
        station cannot price it (the default tariff then applies)."""

    # ------------------------------------------------------------ charging limits

    def external_limit(self):
        """The external limit imposed now (a ``hal.roles.ExternalLimit``), or None."""

    def charging_profiles(self) -> list[ChargingProfile]:
        """The charging profiles installed now."""

    def profile_problems(self, profile: ChargingProfile) -> list[str]:
        """Why a profile cannot be installed (empty: it can)."""

    def transaction_for_profile(self, evse_id: int, *, remote_id: str | None = None,
                                ref: str | None = None) -> str | None:
        """The running transaction a TxProfile is for (the one named, if named), or None."""

    def install_profile(self, profile: ChargingProfile) -> None:
        """SetChargingProfile (validated with ``profile_problems``): store it and apply it at once."""

    def update_dynamic_profile(self, profile_id: int, *, limit: float | None) -> str | None:
        """A Dynamic profile's new limit (its rate unit), stored and applied at once: None, else why not."""

    def clear_profiles(self, **filters) -> bool:
        """ClearChargingProfile by id or filter: True if anything was cleared."""

    def composite(self, evse_id: int, *, duration_s: int, rate_unit: str) -> CompositeSchedule | None:
        """GetCompositeSchedule from now (evse 0: the station); None when it cannot be answered."""

    def set_priority_charging(self, ref: str, active: bool) -> str:
        """UsePriorityCharging for running transaction ``ref``: "Accepted" (its PriorityCharging profile replaces
        its Tx profiles, or no longer does), "Rejected" (not running here) or "NoProfile"."""

    def priority_charging(self, ref: str) -> bool:
        """Whether priority charging is active for transaction ``ref``."""
