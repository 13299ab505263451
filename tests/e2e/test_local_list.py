"""Tests of the Local Authorization List: the core list on a real StateStore, the Authorizer using it,
and SendLocalList / GetLocalListVersion end to end on OCPP 1.6 and 2.0.1."""

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from agent.core.charging.auth import AuthorizationCache, Authorizer, AuthSource
from agent.core.charging.local_list import VERSION_KEY, LocalAuthorizationList, UpdateResult
from agent.core.charging.model import AuthorizationStatus, IdTokenInfo
from agent.errors import StoreError
from agent.runtime.settings import Settings
from agent.runtime.store import StateStore
from tests.harness import agent_config, running_agent, wait_until

ACCEPTED = IdTokenInfo(AuthorizationStatus.ACCEPTED)
BLOCKED = IdTokenInfo(AuthorizationStatus.BLOCKED)
NOW = 1_700_000_000.0
ACCEPTED_ENTRY = ("CARD-A", ACCEPTED)
Result = UpdateResult


class FakeClock:
    """A clock that stands still."""

    def time(self):
        return NOW


@pytest.fixture
def settings(store):
    return Settings(store)


@pytest.fixture
def local(store, settings):
    return LocalAuthorizationList(store, settings=settings)


def tokens(n, prefix="T"):
    return [(f"{prefix}{i:05d}", ACCEPTED) for i in range(n)]


# ------------------------------------------------------------------ core list


def test_local_list_starts_empty_at_version_zero(local):
    assert local.version == 0 and len(local) == 0 and local.enabled
    assert local.lookup("ANY") is None


def test_local_list_full_update_replaces_everything(local):
    assert local.update(1, [("old", ACCEPTED), ("kept", BLOCKED)], full=True) is Result.ACCEPTED
    expiry_info = IdTokenInfo(AuthorizationStatus.ACCEPTED, NOW + 60, "GROUP1")
    assert local.update(2, [("kept", expiry_info), ("new", ACCEPTED)], full=True) is Result.ACCEPTED
    assert local.version == 2 and len(local) == 2
    assert local.lookup("OLD") is None
    assert local.lookup("KEPT") == expiry_info
    assert local.lookup("new") == ACCEPTED  # any case


def test_local_list_full_update_may_empty_the_list(local):
    local.update(1, tokens(3), full=True)
    assert local.update(2, [], full=True) is Result.ACCEPTED
    assert local.version == 2 and len(local) == 0


def test_local_list_differential_adds_updates_and_removes(local):
    local.update(1, [("a", ACCEPTED), ("b", ACCEPTED), ("c", ACCEPTED)], full=True)
    result = local.update(2, [("a", BLOCKED), ("b", None), ("d", ACCEPTED)], full=False)
    assert result is Result.ACCEPTED and local.version == 2
    assert local.lookup("A") == BLOCKED
    assert local.lookup("B") is None
    assert local.lookup("C") == ACCEPTED and local.lookup("D") == ACCEPTED
    assert local.update(3, [("never-listed", None)], full=False) is Result.ACCEPTED  # removing nothing is fine


@pytest.mark.parametrize("version", [0, 4, 5])
def test_local_list_differential_with_old_version_is_a_mismatch(local, version):
    local.update(5, [ACCEPTED_ENTRY], full=True)
    assert local.update(version, [("b", ACCEPTED)], full=False) is Result.VERSION_MISMATCH
    assert local.version == 5 and local.lookup("B") is None


def test_local_list_full_update_may_lower_the_version(local):
    local.update(5, [ACCEPTED_ENTRY], full=True)
    assert local.update(3, [ACCEPTED_ENTRY], full=True) is Result.ACCEPTED and local.version == 3


def test_local_list_disabled_is_not_supported_and_unchanged(local, settings):
    local.update(1, [ACCEPTED_ENTRY], full=True)
    settings.set("local_auth_list_enabled", False)
    assert not local.enabled
    assert local.update(2, [], full=True) is Result.NOT_SUPPORTED
    assert local.version == 1 and local.lookup("CARD-A") == ACCEPTED


