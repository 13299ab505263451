"""The walking skeleton over real WebSockets: boot, heartbeat, reconnect, message log, security profiles."""

import asyncio
import json
import logging
import subprocess
import sys

import pytest
from ocpp.exceptions import NotSupportedError
from ocpp.v16 import call as call16

from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from agent.runtime.message_log import MessageLog
from tests.certs import make_pki, server_ssl_context
from tests.harness import agent_config, running_agent, wait_until

pytestmark = pytest.mark.csms(heartbeat_interval=1)  # boots are followed by heartbeats within the tests


async def test_session_16_boot_accepted_then_heartbeats_at_interval(tmp_path, csms16):
    async with running_agent(agent_config(tmp_path, csms16.url)) as agent:
        boot = (await csms16.wait_for_call("BootNotification"))[0]
        assert boot.payload == {"chargePointVendor": "Acme", "chargePointModel": "Test"}
        beats = await csms16.wait_for_call("Heartbeat", count=2, timeout=4)
        assert agent.settings["heartbeat_interval_s"] == 1  # adopted from the response and persisted
        assert agent.store.get("setting:heartbeat_interval_s") == 1
        assert len(beats) >= 2


async def test_session_201_boot_with_reason_and_identity(tmp_path, csms201):
    async with running_agent(agent_config(tmp_path, csms201.url, ocpp_version="2.0.1")) as agent:
        boot = (await csms201.wait_for_call("BootNotification"))[0]
        assert boot.payload["reason"] == "PowerUp"
        assert boot.payload["chargingStation"] == {"vendorName": "Acme", "model": "Test"}
        await csms201.wait_for_call("Heartbeat", timeout=3)
        assert agent.session.adapter.registration == "Accepted"


async def test_session_pending_then_accepted(tmp_path, csms16):
    csms16.behaviour.boot_status = "Pending"
    async with running_agent(agent_config(tmp_path, csms16.url)) as agent:
        await wait_until(lambda: agent.session.adapter and agent.session.adapter.registration == "Pending")
        # While Pending the CSMS may talk to the station, and the station answers
        # (here NotSupported: a station never handles a Heartbeat request).
        with pytest.raises(NotSupportedError):
            await csms16.call("CP1", call16.Heartbeat())
        csms16.behaviour.boot_status = "Accepted"
        await wait_until(lambda: agent.session.adapter.registration == "Accepted", timeout=4)
        await csms16.wait_for_call("Heartbeat", timeout=3)
        actions = [r.action for r in csms16.received]
        last_boot = len(actions) - 1 - actions[::-1].index("BootNotification")
        assert actions.index("Heartbeat") > last_boot  # nothing but boots until Accepted
        assert actions.count("BootNotification") >= 2


async def test_session_rejected_sends_nothing_else_and_retries(tmp_path, csms16):
    csms16.behaviour.boot_status = "Rejected"
    async with running_agent(agent_config(tmp_path, csms16.url)) as agent:
        await csms16.wait_for_call("BootNotification", count=2, timeout=5)
        assert {r.action for r in csms16.received} == {"BootNotification"}
        assert agent.session.adapter.registration == "Rejected"


async def test_session_reconnects_after_connection_loss_without_booting_again(tmp_path, csms16):
    async with running_agent(agent_config(tmp_path, csms16.url)) as agent:
        await csms16.wait_for_call("StatusNotification")  # the boot was accepted
        await csms16.drop_connections()
        await csms16.wait_for(lambda: csms16.connections == 2 and "CP1" in csms16.stations, timeout=6)
        await wait_until(lambda: agent.session.connected.is_set() and agent.session.adapter.resumed)
        assert len(csms16.calls("BootNotification")) == 1  # a reconnection is no reboot (tests/e2e/test_boot.py)


async def test_session_survives_csms_restart(tmp_path):
    sim = CsmsSimulator(behaviour=CsmsBehaviour(heartbeat_interval=30))
    await sim.start()
    port = sim.port
    async with running_agent(agent_config(tmp_path, sim.url)):
        await sim.wait_for_call("BootNotification")
        await sim.stop()
        await asyncio.sleep(0.5)  # connection refused meanwhile: back-off, no crash
        restarted = CsmsSimulator(behaviour=CsmsBehaviour(heartbeat_interval=30))
        await restarted.start(port=port)
        try:
            await restarted.wait_for_station("CP1", timeout=8)  # back, on the boot accepted before
        finally:
            await restarted.stop()


async def test_session_message_log_records_both_directions(tmp_path, csms16):
    async with running_agent(agent_config(tmp_path, csms16.url)):
        await csms16.wait_for_call("Heartbeat", timeout=4)
    log = MessageLog(tmp_path / "data" / "messages.sqlite")
    frames = log.query(limit=None)
    log.close()
    seen = {(f.direction, f.action, f.message_type) for f in frames}
    assert ("out", "BootNotification", 2) in seen
    assert ("in", "BootNotification", 3) in seen
    assert ("out", "Heartbeat", 2) in seen


