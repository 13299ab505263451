"""Network connection profiles and the security-profile rules (agent.core.management.network), on a real state store."""

import pytest

from agent.core.management.network import ConnectionProfile, NetworkProfiles, ProfileRefused
from agent.runtime.settings import Settings
from agent.runtime.store import StateStore

CONFIG = ConnectionProfile(slot=0, url="ws://csms.example/ocpp", security_profile=1, message_timeout_s=30)
TLS = ConnectionProfile(slot=1, url="wss://new.example/ocpp", security_profile=2, message_timeout_s=20)


class Facts:
    """What the station has; a test flips them."""

    def __init__(self):
        self.trust = self.client_cert = self.password = True
        self.events = []


def make(tmp_path, facts, config=CONFIG, **initial):
    store = StateStore(tmp_path / "state.sqlite")
    NetworkProfiles.forget_stale_raise(store, config.security_profile)
    settings = Settings(store, initial={"security_profile": config.security_profile, **initial})
    network = NetworkProfiles(store, settings, config_profile=config, can_trust_csms=lambda: facts.trust,
                              has_client_certificate=lambda: facts.client_cert, has_password=lambda: facts.password,
                              on_security_event=facts.events.append)
    return store, settings, network


@pytest.fixture
def facts():
    return Facts()


def test_config_file_is_slot_zero(tmp_path, facts):
    _, _, network = make(tmp_path, facts)
    assert network.current() == CONFIG
    assert network.current().endpoint("CP-1") == "ws://csms.example/ocpp/CP-1"


def test_security_profile_only_goes_up(tmp_path, facts):
    _, settings, network = make(tmp_path, facts)
    assert settings.set("security_profile", "2") == 2
    with pytest.raises(ProfileRefused, match="lower"):
        settings.set("security_profile", "1")
    assert network.security_profile == 2
    # A raise to TLS keeps host and path: 1.6 has no way to send a new URL.
    assert network.current().endpoint("CP-1") == "wss://csms.example/ocpp/CP-1"


@pytest.mark.parametrize("missing, profile, reason", [
    ("trust", 2, "CSMS root"), ("client_cert", 3, "station certificate"), ("password", 2, "password"),
])
def test_raise_needs_what_the_profile_needs(tmp_path, facts, missing, profile, reason):
    store, settings, _ = make(tmp_path, facts)
    setattr(facts, missing, False)
    with pytest.raises(ProfileRefused, match=reason):
        settings.set("security_profile", profile)
    assert settings["security_profile"] == 1 and store.get("setting:security_profile") is None


def test_raise_that_never_connects_goes_back_after_the_attempts(tmp_path, facts):
    store, settings, network = make(tmp_path, facts, network_profile_connection_attempts=2)
    settings.set("security_profile", 2)
    network.connect_failed()
    assert network.security_profile == 2
    network.connect_failed()
    assert network.security_profile == 1 and store.get("setting:security_profile") == 1
    assert facts.events and "back to 1" in facts.events[0]


def test_raise_confirmed_by_the_csms_stays(tmp_path, facts):
    _, settings, network = make(tmp_path, facts, network_profile_connection_attempts=1)
    settings.set("security_profile", 2)
    network.accepted()
    network.connect_failed()  # a later outage is not a reason to lower security
    assert network.security_profile == 2 and not facts.events


def test_raise_survives_a_restart_and_a_config_change_resets_it(tmp_path, facts):
    store, settings, _ = make(tmp_path, facts)
    settings.set("security_profile", 3)
    store.close()
    _, settings, _ = make(tmp_path, facts)
    assert settings["security_profile"] == 3
    settings._store.close()
    # The operator edits the file: their value is the authority again.
    edited = ConnectionProfile(slot=0, url="wss://csms.example/ocpp", security_profile=2, message_timeout_s=30)
    _, settings, _ = make(tmp_path, facts, config=edited)
    assert settings["security_profile"] == 2


def test_set_slot_validates_and_persists(tmp_path, facts):
    store, settings, network = make(tmp_path, facts)
    with pytest.raises(ProfileRefused, match="slot 0"):
        network.set_slot(0, TLS)
    with pytest.raises(ProfileRefused, match="lower"):
        network.set_slot(1, ConnectionProfile(1, "ws://x.example/", 0, 30))
    with pytest.raises(ProfileRefused, match="does not go with"):
        network.set_slot(1, ConnectionProfile(1, "ws://x.example/", 2, 30))
    with pytest.raises(ProfileRefused, match="WebSocket URL"):
        network.set_slot(1, ConnectionProfile(1, "http://x.example/", 1, 30))
    facts.trust = False
    with pytest.raises(ProfileRefused, match="CSMS root"):
        network.set_slot(1, TLS)
    assert network.slots() == {0: CONFIG}
    facts.trust = True
    network.set_slot(1, TLS)
    assert network.slots()[1] == TLS
    store.close()
    _, _, network = make(tmp_path, facts)
    assert network.slots()[1] == TLS


def test_priority_falls_back_round_the_list(tmp_path, facts):
    _, settings, network = make(tmp_path, facts, network_profile_connection_attempts=2)
    network.set_slot(1, TLS)
    settings.set("network_configuration_priority", "1,0,5")  # slot 5 holds nothing: skipped
    assert network.priority() == [1, 0]
    assert network.current() == TLS
    network.connect_failed()
    assert network.current() == TLS
    network.connect_failed()
    assert network.current().slot == 0
    network.connect_failed(), network.connect_failed()
    assert network.current() == TLS


def test_slot_with_a_higher_profile_raises_the_floor_once_accepted(tmp_path, facts):
    _, settings, network = make(tmp_path, facts)
    network.set_slot(1, TLS)
    settings.set("network_configuration_priority", "1,0")
    network.accepted()
    assert network.security_profile == 2
    with pytest.raises(ProfileRefused, match="lower"):
        network.set_slot(2, ConnectionProfile(2, "ws://old.example/", 1, 30))
