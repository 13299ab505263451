"""The security log: every security event is kept, durably and bounded, beside its outbox record."""

import io
import json
import tarfile

import pytest
from ocpp.v201 import call as call201

from agent.runtime import store as store_module
from agent.core.management import security_events
from agent.core.management.security_events import SECURITY_EVENT, read_security_log, record_security_event
from agent.errors import StoreError
from agent.runtime.store import MIGRATIONS, StateStore
from tests.harness import agent_config, running_agent


def kept(store, **window):
    return [(e.timestamp, e.type, e.tech_info) for e in read_security_log(store, **window)]


def test_security_log_keeps_an_event_after_its_outbox_record_is_delivered(store):
    record_security_event(store, "SettingSystemTime", timestamp=100.0, tech_info="clock corrected by +90 s")
    (item,) = store.outbox.pending()
    assert item.action == SECURITY_EVENT and item.payload["type"] == "SettingSystemTime"
    store.outbox.remove(item.id)  # delivered
    assert kept(store) == [(100.0, "SettingSystemTime", "clock corrected by +90 s")]


def test_security_log_is_written_with_the_outbox_record_or_not_at_all(store):
    store.connection.execute("ALTER TABLE security_log RENAME TO broken")  # the log write will fail
    with pytest.raises(StoreError):
        record_security_event(store, "StartupOfTheDevice", timestamp=1.0)
    assert len(store.outbox) == 0  # the outbox record went with it


def test_security_log_is_bounded_and_drops_the_oldest_recorded_even_after_a_clock_jump(store, monkeypatch):
    monkeypatch.setattr(security_events, "SECURITY_LOG_LIMIT", 3)
    for i, timestamp in enumerate([500.0, 400.0, 300.0, 200.0, 100.0]):  # the clock keeps going back
        record_security_event(store, "SettingSystemTime", timestamp=timestamp, tech_info=f"event {i}")
    assert [e[2] for e in kept(store)] == ["event 2", "event 3", "event 4"]


def test_security_log_window_is_inclusive_and_open_ended(store):
    for timestamp in (10.0, 20.0, 30.0):
        record_security_event(store, "StartupOfTheDevice", timestamp=timestamp)
    assert [e[0] for e in kept(store, since=20.0)] == [20.0, 30.0]
    assert [e[0] for e in kept(store, until=20.0)] == [10.0, 20.0]
    assert [e[0] for e in kept(store, since=11.0, until=29.0)] == [20.0]


def test_security_log_survives_reopening_the_store(tmp_path):
    with StateStore(tmp_path / "state.sqlite") as store:
        record_security_event(store, "StartupOfTheDevice", timestamp=1.0)
    with StateStore(tmp_path / "state.sqlite") as store:
        assert kept(store) == [(1.0, "StartupOfTheDevice", None)]


def test_security_log_migration_upgrades_an_existing_store(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:5])  # a store written by the previous agent
    with StateStore(tmp_path / "state.sqlite") as old:
        old.put("kept", 1)
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    with StateStore(tmp_path / "state.sqlite") as store:
        assert store.schema_version == len(MIGRATIONS) and store.get("kept") == 1
        record_security_event(store, "StartupOfTheDevice", timestamp=1.0)
        assert len(kept(store)) == 1


# ------------------------------------------------------------------ end to end


@pytest.mark.parametrize("csms", ["2.0.1"], indirect=True)
async def test_security_log_survives_an_agent_restart_and_stays_bounded(tmp_path, csms, http_server, monkeypatch):
    monkeypatch.setattr(security_events, "SECURITY_LOG_LIMIT", 4)
    config = agent_config(tmp_path, csms.url, ocpp_version="2.0.1")
    config.station.data_dir.mkdir(parents=True)
    with StateStore(config.station.data_dir / "state.sqlite") as store:
        for i in range(10):
            record_security_event(store, "FirmwareUpdated", timestamp=1000.0 + i, tech_info=f"event {i}")
    async with running_agent(config):  # records its start-up
        await csms.wait_for_call("StatusNotification")
    async with running_agent(config) as agent_:  # and again: the log was kept across the restart
        await csms.wait_for_call("StatusNotification", count=2)
        result = await csms.call("CP1", call201.GetLog(log={"remote_location": f"{http_server.url}/up/"},
                                                       log_type="SecurityLog", request_id=1))
        await csms.wait_for(lambda: any(r.payload["status"] == "Uploaded" for r in csms.calls("LogStatusNotification")))
        await agent_.core.logs.close()
    with tarfile.open(fileobj=io.BytesIO(http_server.uploads[f"/up/{result.filename}"]), mode="r:gz") as archive:
        lines = archive.extractfile("security.jsonl").read().decode().splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["techInfo"] for e in events[:2]] == ["event 8", "event 9"]
    assert [e["type"] for e in events[2:]] == ["StartupOfTheDevice", "ResetOrReboot"]
    assert len(events) == 4
