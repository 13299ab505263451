"""The station's declared API (agent.core.charging.api): ChargingStation implements StationApi, the
EVSE snapshots follow the state, and wait_until_idle is woken by the last transaction's end."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from types import SimpleNamespace

import pytest

from agent.core.charging.api import EvseView, StationApi
from agent.core.charging.auth import AuthorizationCache, Authorizer
from agent.core.charging.model import ConnectorStatus
from agent.core.charging.station import ChargingStation
from agent.core.charging.transactions import TransactionJournal
from agent.runtime.clock import Clock
from agent.runtime.settings import Settings
from agent.runtime.store import StateStore
from hal.mock.hardware import MockHal
from tests.harness import wait_until

CARD = "04A1B2C3"


async def _dispatch(events: asyncio.Queue, station: ChargingStation) -> None:
    """What the app does: every HAL event goes to the station, in order."""
    while True:
        await station.handle_hal_event(await events.get())


@pytest.fixture
async def rig(tmp_path):
    """A started station with EVSEs 1 and 2 on the mock HAL and a real state store (no CSMS attached)."""
    events: asyncio.Queue = asyncio.Queue()
    hal = MockHal(evse_ids=[1, 2], data_dir=tmp_path, emit=events.put_nowait, feedback_timeout_s=0.05)
    await hal.start()
    with StateStore(tmp_path / "state.sqlite") as store:
        clock, settings = Clock(), Settings(store)
        authorizer = Authorizer(settings=settings, cache=AuthorizationCache(store, clock=clock), clock=clock)
        station = ChargingStation(hal=hal, store=store, settings=settings, clock=clock, authorizer=authorizer,
                                  journal=TransactionJournal(store), evse_max_current={1: 32.0, 2: 32.0})
        await station.start()
        dispatcher = asyncio.create_task(_dispatch(events, station))
        try:
            yield SimpleNamespace(station=station, hal=hal, store=store)
        finally:
            dispatcher.cancel()
            await station.stop()
            await hal.close()


async def start_charging(rig, evse_id: int) -> str:
    """A remote start, the cable, the EV asking for energy: returns the running transaction's ref."""
    assert rig.station.remote_start(CARD, evse_id=evse_id)
    rig.hal.plug(evse_id)
    rig.hal.ev_charge(evse_id, True)
    return await wait_until(lambda: rig.station.evse(evse_id).transaction_ref)


async def stop_charging(rig, evse_id: int) -> None:
    """A remote stop of the EVSE's transaction; returns once it has ended."""
    assert await rig.station.remote_stop(ref=rig.station.evse(evse_id).transaction_ref)
    await wait_until(lambda: not rig.station.busy(evse_id))


def _public(cls) -> dict[str, object]:
    return {name: member for name, member in vars(cls).items() if not name.startswith("_")}


def test_api_chargingstation_implements_every_declared_member_with_its_signature():
    for name, declared in _public(StationApi).items():
        implemented = getattr(ChargingStation, name, None)
        assert callable(implemented), f"ChargingStation lacks StationApi.{name}"
        assert inspect.iscoroutinefunction(implemented) == inspect.iscoroutinefunction(declared), name
        assert list(inspect.signature(implemented).parameters) == list(inspect.signature(declared).parameters), name


async def test_api_station_is_a_station_api_and_views_are_frozen_copies(rig):
    assert isinstance(rig.station, StationApi)
    view = rig.station.evse(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.status = ConnectorStatus.FAULTED
    statuses = rig.station.current_statuses()
    statuses[1] = (ConnectorStatus.FAULTED, "x")
    assert rig.station.current_statuses()[1] == (ConnectorStatus.AVAILABLE, None)
    with pytest.raises(KeyError):
        rig.station.evse(7)


async def test_api_queries_describe_the_station(rig):
    station = rig.station
    assert station.evse_ids() == [1, 2]
    assert station.has_evse(2) and not station.has_evse(0) and not station.has_evse(3)
    assert station.evse(1) == EvseView(1, ConnectorStatus.AVAILABLE, None, transaction_ref=None, remote_id=None,
                                       faults=frozenset())
    assert sorted(station.current_statuses()) == [0, 1, 2]
    assert not station.busy() and not station.busy(1)
    assert station.station_fault_codes() == frozenset()


async def test_api_evse_view_follows_a_transaction(rig):
    station = rig.station
    ref = await start_charging(rig, 1)
    await wait_until(lambda: station.evse(1).status is ConnectorStatus.CHARGING)
    assert station.busy() and station.busy(1) and not station.busy(2)
    assert station.evse(1).remote_id is None  # no CSMS has given it an id yet
    station.journal.set_remote_id(ref, "42")
    assert station.evse(1).remote_id == "42" and station.remote_id(ref) == "42"
    assert station.evse(2).transaction_ref is None
    await stop_charging(rig, 1)
    assert station.evse(1).transaction_ref is None and not station.busy()


async def test_api_transaction_messages_queued_by_transaction(rig):
    station = rig.station
    assert not station.transaction_messages_queued()
    ref = await start_charging(rig, 1)
    # No CSMS is attached: the started record stays in the durable outbox.
    assert station.transaction_messages_queued(ref) and station.transaction_messages_queued()
    assert not station.transaction_messages_queued("another-transaction")


async def test_api_evse_view_lists_its_faults(rig):
    rig.hal.inject_fault(2, "rcd-trip")
    view = await wait_until(lambda: (v := rig.station.evse(2)).faults and v)
    assert view.faults == frozenset({"rcd-trip"}) and rig.station.evse(1).faults == frozenset()
    assert (2, "rcd-trip") in rig.station.active_faults()


async def test_api_attach_and_detach_port(rig):
    port, other = object(), object()
    rig.station.attach_port(port)
    assert not rig.station.detach_port(other)  # a connection that is not the attached one changes nothing
    assert rig.station.port is port
    assert rig.station.detach_port(port) and rig.station.port is None
    assert not rig.station.detach_port(port)


async def test_api_wait_until_idle_returns_at_once_when_nothing_runs(rig):
    await asyncio.wait_for(rig.station.wait_until_idle(), timeout=0.1)


async def test_api_wait_until_idle_waits_for_the_last_transaction_without_polling(rig, monkeypatch):
    station = rig.station
    await start_charging(rig, 1)
    await start_charging(rig, 2)
    checks = []
    busy = station.busy
    monkeypatch.setattr(station, "busy", lambda evse_id=None: checks.append(evse_id) or busy(evse_id))
    waiter = asyncio.create_task(station.wait_until_idle())
    await asyncio.sleep(0.3)
    assert not waiter.done()
    assert checks == [None]  # looked once, then slept until woken: nothing polls while charging goes on
    await stop_charging(rig, 1)
    await asyncio.sleep(0.05)
    assert not waiter.done()  # EVSE 2 still charges
    await stop_charging(rig, 2)
    await asyncio.wait_for(waiter, timeout=0.2)  # woken by the end itself, not by a timer


async def test_api_wait_until_idle_waits_again_for_a_transaction_started_meanwhile(rig):
    station = rig.station
    await start_charging(rig, 1)
    waiter = asyncio.create_task(station.wait_until_idle())
    await asyncio.sleep(0)
    await start_charging(rig, 2)
    await stop_charging(rig, 1)
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await stop_charging(rig, 2)
    await asyncio.wait_for(waiter, timeout=0.2)