@pytest.mark.parametrize("entries, full", [
    ([("a", ACCEPTED), ("A", BLOCKED)], True),  # the same token twice, in any case
    ([("a", ACCEPTED), ("a", None)], False),
    ([("a", None)], True),  # a full list needs info for every entry
])
def test_local_list_invalid_update_fails(local, entries, full):
    local.update(1, [ACCEPTED_ENTRY], full=True)
    assert local.update(2, entries, full=full) is Result.FAILED
    assert local.version == 1 and local.lookup("A") is None


def test_local_list_version_below_one_fails(local):
    assert local.update(0, [ACCEPTED_ENTRY], full=True) is Result.FAILED
    assert local.update(-1, [ACCEPTED_ENTRY], full=True) is Result.FAILED
    assert local.version == 0 and len(local) == 0


def test_local_list_message_longer_than_send_local_list_max_length_fails(store):
    settings = Settings(store)
    settings._values["send_local_list_max_length"] = 3  # read-only: the firmware's limit
    local = LocalAuthorizationList(store, settings=settings)
    assert local.update(1, tokens(4), full=True) is Result.FAILED
    assert local.update(1, tokens(3), full=True) is Result.ACCEPTED


def test_local_list_longer_than_max_length_fails_all_or_nothing(store):
    settings = Settings(store)
    settings._values["local_auth_list_max_length"] = 5
    local = LocalAuthorizationList(store, settings=settings)
    assert local.update(1, tokens(6), full=True) is Result.FAILED
    assert local.update(1, tokens(4), full=True) is Result.ACCEPTED
    # Two more would make 6: the whole update is rolled back, including its removal.
    growing = [("T00000", None), ("X1", ACCEPTED), ("X2", ACCEPTED), ("X3", ACCEPTED)]
    assert local.update(2, growing, full=False) is Result.FAILED
    assert local.version == 1 and len(local) == 4
    assert local.lookup("T00000") == ACCEPTED and local.lookup("X1") is None
    assert local.update(2, growing[:3], full=False) is Result.ACCEPTED and len(local) == 5


def test_local_list_store_failure_changes_nothing(local, store, monkeypatch):
    local.update(1, [ACCEPTED_ENTRY], full=True)

    def broken_put(key, value):
        raise StoreError("disk full")

    monkeypatch.setattr(store, "put", broken_put)  # fails after the entries were written
    assert local.update(2, [("b", ACCEPTED)], full=True) is Result.FAILED
    monkeypatch.undo()
    assert local.version == 1 and local.lookup("CARD-A") == ACCEPTED and local.lookup("B") is None


def test_local_list_persists_across_reopen(tmp_path):
    path = tmp_path / "state.sqlite"
    with StateStore(path) as store:
        LocalAuthorizationList(store, settings=Settings(store)).update(7, [("card-a", BLOCKED)], full=True)
    with StateStore(path) as store:
        reopened = LocalAuthorizationList(store, settings=Settings(store))
        assert reopened.version == 7 and reopened.lookup("CARD-A") == BLOCKED
        assert store.get(VERSION_KEY) == 7


def test_local_list_full_update_of_10000_entries_replaces_the_old_list(local):
    """10,000 entries replace 10,000 others (the time it takes end to end is a benchmark:
    `python -m tests.bench --only profiles16_local_list_full`)."""
    local.update(1, tokens(10_000, "OLD"), full=True)  # something to replace
    result = local.update(2, tokens(10_000), full=True)
    assert result is Result.ACCEPTED and len(local) == 10_000
    for i in range(0, 10_000, 10):
        assert local.lookup(f"t{i:05d}") == ACCEPTED
    assert local.lookup("OLD00000") is None


def test_local_list_repr_shows_state(local):
    local.update(3, [ACCEPTED_ENTRY], full=True)
    assert repr(local) == "<LocalAuthorizationList version=3 entries=1 enabled>"


# ------------------------------------------------------------------ with the Authorizer


