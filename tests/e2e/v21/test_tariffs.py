"""OCPP 2.1 tariffs and local cost (block I) against the 2.1 test CSMS over a real WebSocket, strict schemas
both ways: default tariffs set, listed and cleared; a transaction priced by the station in its Ended event."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from ocpp.v21 import call as call21

from tests.harness import running_agent, wait_until
from tests.harness.v201 import CARD, charge, config, events, reach_status

VAT = [{"type": "VAT", "tax": 20}]
TARIFF = {"tariff_id": "T1", "currency": "EUR",
          "energy": {"prices": [{"price_kwh": 50}], "tax_rates": VAT},  # dear: a few seconds' Wh cost cents
          "charging_time": {"prices": [{"price_minute": 3}]},
          "fixed_fee": {"prices": [{"price_fixed": 0.5}], "tax_rates": VAT}}


def cents(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def test_v21_default_tariff_set_listed_priced_in_the_ended_event_and_cleared(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        assert (await csms.call("CP1", call21.GetTariffs(evse_id=0))).status == "NoTariff"
        assert (await csms.call("CP1", call21.SetDefaultTariff(evse_id=0, tariff=TARIFF))).status == "Accepted"
        listed = await csms.call("CP1", call21.GetTariffs(evse_id=1))
        assert listed.status == "Accepted"
        assert listed.tariff_assignments == [{"tariff_id": "T1", "tariff_kind": "DefaultTariff", "evse_ids": [1]}]

        await charge(agent, csms)
        await asyncio.sleep(2.0)
        agent.hal.tap(CARD)  # the driver stops
        ended = (await csms.wait_for(lambda: [e for e in events(csms) if e["eventType"] == "Ended"]))[0]
        started = next(e for e in events(csms) if e["eventType"] == "Started")
        assert started["transactionInfo"]["tariffId"] == "T1" and ended["transactionInfo"]["tariffId"] == "T1"

        details = ended["costDetails"]
        usage, total = details["totalUsage"], details["totalCost"]
        energy = Decimal(str(usage["energy"]))
        assert energy > 0 and usage["chargingTime"] >= 1
        registers = [v["sampledValue"][0]["value"] for v in ended["meterValue"]]  # Begin, End (whole Wh)
        assert abs(energy - Decimal(str(registers[-1] - registers[0]))) < 1
        assert usage["chargingTime"] + usage["idleTime"] == round(seconds(ended["timestamp"])
                                                                   - seconds(started["timestamp"]))
        energy_excl = cents(energy * 50 / 1000)
        time_excl = cents(Decimal(usage["chargingTime"]) * 3 / 60)
        assert (cents(total["energy"]["exclTax"]), cents(total["energy"]["inclTax"])) == (
            energy_excl, cents(energy_excl * Decimal("1.2")))
        assert cents(total["chargingTime"]["exclTax"]) == time_excl and "inclTax" not in total["chargingTime"]
        assert (cents(total["fixed"]["exclTax"]), cents(total["fixed"]["inclTax"])) == (Decimal("0.50"),
                                                                                         Decimal("0.60"))
        assert cents(total["total"]["exclTax"]) == energy_excl + time_excl + Decimal("0.50")
        assert cents(total["total"]["inclTax"]) == cents(energy_excl * Decimal("1.2")) + time_excl + Decimal("0.60")
        assert total["currency"] == "EUR" and total["typeOfCost"] == "NormalCost"
        running = [e for e in events(csms) if e["eventType"] == "Updated" and "costDetails" in e]
        assert running, "no running cost in the periodic Updated events"
        for event in running:  # the cost so far, from the event's own meter reading
            so_far = Decimal(str(event["costDetails"]["totalUsage"]["energy"]))
            register = Decimal(str(event["meterValue"][0]["sampledValue"][0]["value"]))
            assert abs(so_far - (register - Decimal(str(registers[0])))) < 1 and so_far <= energy
            assert cents(event["costDetails"]["totalCost"]["energy"]["exclTax"]) == cents(so_far * 50 / 1000)
        period = details["chargingPeriods"][0]
        assert period["tariffId"] == "T1" and {"type": "Energy", "volume": usage["energy"]} in period["dimensions"]

        cleared = await csms.call("CP1", call21.ClearTariffs(tariff_ids=["T1", "T2"]))
        assert cleared.clear_tariffs_result == [{"tariff_id": "T1", "status": "Accepted"},
                                                {"tariff_id": "T2", "status": "NoTariff"}]
        assert (await csms.call("CP1", call21.GetTariffs(evse_id=0))).status == "NoTariff"
        assert csms.schema_errors == []


async def test_v21_tariff_with_an_unsupported_condition_is_refused_and_not_installed(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)):
        await reach_status(csms, "Available")
        night = {"tariff_id": "N1", "currency": "EUR", "energy": {"prices": [
            {"price_kwh": 0.2, "conditions": {"start_time_of_day": "22:00", "end_time_of_day": "06:00"}}]}}
        result = await csms.call("CP1", call21.SetDefaultTariff(evse_id=1, tariff=night))
        assert result.status == "ConditionNotSupported" and result.status_info[
            "additional_info"] == "energy: condition endTimeOfDay, startTimeOfDay is not supported"
        assert (await csms.call("CP1", call21.SetDefaultTariff(evse_id=7, tariff=TARIFF))).status == "Rejected"
        assert (await csms.call("CP1", call21.GetTariffs(evse_id=0))).status == "NoTariff"
        assert (await csms.call("CP1", call21.ClearTariffs())).clear_tariffs_result == [{"status": "NoTariff"}]
        assert csms.schema_errors == []


async def test_v21_an_offline_session_is_priced_and_its_cost_goes_out_with_the_queued_events(tmp_path, csms):
    cfg = config(tmp_path, csms, **{"AuthCtrlr.OfflineTxForUnknownIdEnabled": True})
    async with running_agent(cfg) as agent:
        await reach_status(csms, "Available")
        energy_only = {"tariff_id": "E1", "currency": "CHF", "energy": {"prices": [{"price_kwh": 100}]},
                       "fixed_fee": {"prices": [{"price_fixed": 1.25}]}}
        assert (await csms.call("CP1", call21.SetDefaultTariff(evse_id=1, tariff=energy_only))).status == "Accepted"
        port = csms.port
        await csms.stop()
        await wait_until(lambda: not agent.session.connected.is_set())
        agent.hal.plug(1)
        agent.hal.tap(CARD)
        agent.hal.ev_charge(1, True)
        agent.hal.set_power(1, 7200)
        await wait_until(lambda: agent.hal.evse(1).contactor.closed)
        await asyncio.sleep(1.5)
        agent.hal.tap(CARD)
        await wait_until(lambda: agent.station.evses[1].transaction is None)
        await csms.start(port=port)
        ended = (await csms.wait_for(lambda: [e for e in events(csms) if e["eventType"] == "Ended"], timeout=10))[0]
        assert ended["offline"] and ended["transactionInfo"]["tariffId"] == "E1"
        usage, total = ended["costDetails"]["totalUsage"], ended["costDetails"]["totalCost"]
        energy_excl = cents(Decimal(str(usage["energy"])) * 100 / 1000)
        assert usage["energy"] > 0 and total["currency"] == "CHF"
        assert cents(total["energy"]["exclTax"]) == energy_excl and "inclTax" not in total["total"]
        assert cents(total["total"]["exclTax"]) == energy_excl + Decimal("1.25")
        assert csms.schema_errors == []


async def test_v21_change_transaction_tariff_prices_the_rest_of_the_session_with_the_new_tariff(tmp_path, csms):
    dearer = {"tariff_id": "T2", "currency": "EUR", "energy": {"prices": [{"price_kwh": 100}]}}
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        cheap = {"tariff_id": "T1", "currency": "EUR", "energy": {"prices": [{"price_kwh": 50}]}}
        assert (await csms.call("CP1", call21.SetDefaultTariff(evse_id=0, tariff=cheap))).status == "Accepted"
        await charge(agent, csms)
        tx_id = agent.station.transaction_ref(1)
        answer = await csms.call("CP1", call21.ChangeTransactionTariff(transaction_id="no-such-tx", tariff=dearer))
        assert answer.status == "TxNotFound"
        swiss = {**dearer, "tariff_id": "T3", "currency": "CHF"}
        answer = await csms.call("CP1", call21.ChangeTransactionTariff(transaction_id=tx_id, tariff=swiss))
        assert answer.status == "NoCurrencyChange"
        await asyncio.sleep(1.0)
        answer = await csms.call("CP1", call21.ChangeTransactionTariff(transaction_id=tx_id, tariff=dearer))
        assert answer.status == "Accepted"
        await csms.wait_for(lambda: [e for e in events(csms) if e["triggerReason"] == "TariffChanged"])
        await asyncio.sleep(1.0)
        agent.hal.tap(CARD)
        ended = (await csms.wait_for(lambda: [e for e in events(csms) if e["eventType"] == "Ended"]))[0]
    details = ended["costDetails"]
    first, second = details["chargingPeriods"]  # before the change, and after it
    assert (first["tariffId"], second["tariffId"]) == ("T1", "T2") and ended["transactionInfo"]["tariffId"] == "T2"
    volumes = [next(d["volume"] for d in p["dimensions"] if d["type"] == "Energy") for p in (first, second)]
    assert volumes[0] > 0 and volumes[1] > 0
    assert abs(Decimal(str(sum(volumes))) - Decimal(str(details["totalUsage"]["energy"]))) < Decimal("0.01")
    expected = cents(Decimal(str(volumes[0])) * 50 / 1000) + cents(Decimal(str(volumes[1])) * 100 / 1000)
    assert cents(details["totalCost"]["energy"]["exclTax"]) == expected
    assert cents(details["totalCost"]["total"]["exclTax"]) == expected
    changed = next(e for e in events(csms) if e["triggerReason"] == "TariffChanged")
    assert seconds(second["startPeriod"]) == seconds(changed["timestamp"])  # the new tariff from the change on
    assert csms.schema_errors == []


async def test_v21_a_driver_tariff_in_the_authorize_answer_prices_the_session(tmp_path, csms):
    csms.behaviour.authorize_tariff = {"tariff_id": "D1", "currency": "EUR",
                                       "fixed_fee": {"prices": [{"price_fixed": 2}]}}
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        assert (await csms.call("CP1", call21.SetDefaultTariff(evse_id=0, tariff=TARIFF))).status == "Accepted"
        await charge(agent, csms)
        agent.hal.tap(CARD)
        ended = (await csms.wait_for(lambda: [e for e in events(csms) if e["eventType"] == "Ended"]))[0]
    started = next(e for e in events(csms) if e["eventType"] == "Started")
    assert started["transactionInfo"]["tariffId"] == "D1" and ended["transactionInfo"]["tariffId"] == "D1"
    total = ended["costDetails"]["totalCost"]
    assert cents(total["total"]["exclTax"]) == Decimal("2.00") and set(total) >= {"fixed"} and "energy" not in total
    assert csms.schema_errors == []


async def test_v21_a_driver_tariff_the_station_cannot_price_leaves_the_default_tariff(tmp_path, csms, caplog):
    csms.behaviour.authorize_tariff = {"tariff_id": "D2", "currency": "EUR", "energy": {"prices": [
        {"price_kwh": 0.1, "conditions": {"day_of_week": ["Monday"]}}]}}
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        assert (await csms.call("CP1", call21.SetDefaultTariff(evse_id=0, tariff=TARIFF))).status == "Accepted"
        await charge(agent, csms)
        agent.hal.tap(CARD)
        ended = (await csms.wait_for(lambda: [e for e in events(csms) if e["eventType"] == "Ended"]))[0]
    assert ended["transactionInfo"]["tariffId"] == "T1" and ended["costDetails"]["totalCost"]["currency"] == "EUR"
    assert "the driver tariff D2 is not applied, the default tariff stays: energy: condition dayOfWeek" in caplog.text
    assert csms.schema_errors == []
