"""OCPP 2.0.1 sampled data (J02): the SampledDataCtrlr variables are settings of their own, and by default
the Started and Ended events carry the energy register a CSMS bills from (Transaction.Begin / .End)."""

import asyncio

from ocpp.v201 import call as call201

from tests.harness import running_agent
from tests.harness.v201 import charge, config, events

ENERGY = "Energy.Active.Import.Register"
SAMPLED = "SampledDataCtrlr"


def contexts(event: dict, measurand: str = ENERGY) -> list[str]:
    """The context of every ``measurand`` value in a TransactionEvent's meterValue, in order."""
    return [v.get("context") for mv in event.get("meterValue", []) for v in mv["sampledValue"]
            if v.get("measurand") == measurand]


def event(csms, event_type: str) -> dict:
    """The first TransactionEvent of ``event_type``."""
    return next(e for e in events(csms) if e["eventType"] == event_type)


async def get(csms, *names: str) -> dict[str, tuple[str, str | None]]:
    """GetVariables of SampledDataCtrlr variables: name -> (attributeStatus, value)."""
    result = await csms.call("CP1", call201.GetVariables(get_variable_data=[
        {"component": {"name": SAMPLED}, "variable": {"name": name}} for name in names]))
    return {r["variable"]["name"]: (r["attribute_status"], r.get("attribute_value"))
            for r in result.get_variable_result}


async def set_(csms, **values: str) -> dict[str, str]:
    """SetVariables of SampledDataCtrlr variables: name -> attributeStatus."""
    result = await csms.call("CP1", call201.SetVariables(set_variable_data=[
        {"component": {"name": SAMPLED}, "variable": {"name": name}, "attribute_value": value}
        for name, value in values.items()]))
    return {r["variable"]["name"]: r["attribute_status"] for r in result.set_variable_result}


async def test_sampled_data_started_and_ended_carry_the_energy_register_by_default(tmp_path, csms):
    # TxUpdatedInterval 1 (the harness's): Updated meter values every second, while by default the Ended
    # event holds only the start and end readings (TxEndedInterval 0).
    async with running_agent(config(tmp_path, csms)) as agent:
        await charge(agent, csms)
        await csms.wait_for(lambda: any(e["triggerReason"] == "MeterValuePeriodic" for e in events(csms)),
                            timeout=4)
        tx_id = event(csms, "Started")["transactionInfo"]["transactionId"]
        assert (await csms.call("CP1", call201.RequestStopTransaction(transaction_id=tx_id))).status == "Accepted"
        await csms.wait_for(lambda: any(e["eventType"] == "Ended" for e in events(csms)))
    started, ended = event(csms, "Started"), event(csms, "Ended")
    assert contexts(started) == ["Transaction.Begin"]
    assert contexts(ended) == ["Transaction.Begin", "Transaction.End"]
    begin = started["meterValue"][0]["sampledValue"][0]
    assert begin["unitOfMeasure"]["unit"] == "Wh" and begin["value"] >= 0
    end = ended["meterValue"][-1]["sampledValue"][0]["value"]
    assert end >= begin["value"]


async def test_sampled_data_variables_are_independent_settings(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await csms.wait_for_station("CP1")
        await csms.wait_for_call("StatusNotification")
        assert await get(csms, "TxStartedMeasurands", "TxEndedMeasurands", "TxEndedInterval",
                         "TxUpdatedMeasurands", "TxUpdatedInterval") == {
            "TxStartedMeasurands": ("Accepted", ENERGY), "TxEndedMeasurands": ("Accepted", ENERGY),
            "TxEndedInterval": ("Accepted", "0"), "TxUpdatedMeasurands": ("Accepted", ENERGY),
            "TxUpdatedInterval": ("Accepted", "1")}
        # No Updated meter values at all, yet the Ended event gets a periodic sample every second;
        # the Started event the measurands asked for it alone.
        assert await set_(csms, TxUpdatedInterval="0", TxEndedInterval="1",
                          TxStartedMeasurands=f"{ENERGY},Power.Active.Import",
                          TxEndedMeasurands=ENERGY) == {
            "TxUpdatedInterval": "Accepted", "TxEndedInterval": "Accepted", "TxStartedMeasurands": "Accepted",
            "TxEndedMeasurands": "Accepted"}
        assert (await get(csms, "TxEndedInterval", "TxUpdatedInterval")) == {
            "TxEndedInterval": ("Accepted", "1"), "TxUpdatedInterval": ("Accepted", "0")}
        await charge(agent, csms)
        tx_id = event(csms, "Started")["transactionInfo"]["transactionId"]
        await asyncio.sleep(2.3)
        await csms.call("CP1", call201.RequestStopTransaction(transaction_id=tx_id))
        await csms.wait_for(lambda: any(e["eventType"] == "Ended" for e in events(csms)))
    started, ended = event(csms, "Started"), event(csms, "Ended")
    assert contexts(started) == ["Transaction.Begin"] and contexts(started, "Power.Active.Import") == [
        "Transaction.Begin"]
    ended_contexts = contexts(ended)
    assert ended_contexts[0] == "Transaction.Begin" and ended_contexts[-1] == "Transaction.End"
    assert ended_contexts.count("Sample.Periodic") >= 2
    assert not contexts(ended, "Power.Active.Import")  # only TxEndedMeasurands in the Ended event
    assert not any(e["triggerReason"] == "MeterValuePeriodic" for e in events(csms))