@pytest.fixture
def authorizer(store, settings, local):
    return Authorizer(settings=settings, cache=AuthorizationCache(store, clock=FakeClock()), clock=FakeClock(),
                      local_list=local)


async def test_local_list_authorizes_offline_and_wins_over_the_cache(authorizer, local):
    authorizer.remember("CARD-B", ACCEPTED)  # cached before the list said otherwise
    local.update(1, [("card-a", ACCEPTED), ("card-b", BLOCKED)], full=True)
    decision = await authorizer.authorize("Card-A")
    assert decision.accepted and decision.source is AuthSource.LOCAL_LIST
    blocked = await authorizer.authorize("card-b")
    assert not blocked.accepted and blocked.info.status is AuthorizationStatus.BLOCKED
    assert blocked.source is AuthSource.LOCAL_LIST


async def test_local_list_expired_entry_is_refused(authorizer, local):
    local.update(1, [("card-a", IdTokenInfo(AuthorizationStatus.ACCEPTED, NOW - 1))], full=True)
    decision = await authorizer.authorize("CARD-A")
    assert decision.info.status is AuthorizationStatus.EXPIRED and decision.source is AuthSource.LOCAL_LIST


async def test_local_list_disabled_is_not_consulted(authorizer, local, settings):
    local.update(1, [("card-a", ACCEPTED)], full=True)
    settings.set("local_auth_list_enabled", False)
    decision = await authorizer.authorize("CARD-A")
    assert not decision.accepted and decision.source is AuthSource.OFFLINE_REJECTED


# ------------------------------------------------------------------ end to end


def install_list(agent_):
    """The running agent's local list (the composition root wires it into the authorizer and adapters)."""
    assert agent_.core.authorizer.local_list is agent_.core.local_list
    return agent_.core.local_list


async def test_local_list16_send_and_get_version(tmp_path, csms16, monkeypatch):
    async with running_agent(agent_config(tmp_path, csms16.url)) as agent_:
        local = install_list(agent_)
        await csms16.wait_for_station("CP1")
        assert (await csms16.call("CP1", call16.GetLocalListVersion())).list_version == 0
        full = call16.SendLocalList(list_version=3, update_type="Full", local_authorization_list=[
            {"id_tag": "card-a", "id_tag_info": {"status": "Accepted", "parent_id_tag": "FLEET",
                                                 "expiry_date": "2030-01-01T00:00:00Z"}},
            {"id_tag": "CARD-B", "id_tag_info": {"status": "Blocked"}}])
        assert (await csms16.call("CP1", full)).status == "Accepted"
        assert (await csms16.call("CP1", call16.GetLocalListVersion())).list_version == 3
        info = local.lookup("CARD-A")
        assert info.group_id == "FLEET" and info.expiry == 1893456000.0
        stale = call16.SendLocalList(list_version=3, update_type="Differential", local_authorization_list=[])
        assert (await csms16.call("CP1", stale)).status == "VersionMismatch"
        remove = call16.SendLocalList(list_version=4, update_type="Differential",
                                      local_authorization_list=[{"id_tag": "CARD-B"}])
        assert (await csms16.call("CP1", remove)).status == "Accepted"
        assert local.lookup("CARD-B") is None and local.version == 4


async def test_local_list16_disabled_reports_minus_one_and_not_supported(tmp_path, csms16, monkeypatch):
    async with running_agent(agent_config(tmp_path, csms16.url)) as agent_:
        install_list(agent_)
        await csms16.wait_for_station("CP1")
        keys = await csms16.call("CP1", call16.GetConfiguration(
            key=["LocalAuthListEnabled", "LocalAuthListMaxLength", "SendLocalListMaxLength"]))
        assert {k["key"]: (k["value"], k["readonly"]) for k in keys.configuration_key} == {
            "LocalAuthListEnabled": ("true", False), "LocalAuthListMaxLength": ("10000", True),
            "SendLocalListMaxLength": ("10000", True)}
        changed = await csms16.call("CP1", call16.ChangeConfiguration(key="LocalAuthListEnabled", value="false"))
        assert changed.status == "Accepted"
        assert (await csms16.call("CP1", call16.GetLocalListVersion())).list_version == -1
        request = call16.SendLocalList(list_version=1, update_type="Full", local_authorization_list=[])
        assert (await csms16.call("CP1", request)).status == "NotSupported"