async def test_log_command_reads_the_agents_message_log(tmp_path, csms16):
    config = agent_config(tmp_path, csms16.url)
    async with running_agent(config):
        await csms16.wait_for_call("BootNotification")
        await asyncio.sleep(0.1)
    config_file = tmp_path / "agent.toml"
    config_file.write_text(
        f'[station]\nid = "CP1"\ndata_dir = "{tmp_path / "data"}"\n[csms]\nurl = "{csms16.url}"\n[[evse]]\nid = 1\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "agent", "log", "--config", str(config_file), "--action", "BootNotification", "--json"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["message_type"] for r in rows] == [3, 2]  # newest first: the result, then the request
    assert set(rows[0]) == {"timestamp", "direction", "action", "message_id", "message_type", "frame"}


# ------------------------------------------------------------- security profiles


async def test_session_profile1_basic_auth(tmp_path, caplog):
    sim = CsmsSimulator(behaviour=CsmsBehaviour(password="right-password-123"))
    await sim.start()
    try:
        bad = agent_config(tmp_path / "bad", sim.url, csms={"security_profile": 1, "password": "wrong-password-456"})
        with caplog.at_level(logging.WARNING):
            async with running_agent(bad):
                await wait_until(lambda: "401" in caplog.text, timeout=5)
        assert "wrong-password-456" not in caplog.text
        good = agent_config(tmp_path / "good", sim.url, csms={"security_profile": 1, "password": "right-password-123"})
        async with running_agent(good):
            await sim.wait_for_call("BootNotification")
    finally:
        await sim.stop()


async def test_session_profile2_tls_and_wrong_ca(tmp_path, caplog):
    pki = make_pki(tmp_path / "pki")
    sim = CsmsSimulator(behaviour=CsmsBehaviour(password="right-password-123"),
                        ssl_context=server_ssl_context(pki.server))
    await sim.start()
    try:
        csms = {"security_profile": 2, "password": "right-password-123", "ca_file": str(pki.other_ca.cert)}
        with caplog.at_level(logging.WARNING):
            async with running_agent(agent_config(tmp_path / "wrong-ca", sim.url, csms=csms)):
                await wait_until(lambda: "certificate" in caplog.text.lower(), timeout=5)
        assert not sim.received
        csms["ca_file"] = str(pki.ca.cert)
        async with running_agent(agent_config(tmp_path / "right-ca", sim.url, csms=csms)):
            await sim.wait_for_call("BootNotification")
    finally:
        await sim.stop()


async def test_session_profile3_mutual_tls(tmp_path):
    pki = make_pki(tmp_path / "pki")
    sim = CsmsSimulator(ssl_context=server_ssl_context(pki.server, ca=pki.ca, require_client_cert=True))
    await sim.start()
    try:
        csms = {"security_profile": 3, "ca_file": str(pki.ca.cert),
                "client_cert_file": str(pki.client.cert), "client_key_file": str(pki.client.key)}
        async with running_agent(agent_config(tmp_path, sim.url, csms=csms)):
            await sim.wait_for_call("BootNotification")
    finally:
        await sim.stop()


async def test_session_refused_certificate_and_password_are_security_events_once_per_streak(tmp_path, caplog):
    """Each kind of refusal is reported once, however many retries it takes, and reaches the CSMS later."""
    pki = make_pki(tmp_path / "pki")
    sim = CsmsSimulator(ocpp_version="2.0.1", behaviour=CsmsBehaviour(password="right-password-123"),
                        ssl_context=server_ssl_context(pki.server))
    await sim.start()
    fast = {"OCPPCommCtrlr.RetryBackOffWaitMinimum": 0, "OCPPCommCtrlr.RetryBackOffRandomRange": 0}
    try:
        csms = {"security_profile": 2, "password": "right-password-123", "ca_file": str(pki.other_ca.cert)}
        with caplog.at_level(logging.WARNING, logger="agent.session"):
            async with running_agent(agent_config(tmp_path, sim.url, ocpp_version="2.0.1", csms=csms,
                                                  variables=fast)):
                await wait_until(lambda: caplog.text.count("not trusted") >= 3, timeout=10)
            caplog.clear()
            csms.update(ca_file=str(pki.ca.cert), password="wrong-password-456")
            async with running_agent(agent_config(tmp_path, sim.url, ocpp_version="2.0.1", csms=csms,
                                                  variables=fast)):
                await wait_until(lambda: caplog.text.count("401") >= 3, timeout=10)
        csms["password"] = "right-password-123"
        async with running_agent(agent_config(tmp_path, sim.url, ocpp_version="2.0.1", csms=csms)):
            await sim.wait_for_call("SecurityEventNotification", count=5)  # + three start-ups
            await asyncio.sleep(0.2)
        kinds = [c.payload["type"] for c in sim.calls("SecurityEventNotification")]
        assert kinds.count("InvalidCsmsCertificate") == 1 and kinds.count("FailedToAuthenticateAtCsms") == 1
        assert not any("right-password" in (c.payload.get("techInfo") or "") for c in sim.calls("SecurityEventNotification"))
    finally:
        await sim.stop()
