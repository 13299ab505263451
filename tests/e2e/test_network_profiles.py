"""Connection profiles end to end: 1.6 SecurityProfile raise and revert, 2.0.1 SetNetworkProfile and fallback."""

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from tests.harness import agent_config, running_agent, wait_until
from tests.harness.certificates import make_cert, pem

PASSWORD = "a-basic-auth-password"
QUICK_FALLBACK = {"OCPPCommCtrlr.NetworkProfileConnectionAttempts": 2,
                  "OCPPCommCtrlr.RetryBackOffWaitMinimum": 0, "OCPPCommCtrlr.RetryBackOffRandomRange": 0}


async def test_v16_security_profile_raise_that_cannot_connect_goes_back(tmp_path, csms_factory):
    """1 -> 2 on a CSMS without TLS: the station tries wss://, fails, and returns to profile 1."""
    csms = await csms_factory("1.6", password=PASSWORD)
    config = agent_config(tmp_path, csms.url, csms={"security_profile": 1, "password": PASSWORD},
                          variables=QUICK_FALLBACK)
    async with running_agent(config) as agent:
        await csms.wait_for_call("BootNotification")
        # Profile 2 needs a CSMS root to check the server with: the CSMS installs one first.
        installed = await csms.call("CP1", call16.InstallCertificate(
            certificate_type="CentralSystemRootCertificate", certificate=pem(make_cert("CSMS Root")[1])))
        assert installed.status == "Accepted"
        result = await csms.call("CP1", call16.ChangeConfiguration(key="SecurityProfile", value="2"))
        assert result.status == "Accepted"
        await wait_until(lambda: agent.session.transport_options().url.startswith("wss://"), timeout=5)
        # Two failed TLS attempts later the station is back on profile 1 (resuming its boot), and says so.
        await csms.wait_for(lambda: csms.connections == 2 and "CP1" in csms.stations, timeout=20)
        assert agent.settings["security_profile"] == 1
        events = [c.payload for c in await csms.wait_for_call("SecurityEventNotification", count=2)]
        assert any(e["type"] == "ReconfigurationOfSecurityParameters" and "back to 1" in e.get("techInfo", "")
                   for e in events)
        lower = await csms.call("CP1", call16.ChangeConfiguration(key="SecurityProfile", value="0"))
        assert lower.status == "Rejected"


async def test_v16_security_profile_raise_refused_without_its_prerequisites(tmp_path, csms_factory):
    csms = await csms_factory("1.6")
    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        await csms.wait_for_call("BootNotification")
        # Profile 2 needs a password and a trusted CSMS root; this station has neither.
        result = await csms.call("CP1", call16.ChangeConfiguration(key="SecurityProfile", value="2"))
        assert result.status == "Rejected"
        assert agent.settings["security_profile"] == 0
        assert agent.session.transport_options().url.startswith("ws://")


def network_profile(url, security_profile=0, **extra):
    return {"ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": url, "messageTimeout": 20,
            "securityProfile": security_profile, "ocppInterface": "Wired0", **extra}


async def test_v201_set_network_profile_then_migrate_and_fall_back(tmp_path, csms_factory):
    old, new = await csms_factory("2.0.1"), await csms_factory("2.0.1")
    async with running_agent(agent_config(tmp_path, old.url, ocpp_version="2.0.1",
                                          variables=QUICK_FALLBACK)) as agent:
        await old.wait_for_call("BootNotification")
        refused = await old.call("CP1", call201.SetNetworkProfile(
            configuration_slot=1, connection_data=network_profile(new.url, apn={"apn": "x", "apnAuthentication": "AUTO"})))
        assert refused.status == "Rejected" and refused.status_info["reason_code"] == "InvalidNetworkConf"
        lower_url = await old.call("CP1", call201.SetNetworkProfile(
            configuration_slot=1, connection_data=network_profile(new.url, security_profile=2)))
        assert lower_url.status == "Rejected"  # a ws:// URL cannot carry TLS
        accepted = await old.call("CP1", call201.SetNetworkProfile(
            configuration_slot=1, connection_data=network_profile(new.url)))
        assert accepted.status == "Accepted"
        result = await old.call("CP1", call201.SetVariables(set_variable_data=[{
            "attribute_value": "1,0", "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "NetworkConfigurationPriority"}}]))
        assert result.set_variable_result[0]["attribute_status"] == "Accepted"
        # The old CSMS goes away: the station's next connection is slot 1, the new CSMS.
        await old.stop()
        await old.drop_connections()
        await new.wait_for_call("BootNotification", timeout=10)
        # The new CSMS goes away too: after the attempts, slot 0 (the config's) is tried again.
        await new.stop()
        await new.drop_connections()
        await old.start(port=old.port)
        await old.wait_for_call("BootNotification", count=2, timeout=20)
        assert agent.session.connected.is_set()