async def test_local_list201_send_and_get_version(tmp_path, csms201, monkeypatch):
    async with running_agent(agent_config(tmp_path, csms201.url, ocpp_version="2.0.1")) as agent_:
        local = install_list(agent_)
        await csms201.wait_for_station("CP1")
        assert (await csms201.call("CP1", call201.GetLocalListVersion())).version_number == 0
        full = call201.SendLocalList(version_number=5, update_type="Full", local_authorization_list=[
            {"id_token": {"id_token": "card-a", "type": "ISO14443"},
             "id_token_info": {"status": "Accepted", "group_id_token": {"id_token": "FLEET", "type": "Central"}}},
            {"id_token": {"id_token": "CARD-B", "type": "ISO14443"}, "id_token_info": {"status": "Unknown"}}])
        assert (await csms201.call("CP1", full)).status == "Accepted"
        assert (await csms201.call("CP1", call201.GetLocalListVersion())).version_number == 5
        assert local.lookup("CARD-A").group_id == "FLEET"
        assert local.lookup("CARD-B").status is AuthorizationStatus.UNKNOWN  # kept as the CSMS said (issue 14)
        remove = call201.SendLocalList(version_number=5, update_type="Differential", local_authorization_list=[
            {"id_token": {"id_token": "CARD-B", "type": "ISO14443"}}])
        assert (await csms201.call("CP1", remove)).status == "VersionMismatch"
        remove.version_number = 6
        assert (await csms201.call("CP1", remove)).status == "Accepted"
        assert local.lookup("CARD-B") is None


async def test_local_list201_disabled_through_the_device_model_fails(tmp_path, csms201, monkeypatch):
    async with running_agent(agent_config(tmp_path, csms201.url, ocpp_version="2.0.1")) as agent_:
        install_list(agent_)
        await csms201.wait_for_station("CP1")
        items = await csms201.call("CP1", call201.GetVariables(get_variable_data=[
            {"component": {"name": "LocalAuthListCtrlr"}, "variable": {"name": "ItemsPerMessage"}}]))
        assert items.get_variable_result[0]["attribute_value"] == "10000"
        disable = await csms201.call("CP1", call201.SetVariables(set_variable_data=[
            {"component": {"name": "LocalAuthListCtrlr"}, "variable": {"name": "Enabled"},
             "attribute_value": "false"}]))
        assert disable.set_variable_result[0]["attribute_status"] == "Accepted"
        request = call201.SendLocalList(version_number=1, update_type="Full")  # no list: empty it
        result = await csms201.call("CP1", request)
        assert result.status == "Failed" and result.status_info == {"reason_code": "LocalListDisabled"}


async def test_local_list16_authorizes_offline_in_the_running_agent(tmp_path, csms16, monkeypatch):
    async with running_agent(agent_config(tmp_path, csms16.url)) as agent_:
        install_list(agent_)
        await csms16.wait_for_station("CP1")
        request = call16.SendLocalList(list_version=1, update_type="Full", local_authorization_list=[
            {"id_tag": "GOOD", "id_tag_info": {"status": "Accepted"}},
            {"id_tag": "STOLEN", "id_tag_info": {"status": "Blocked"}}])
        assert (await csms16.call("CP1", request)).status == "Accepted"
        await csms16.stop()
        await wait_until(lambda: not agent_.session.connected.is_set())
        agent_.hal.plug(1)
        agent_.hal.tap("STOLEN")  # refused by the list: no transaction for it
        agent_.hal.tap("good")
        tx = await wait_until(lambda: agent_.station.evses[1].transaction)
        assert agent_.station.journal.get(tx.ref).id_token.upper() == "GOOD"
