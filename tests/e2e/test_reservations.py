"""Reservations on both versions: one model in the core, ReserveNow / CancelReservation at the edges."""

import asyncio
import time
from datetime import datetime, timezone

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from agent.testcsms.server import CsmsSimulator
from tests.harness import agent_config, running_agent, wait_until
from tests.harness.v16 import statuses

CARD, OTHER = "04A1B2C3", "0BADCAFE"


def iso_in(seconds: float) -> str:
    return datetime.fromtimestamp(time.time() + seconds, tz=timezone.utc).isoformat().replace("+00:00", "Z")


async def test_reservation16_only_the_holder_may_start(tmp_path, csms16):
    async with running_agent(agent_config(tmp_path, csms16.url)) as agent:
        await csms16.wait_for(lambda: statuses(csms16)[-1:] == ["Available"])
        result = await csms16.call("CP1", call16.ReserveNow(connector_id=1, expiry_date=iso_in(60), id_tag=CARD,
                                                            reservation_id=5))
        assert result.status == "Accepted"
        await csms16.wait_for(lambda: statuses(csms16)[-1:] == ["Reserved"])
        agent.hal.plug(1)
        agent.hal.tap(OTHER)  # someone else: refused, the EVSE stays reserved
        await asyncio.sleep(0.3)
        assert not csms16.calls("StartTransaction")
        agent.hal.tap(CARD)
        start = (await csms16.wait_for_call("StartTransaction"))[0].payload
        assert start["reservationId"] == 5 and start["idTag"] == CARD
        result = await csms16.call("CP1", call16.CancelReservation(reservation_id=5))
        assert result.status == "Rejected"  # fulfilled, gone


async def test_reservation16_answers_and_expiry(tmp_path, csms16):
    async with running_agent(agent_config(tmp_path, csms16.url, evses=2)) as agent:
        await csms16.wait_for(lambda: statuses(csms16, 2)[-1:] == ["Available"])
        agent.hal.plug(2)
        await csms16.wait_for(lambda: statuses(csms16, 2)[-1:] == ["Preparing"])
        busy = await csms16.call("CP1", call16.ReserveNow(connector_id=2, expiry_date=iso_in(60), id_tag=CARD,
                                                          reservation_id=1))
        assert busy.status == "Occupied"
        agent.hal.inject_fault(1, "rcd-trip")
        await csms16.wait_for(lambda: statuses(csms16, 1)[-1:] == ["Faulted"])
        faulted = await csms16.call("CP1", call16.ReserveNow(connector_id=1, expiry_date=iso_in(60), id_tag=CARD,
                                                             reservation_id=2))
        assert faulted.status == "Faulted"
        agent.hal.clear_fault(1, "rcd-trip")
        await csms16.wait_for(lambda: statuses(csms16, 1)[-1:] == ["Available"])
        short = await csms16.call("CP1", call16.ReserveNow(connector_id=1, expiry_date=iso_in(1), id_tag=CARD,
                                                           reservation_id=3))
        assert short.status == "Accepted"
        await csms16.wait_for(lambda: statuses(csms16, 1)[-1:] == ["Reserved"])
        await csms16.wait_for(lambda: statuses(csms16, 1)[-1:] == ["Available"], timeout=4)  # expired
        assert agent.station.reservations.get(3) is None


async def test_reservation16_connector_zero_keeps_one_evse_for_the_holder(tmp_path, csms16):
    async with running_agent(agent_config(tmp_path, csms16.url)) as agent:
        await csms16.wait_for(lambda: statuses(csms16)[-1:] == ["Available"])
        result = await csms16.call("CP1", call16.ReserveNow(connector_id=0, expiry_date=iso_in(60), id_tag=CARD,
                                                            reservation_id=9))
        assert result.status == "Accepted"
        agent.hal.plug(1)
        agent.hal.tap(OTHER)
        await asyncio.sleep(0.3)
        assert not csms16.calls("StartTransaction")  # the only EVSE is promised
        agent.hal.tap(CARD)
        start = (await csms16.wait_for_call("StartTransaction"))[0].payload
        assert start["reservationId"] == 9


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])  # 2.1 reserves as 2.0.1 does
async def test_reservation201_reserve_cancel_and_status_update(tmp_path, version):
    sim = CsmsSimulator(ocpp_version=version)
    await sim.start()
    try:
        async with running_agent(agent_config(tmp_path, sim.url, ocpp_version=version)) as agent:
            await sim.wait_for_call("StatusNotification")
            result = await sim.call("CP1", call201.ReserveNow(id=4, expiry_date_time=iso_in(1),
                                                              id_token={"id_token": CARD, "type": "ISO14443"},
                                                              evse_id=1))
            assert result.status == "Accepted"
            await sim.wait_for(lambda: [r.payload["connectorStatus"] for r in sim.calls("StatusNotification")][-1:]
                               == ["Reserved"])
            update = (await sim.wait_for_call("ReservationStatusUpdate", timeout=4))[0].payload
            assert update == {"reservationId": 4, "reservationUpdateStatus": "Expired"}
            result = await sim.call("CP1", call201.ReserveNow(id=6, expiry_date_time=iso_in(60),
                                                              id_token={"id_token": CARD, "type": "ISO14443"}))
            assert result.status == "Accepted"
            assert (await sim.call("CP1", call201.CancelReservation(reservation_id=6))).status == "Accepted"
            assert (await sim.call("CP1", call201.CancelReservation(reservation_id=6))).status == "Rejected"
            await wait_until(lambda: not list(agent.station.reservations))
    finally:
        await sim.stop()
