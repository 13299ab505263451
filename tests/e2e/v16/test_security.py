"""OCPP 1.6 security extension end to end: security events, AuthorizationKey, SecurityProfile, CpoName."""

import json

from ocpp.v16 import call as call16

from agent.runtime.message_log import MessageLog
from tests.harness import agent_config, running_agent, wait_until
from tests.harness.v16 import charge_session

OLD_KEY = "old-password-from-the-file"
NEW_KEY = "0123456789abcdef0123"


async def test_startup_is_reported_as_a_security_event(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url)):
        event = (await csms.wait_for_call("SecurityEventNotification"))[0].payload
        assert event["type"] == "StartupOfTheDevice" and event["timestamp"]


async def test_csms_without_the_extension_does_not_hold_back_transactions(tmp_path, csms):
    """A NotImplemented answer drops the security event at once: StartTransaction follows without retries."""

    def refuse_security_events(station_id, text):
        frame = json.loads(text)
        if frame[0] == 2 and frame[2] == "SecurityEventNotification":
            return json.dumps([4, frame[1], "NotImplemented", "unknown action", {}])
        return None

    csms.behaviour.frame_hook = refuse_security_events
    config = agent_config(tmp_path, csms.url, configuration={"TransactionMessageRetryInterval": 30})
    async with running_agent(config) as agent:
        await wait_until(lambda: agent.store.outbox.head() is None, timeout=5)
        await charge_session(agent, csms)  # would wait 30 s behind a retried security event
        assert csms.calls("StartTransaction")


async def test_authorization_key_is_write_only_and_used_from_the_next_connection(tmp_path, csms):
    csms.behaviour.password = OLD_KEY
    config = agent_config(tmp_path, csms.url, csms={"security_profile": 1, "password": OLD_KEY})
    async with running_agent(config) as agent:
        await csms.wait_for_station("CP1")
        result = await csms.call("CP1", call16.ChangeConfiguration(key="AuthorizationKey", value=NEW_KEY))
        assert result.status == "Accepted"
        listed = await csms.call("CP1", call16.GetConfiguration(key=["AuthorizationKey"]))
        assert all(entry.get("value") in (None, "") for entry in listed.configuration_key)
        too_short = await csms.call("CP1", call16.ChangeConfiguration(key="AuthorizationKey", value="short"))
        assert too_short.status == "Rejected"
        # The CSMS now requires the new key: the next connection must present it.
        csms.behaviour.password = NEW_KEY
        before = csms.connections
        await csms.drop_connections()
        await wait_until(lambda: csms.connections > before and agent.session.connected.is_set(), timeout=15)
        assert agent.session.transport_options().password == NEW_KEY
    # The key never reaches the message log in clear.
    with MessageLog(tmp_path / "data" / "messages.sqlite", readonly=True) as log:
        frames = log.query(limit=None)
    assert any("AuthorizationKey" in f.frame for f in frames)
    assert not any(NEW_KEY in f.frame for f in frames)


async def test_cpo_name_is_the_organization_setting(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        await csms.wait_for_station("CP1")
        result = await csms.call("CP1", call16.ChangeConfiguration(key="CpoName", value="Example CPO"))
        assert result.status == "Accepted"
        assert agent.settings["organization_name"] == "Example CPO"


async def test_security_events_use_the_16_names(tmp_path, csms):
    from agent.core.management.security_events import INVALID_STATION_CERTIFICATE, record_security_event

    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        await csms.wait_for_call("SecurityEventNotification")  # the start-up
        record_security_event(agent.store, INVALID_STATION_CERTIFICATE, timestamp=agent.clock.time(),
                              tech_info="chain does not verify")
        agent.station.outbox_changed()
        event = (await csms.wait_for_call("SecurityEventNotification", count=2))[-1].payload
        assert event == {"type": "InvalidChargePointCertificate", "timestamp": event["timestamp"],
                         "techInfo": "chain does not verify"}
