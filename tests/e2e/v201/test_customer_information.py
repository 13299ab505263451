"""OCPP 2.0.1 CustomerInformation end to end: what the station holds about an idToken (authorization cache,
local list, message log) reported in NotifyCustomerInformation, and erased on request."""

import json

from ocpp.v201 import call as call201

from agent.core.charging.auth import AuthorizationCache
from agent.core.device_model.customer_info import NO_DATA, pack
from tests.harness import agent_config, running_agent, wait_until

CARD = "04A1B2C3"
TOKEN = {"id_token": CARD, "type": "ISO14443"}


async def ask(csms, payload):
    return await csms.call("CP1", payload)


async def information(csms, request_id, **fields):
    """Ask, and return the answer's status and the text of every NotifyCustomerInformation part."""
    result = await ask(csms, call201.CustomerInformation(request_id=request_id, **fields))
    if result.status != "Accepted":
        return result.status, None
    parts = await csms.wait_for(lambda: (p := [r.payload for r in csms.calls("NotifyCustomerInformation")
                                              if r.payload["requestId"] == request_id])
                                and not p[-1].get("tbc") and p)
    assert [p["seqNo"] for p in parts] == list(range(len(parts)))
    assert all(p.get("tbc") for p in parts[:-1]) and all(len(p["data"]) <= 512 for p in parts)
    assert len({p["generatedAt"] for p in parts}) == 1
    return result.status, "\n".join(p["data"] for p in parts)


async def known_card(agent, csms):
    """The card authorized online (a cache entry), then put on the local list by the CSMS."""
    await csms.wait_for_call("StatusNotification")
    agent.hal.tap(CARD)
    await csms.wait_for_call("Authorize")
    cache = AuthorizationCache(agent.store, clock=agent.clock)
    await wait_until(lambda: cache.entries_for(CARD))
    result = await ask(csms, call201.SendLocalList(version_number=1, update_type="Full", local_authorization_list=[
        {"id_token": TOKEN, "id_token_info": {"status": "Accepted"}}]))
    assert result.status == "Accepted"
    return cache


async def test_customer_information_refuses_a_request_without_customer_or_action(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url, ocpp_version="2.0.1")):
        await csms.wait_for_call("StatusNotification")
        assert await information(csms, 1, report=True, clear=False) == ("Rejected", None)
        assert await information(csms, 2, report=False, clear=False, id_token=TOKEN) == ("Rejected", None)
        assert not csms.calls("NotifyCustomerInformation")


async def test_customer_information_reports_then_clears_an_id_token(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url, ocpp_version="2.0.1")) as agent:
        cache = await known_card(agent, csms)
        on_the_wire = {"idToken": CARD, "type": "ISO14443"}
        for i in range(25):  # older traffic about the card: more than one part of 512 characters
            agent.message_log.append("in", json.dumps([2, f"old-{i}", "Authorize", {"idToken": on_the_wire}]),
                                     timestamp=1_700_000_000 + i)
        agent.message_log.append("in", json.dumps([2, "x", "DataTransfer", {"data": f"not {CARD}ZZ"}]))

        status, text = await information(csms, 10, report=True, clear=False, id_token=TOKEN)
        assert status == "Accepted"
        assert "authorization cache: status Accepted, as ISO14443" in text
        assert "local authorization list: status Accepted" in text
        assert "message log: 27 frames carry it" in text  # Authorize, SendLocalList and the 25 old ones
        assert "and 7 older frames" in text
        assert CARD not in text  # the report itself never puts the card back into the log
        assert len([r for r in csms.calls("NotifyCustomerInformation") if r.payload["requestId"] == 10]) > 1

        status, text = await information(csms, 11, report=True, clear=True, id_token=TOKEN)
        assert status == "Accepted"
        assert "authorization cache: status Accepted" in text  # reported as it was, then cleared
        assert "cleared: 1 authorization cache entry" in text and "cleared: 27 message log frames" in text
        assert "kept: the local authorization list entry" in text
        assert cache.entries_for(CARD) == []
        # Every frame carrying the card is gone, the CustomerInformation requests included; the frame
        # that only contains the text inside another string stays.
        assert [f.action for f in agent.message_log.query(grep=CARD, limit=None)] == ["DataTransfer"]
        assert agent.core.local_list.lookup(CARD) is not None  # the CSMS's list: SendLocalList changes it

        status, text = await information(csms, 12, report=False, clear=True, id_token=TOKEN)
        assert (status, text) == ("Accepted", "kept: the local authorization list entry (the CSMS updates its "
                                              "list with SendLocalList)")


async def test_customer_information_identifier_certificate_and_no_data(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url, ocpp_version="2.0.1")) as agent:
        await csms.wait_for_call("StatusNotification")
        nobody = {"id_token": "NOBODY", "type": "Central"}
        assert await information(csms, 1, report=True, clear=False, id_token=nobody) == ("Accepted", NO_DATA)
        agent.message_log.append("in", json.dumps([2, "c1", "DataTransfer", {"customerIdentifier": "CUST-42"}]))
        status, text = await information(csms, 2, report=True, clear=True, customer_identifier="cust-42")
        assert status == "Accepted"
        assert "message log: 1 frames carry it" in text and "in DataTransfer" in text
        assert "cleared: 1 message log frames" in text
        assert agent.message_log.query(grep="CUST-42") == []
        certificate = {"hash_algorithm": "SHA256", "issuer_name_hash": "aa", "issuer_key_hash": "bb",
                       "serial_number": "01"}
        status, text = await information(csms, 3, report=True, clear=False, customer_certificate=certificate)
        assert text == "customer certificate: none held (this station stores no contract certificates)"


def test_customer_information_pack_keeps_lines_whole_within_the_limit():
    assert pack(["a" * 5, "b" * 4, "c" * 12], limit=12) == ["aaaaa\nbbbb", "c" * 12]
    assert pack(["x" * 25], limit=10) == ["x" * 10, "x" * 10, "x" * 5]
    assert pack([]) == []
