"""The EVSE state machine on its own, on the mock HAL: every state, every input, and the safety rules.

Each test drives one ``EvseMachine`` input by input (the ``evse_rig`` fixture of
conftest.py) and checks what the mock hardware was told to do, in order: the
mock records every change of the contactor, the lock and the offered current.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from agent.core.charging.evse import EvseMachine
from agent.core.charging.evse_inputs import (
    EVSE_INPUTS, Authorize, Availability, Deauthorize, EndForReset, Evaluate, Fault, Limit, Pilot, Reserve, Reset,
    Stop, SuspendInvalid, Timer, Unlock, Unreserve,
)
from agent.core.charging.model import AuthorizationStatus, ConnectorStatus, IdTokenInfo, StopReason
from agent.core.charging.reservations import Reservation
from agent.core.charging.transactions import ENDED, STARTED, STATUS
from hal.events import PilotState
from hal.faults import FAULTS

S = ConnectorStatus
STOPPING_FAULTS = sorted(code for code, spec in FAULTS.items() if spec.stops_charging)
WARNING_FAULTS = sorted(code for code, spec in FAULTS.items() if not spec.stops_charging)


def ended_reason(rig, ref: str) -> str:
    """Why transaction ``ref`` ended, as its TransactionEnded record says (the finer 2.0.1 reason if any)."""
    [record] = [item.payload for item in rig.store.outbox.pending(group=ref) if item.action == ENDED]
    return record.get("detail", record["reason"])


def started_record(rig) -> dict:
    """The TransactionStarted record of the running transaction."""
    [record] = [item.payload for item in rig.store.outbox.pending(group=rig.machine.transaction.ref)
                if item.action == STARTED]
    return record


def triggers(rig, ref: str) -> list[str]:
    """The triggers of the status records queued for transaction ``ref``, oldest first."""
    return [item.payload["trigger"] for item in rig.store.outbox.pending(group=ref) if item.action == STATUS]


def offered(rig) -> float:
    """The current the pilot offers the EV now."""
    return rig.hw.pilot.current_limit_A


def started_outputs(rig) -> list[tuple[str, object]]:
    """The output changes of a start, in the safe order: cable locked, then current offered, then power on."""
    return [("lock", True), ("current_limit_A", rig.max_current_A), ("contactor", True)]


def energised(rig) -> bool:
    """The contactor is commanded closed."""
    return rig.hw.contactor.closed


# ---------------------------------------------------------------- the declared inputs


def test_evse_every_declared_input_has_exactly_one_handler():
    assert len(EVSE_INPUTS) == 15
    assert set(EvseMachine._HANDLERS) == set(EVSE_INPUTS)


@dataclasses.dataclass(frozen=True)
class NotAnInput:
    """Looks like an input, is not one of them."""

    state: PilotState = PilotState.B


class PilotLookalike(Pilot):
    """A subclass is a different input type: the table names exact types."""


@pytest.mark.parametrize("item", ["pilot", {"kind": "pilot"}, NotAnInput(), PilotLookalike(state=PilotState.B), Pilot])
async def test_evse_submit_refuses_anything_but_a_declared_input(evse_rig, item):
    with pytest.raises(TypeError, match="not an EVSE input"):
        evse_rig.machine.submit(item)
    assert evse_rig.machine._queue.empty()  # refused before it was queued
    await evse_rig.plug()  # and the machine goes on as before
    assert evse_rig.status is S.PREPARING


def test_evse_inputs_are_frozen_and_keyword_only():
    with pytest.raises(TypeError):
        Pilot(PilotState.B)  # positional: the field name must be said
    item = Limit(amps=16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.amps = 32


# ---------------------------------------------------------------- every state


async def test_evse_starts_available_with_every_output_safe(evse_rig):
    assert evse_rig.statuses == [(S.AVAILABLE, None)]
    assert not energised(evse_rig) and not evse_rig.hw.lock.locked and offered(evse_rig) == 0
    assert await evse_rig.send(Evaluate()) is None
    assert evse_rig.statuses == [(S.AVAILABLE, None)]  # nothing changed, nothing reported again


@pytest.mark.parametrize("step", ["plug", "authorize"])
async def test_evse_preparing_on_a_cable_or_a_token_alone(evse_rig, step):
    await getattr(evse_rig, step)()
    assert evse_rig.status is S.PREPARING
    assert evse_rig.machine.transaction is None
    assert evse_rig.history() == []  # nothing is locked, offered or closed yet


async def test_evse_charging_locks_offers_then_closes(evse_rig):
    tx = await evse_rig.start_charging()
    assert tx.id_token == "CARD1" and tx.active
    assert evse_rig.hw.lock.locked and energised(evse_rig) and offered(evse_rig) == evse_rig.max_current_A
    # The safe order on the way in: the cable is locked before any current is offered or power flows.
    assert evse_rig.history() == started_outputs(evse_rig)


async def test_evse_suspended_ev_offers_current_with_the_contactor_open(evse_rig):
    await evse_rig.authorize()
    await evse_rig.plug()  # the EV does not ask for energy (pilot B)
    assert evse_rig.status is S.SUSPENDED_EV
    assert evse_rig.machine.transaction is not None
    assert evse_rig.hw.lock.locked and offered(evse_rig) == evse_rig.max_current_A and not energised(evse_rig)
    await evse_rig.ev_charge()
    await evse_rig.ev_charge(False)  # the EV pauses: the power path opens, the transaction goes on
    assert evse_rig.status is S.SUSPENDED_EV and not energised(evse_rig)
    assert evse_rig.machine.transaction is not None


async def test_evse_suspended_evse_at_zero_amps(evse_rig):
    await evse_rig.start_charging()
    await evse_rig.send(Limit(amps=0))
    assert evse_rig.status is S.SUSPENDED_EVSE
    assert not energised(evse_rig) and offered(evse_rig) == 0
    assert evse_rig.history("current_limit_A", "contactor")[-2:] == [("current_limit_A", 0.0), ("contactor", False)]


async def test_evse_finishing_after_a_stop_until_the_cable_goes(evse_rig):
    tx = await evse_rig.start_charging()
    assert await evse_rig.send(Stop(reason=StopReason.LOCAL, id_token="CARD1")) is True
    assert evse_rig.status is S.FINISHING
    assert not evse_rig.hw.lock.locked and not energised(evse_rig)
    assert ended_reason(evse_rig, tx.ref) == "Local"
    await evse_rig.ev_charge(False)
    assert evse_rig.status is S.FINISHING
    await evse_rig.unplug()
    assert evse_rig.status is S.AVAILABLE


async def test_evse_unavailable_while_inoperative(evse_rig):
    assert await evse_rig.send(Availability(operative=False)) == "Accepted"
    assert evse_rig.status is S.UNAVAILABLE
    assert await evse_rig.authorize() is False  # no session starts on an inoperative EVSE
    await evse_rig.plug()
    assert evse_rig.status is S.UNAVAILABLE and evse_rig.machine.transaction is None
    assert await evse_rig.send(Availability(operative=True)) == "Accepted"
    assert evse_rig.status is S.PREPARING


async def test_evse_faulted_while_a_stopping_fault_is_active(evse_rig):
    await evse_rig.send(Fault(code="rcd-trip", active=True))
    assert evse_rig.statuses[-1] == (S.FAULTED, "rcd-trip")
    assert await evse_rig.authorize() is False
    await evse_rig.send(Fault(code="rcd-trip", active=False))
    assert evse_rig.statuses[-1] == (S.AVAILABLE, None)


async def test_evse_reserved_for_its_holder_only(evse_rig):
    used = []
    evse_rig.machine.on_reservation_used = used.append
    await evse_rig.send(Reserve(reservation=Reservation(7, evse_rig.evse_id, "HOLDER", "GROUP", expiry=2e9)))
    assert evse_rig.status is S.RESERVED
    assert await evse_rig.authorize("STRANGER") is False
    assert evse_rig.status is S.RESERVED
    assert await evse_rig.authorize("FRIEND", info=IdTokenInfo(AuthorizationStatus.ACCEPTED, group_id="group"))
    assert evse_rig.status is S.PREPARING  # a card of the holder's group may use it
    await evse_rig.plug()
    assert used == [7] and evse_rig.machine.reservation is None
    assert started_record(evse_rig)["reservation_id"] == 7


async def test_evse_unreserve_releases_only_its_own_reservation(evse_rig):
    await evse_rig.send(Reserve(reservation=Reservation(7, evse_rig.evse_id, "HOLDER", None, expiry=2e9)))
    await evse_rig.send(Unreserve(reservation_id=8))
    assert evse_rig.status is S.RESERVED
    await evse_rig.send(Unreserve(reservation_id=7))
    assert evse_rig.status is S.AVAILABLE


# ---------------------------------------------------------------- the safety rules


async def test_evse_contactor_stays_open_without_an_authorization(evse_rig):
    await evse_rig.plug()
    await evse_rig.ev_charge()  # the EV asks, nobody authorized it
    assert evse_rig.status is S.PREPARING
    assert evse_rig.history() == []  # never locked, never offered, never closed


async def test_evse_contactor_stays_open_when_the_lock_does_not_engage(evse_rig):
    await evse_rig.inject_fault("lock-failure")  # the lock cannot move
    await evse_rig.authorize()
    await evse_rig.plug()
    await evse_rig.ev_charge()
    await evse_rig.settle()  # the lock-failure fault the HAL raised has been handled
    assert (S.FAULTED, "lock-failure") in evse_rig.statuses
    tx = evse_rig.transactions[0]
    assert evse_rig.machine.transaction is None and ended_reason(evse_rig, tx.ref) == "Other"
    assert not energised(evse_rig) and offered(evse_rig) == 0
    # No current was ever offered, and the contactor never closed, through a plug that was not held.
    assert evse_rig.history("current_limit_A", "contactor") == []


async def test_evse_started_at_plug_in_gets_energy_only_once_authorized(evse_rig):
    evse_rig.settings.set("tx_start_point", ("EVConnected",))
    await evse_rig.plug()
    await evse_rig.ev_charge()
    tx = evse_rig.machine.transaction
    assert tx is not None and evse_rig.machine.awaiting_token
    assert evse_rig.status is S.PREPARING and evse_rig.history() == []
    assert await evse_rig.authorize()
    assert evse_rig.status is S.CHARGING
    assert evse_rig.history() == started_outputs(evse_rig)
    assert evse_rig.journal.get(tx.ref).id_token == "CARD1"


async def test_evse_outputs_refuse_energy_through_a_cable_that_is_not_held(evse_rig):
    # Even asked directly, the output side offers nothing and keeps the contactor open.
    await evse_rig.machine.outputs.apply(offered_A=evse_rig.max_current_A, energy=True)
    assert not energised(evse_rig) and offered(evse_rig) == 0


ENDINGS = {
    "tap": (lambda rig: rig.send(Stop(reason=StopReason.LOCAL, id_token="CARD1")), "Local"),
    "remote": (lambda rig: rig.send(Stop(reason=StopReason.REMOTE)), "Remote"),
    "unplug": (lambda rig: rig.unplug(), "EVDisconnected"),
    "unlock": (lambda rig: rig.send(Unlock()), "UnlockCommand"),
    "rcd-trip": (lambda rig: rig.inject_fault("rcd-trip"), "GroundFault"),
    "end-for-reset": (lambda rig: rig.send(EndForReset(reason=StopReason.HARD_RESET)), "HardReset"),
    "reset": (lambda rig: rig.send(Reset(immediate=True)), "SoftReset"),
    "deauthorize": (lambda rig: rig.send(Deauthorize(ref=rig.machine.transaction.ref)), "DeAuthorized"),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
async def test_evse_every_ending_opens_the_contactor_before_the_lock_releases(evse_rig, ending):
    end, reason = ENDINGS[ending]
    tx = await evse_rig.start_charging()
    await end(evse_rig)
    assert evse_rig.machine.transaction is None
    assert ended_reason(evse_rig, tx.ref) == reason
    assert not energised(evse_rig) and offered(evse_rig) == 0 and not evse_rig.hw.lock.locked
    # Current withdrawn, then the power path opened, and only then the cable released.
    assert evse_rig.history() == [*started_outputs(evse_rig),
                                  ("current_limit_A", 0.0), ("contactor", False), ("lock", False)]


@pytest.mark.parametrize("code", STOPPING_FAULTS)
async def test_evse_a_fault_that_stops_charging_cuts_the_energy_and_ends_the_transaction(evse_rig, code):
    tx = await evse_rig.start_charging()
    await evse_rig.send(Fault(code=code, active=True))
    assert not energised(evse_rig) and offered(evse_rig) == 0
    assert evse_rig.statuses[-1] == (S.FAULTED, code)
    assert ended_reason(evse_rig, tx.ref) == ("GroundFault" if code == "rcd-trip" else "Other")
    await evse_rig.send(Fault(code=code, active=False))
    assert evse_rig.status is S.FINISHING  # the cable is still in; the fault is gone


@pytest.mark.parametrize("code", WARNING_FAULTS)
async def test_evse_a_warning_fault_lets_charging_go_on(evse_rig, code):
    await evse_rig.start_charging()
    await evse_rig.send(Fault(code=code, active=True))
    assert evse_rig.statuses[-1] == (S.CHARGING, code)
    assert energised(evse_rig) and evse_rig.machine.transaction is not None


async def test_evse_unlock_is_refused_while_a_welded_contactor_stays_closed(evse_rig):
    await evse_rig.start_charging()
    await evse_rig.inject_fault("contactor-welded")
    assert await evse_rig.send(Unlock()) is False
    assert evse_rig.hw.lock.locked  # the cable stays locked: the mirror contact still reads closed
    assert evse_rig.history("lock") == [("lock", True)]
    await evse_rig.settle()
    assert evse_rig.statuses[-1][1] == "contactor-welded"


async def test_evse_unlock_without_a_transaction_releases_the_cable(evse_rig):
    assert await evse_rig.send(Unlock()) is True
    assert not evse_rig.hw.lock.locked


# ---------------------------------------------------------------- availability, limits, authorization


async def test_evse_inoperative_during_a_transaction_is_scheduled(evse_rig):
    tx = await evse_rig.start_charging()
    assert await evse_rig.send(Availability(operative=False)) == "Scheduled"
    assert evse_rig.status is S.CHARGING and energised(evse_rig)  # the transaction goes on
    await evse_rig.send(Stop(reason=StopReason.LOCAL, id_token="CARD1"))
    assert ended_reason(evse_rig, tx.ref) == "Local"
    assert evse_rig.status is S.UNAVAILABLE  # applied once the transaction ended


async def test_evse_offered_current_follows_the_limit_and_zero_suspends(evse_rig):
    tx = await evse_rig.start_charging()
    for amps, expected in ((16, 16.0), (100, evse_rig.max_current_A), (10, 10.0)):
        await evse_rig.send(Limit(amps=amps))
        assert offered(evse_rig) == expected and evse_rig.status is S.CHARGING
    await evse_rig.send(Limit(amps=0))
    assert evse_rig.status is S.SUSPENDED_EVSE and not energised(evse_rig) and offered(evse_rig) == 0
    await evse_rig.send(Limit(amps=20))
    assert evse_rig.status is S.CHARGING and energised(evse_rig) and offered(evse_rig) == 20
    assert evse_rig.history("contactor") == [("contactor", True), ("contactor", False), ("contactor", True)]
    # A new rate for a charging transaction is reported; suspending and resuming are state changes.
    assert triggers(evse_rig, tx.ref).count("ChargingRateChanged") == 3


async def test_evse_limit_before_a_transaction_is_what_it_will_offer(evse_rig):
    await evse_rig.send(Limit(amps=12))
    assert offered(evse_rig) == 0  # nothing is offered outside a transaction
    await evse_rig.start_charging()
    assert offered(evse_rig) == 12


async def test_evse_authorize_refused_while_another_transaction_runs(evse_rig):
    await evse_rig.start_charging()
    assert await evse_rig.authorize("CARD2") is False
    assert evse_rig.machine.transaction.id_token == "CARD1"


@pytest.mark.parametrize("cable_first, trigger", [(False, "CablePluggedIn"), (True, "RemoteStart")])
async def test_evse_authorize_remote_start_is_recorded_as_such(evse_rig, cable_first, trigger):
    # The transaction starts with the last of the two (TxStartPoint PowerPathClosed), which is its trigger.
    if cable_first:
        await evse_rig.plug()
    assert await evse_rig.authorize(remote_start_id=42, token_type="Central")
    await evse_rig.plug()
    started = started_record(evse_rig)
    assert (started["remote_start_id"], started["trigger"], started["token_type"]) == (42, trigger, "Central")


@pytest.mark.parametrize("reason, cancels", [(StopReason.LOCAL, True), (StopReason.REMOTE, True),
                                             (StopReason.OTHER, False)])
async def test_evse_stop_before_the_cable_cancels_a_waiting_token(evse_rig, reason, cancels):
    await evse_rig.authorize()
    assert await evse_rig.send(Stop(reason=reason)) is cancels
    assert evse_rig.status is (S.AVAILABLE if cancels else S.PREPARING)


async def test_evse_stop_with_nothing_to_stop_answers_false(evse_rig):
    assert await evse_rig.send(Stop(reason=StopReason.LOCAL)) is False
    assert evse_rig.status is S.AVAILABLE


# ---------------------------------------------------------------- deauthorization


async def test_evse_deauthorize_suspends_when_the_transaction_may_go_on(evse_rig):
    evse_rig.settings.set("stop_transaction_on_invalid_id", False)
    tx = await evse_rig.start_charging()
    await evse_rig.send(Deauthorize(ref="another-ref"))
    assert evse_rig.status is S.CHARGING  # not this transaction
    await evse_rig.send(Deauthorize(ref=tx.ref))
    assert evse_rig.status is S.SUSPENDED_EVSE
    assert not energised(evse_rig) and offered(evse_rig) == 0 and evse_rig.hw.lock.locked
    assert evse_rig.machine.transaction.ref == tx.ref


async def test_evse_suspend_invalid_stops_the_energy_of_its_transaction_only(evse_rig):
    tx = await evse_rig.start_charging()
    await evse_rig.send(SuspendInvalid(ref="another-ref"))
    assert evse_rig.status is S.CHARGING
    await evse_rig.send(SuspendInvalid(ref=tx.ref))
    assert evse_rig.status is S.SUSPENDED_EVSE and not energised(evse_rig) and offered(evse_rig) == 0


async def test_evse_ev_that_stops_drawing_ends_at_energy_transfer(evse_rig):
    evse_rig.settings.set("tx_stop_point", ("EnergyTransfer",))
    tx = await evse_rig.start_charging()
    await evse_rig.ev_charge(False)
    assert evse_rig.machine.transaction is None
    assert ended_reason(evse_rig, tx.ref) == "StoppedByEV"
    assert evse_rig.status is S.FINISHING and not evse_rig.hw.lock.locked


# ---------------------------------------------------------------- timers and resets


@pytest.mark.parametrize("start_point", ["PowerPathClosed", "Authorized"])
async def test_evse_timer_ends_a_wait_for_the_cable(evse_rig, monkeypatch, start_point):
    evse_rig.settings.set("tx_start_point", (start_point,))
    evse_rig.settings.set("connection_timeout_s", 30)
    await evse_rig.authorize()
    started = evse_rig.machine.transaction
    assert (started is not None) is (start_point == "Authorized")
    await evse_rig.send(Timer())  # before the deadline: nothing happens
    assert evse_rig.status is S.PREPARING
    loop = asyncio.get_running_loop()
    now = loop.time
    monkeypatch.setattr(loop, "time", lambda: now() + 31)  # the connection timeout has passed
    await evse_rig.send(Timer())
    assert evse_rig.status is S.AVAILABLE
    assert evse_rig.machine.authorization is None and evse_rig.machine.transaction is None
    if started is not None:
        assert ended_reason(evse_rig, started.ref) == "Timeout"


async def test_evse_reset_when_idle_is_accepted_and_reports_the_status_again(evse_rig):
    done = asyncio.get_running_loop().create_future()
    assert await evse_rig.send(Reset(immediate=False, done=done)) == "Accepted"
    assert done.done()
    assert evse_rig.statuses == [(S.AVAILABLE, None), (S.AVAILABLE, None)]


async def test_evse_reset_waits_for_the_transaction_unless_immediate(evse_rig):
    tx = await evse_rig.start_charging()
    done = asyncio.get_running_loop().create_future()
    assert await evse_rig.send(Reset(immediate=False, done=done)) == "Scheduled"
    assert not done.done() and evse_rig.status is S.CHARGING
    await evse_rig.send(Stop(reason=StopReason.LOCAL, id_token="CARD1"))
    assert done.done() and ended_reason(evse_rig, tx.ref) == "Local"
    assert not energised(evse_rig) and not evse_rig.hw.lock.locked


async def test_evse_end_for_reset_drops_a_waiting_token(evse_rig):
    await evse_rig.authorize()
    await evse_rig.send(EndForReset(reason=StopReason.SOFT_RESET))
    assert evse_rig.machine.authorization is None and evse_rig.status is S.AVAILABLE


async def test_evse_pilot_input_alone_moves_the_machine(evse_rig):
    # A Pilot input as the station submits it (the HAL event is only how it usually arrives).
    await evse_rig.send(Pilot(state=PilotState.B))
    assert evse_rig.status is S.PREPARING and evse_rig.machine.pilot is PilotState.B
    await evse_rig.send(Pilot(state=PilotState.A))
    assert evse_rig.status is S.AVAILABLE


async def test_evse_authorize_input_carries_its_token_type(evse_rig):
    accepted = IdTokenInfo(AuthorizationStatus.ACCEPTED)
    assert await evse_rig.send(Authorize(id_token="CARD9", info=accepted, token_type=None))
    await evse_rig.plug()
    assert evse_rig.machine.transaction.id_token == "CARD9"
